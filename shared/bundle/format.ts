import { posix } from 'node:path';
import { VerificationError } from '../cli/errors.ts';
import { signatureProblem, type BundleSignature } from './signatures.ts';
import { deltaFieldsProblem, type DeltaFields } from './delta.ts';

/** The bundle index, airlock.json (DESIGN.md §2, format version 1). */
export interface BundleEntry {
  path: string;
  size: number;
  /** hex, no "sha256:" prefix */
  sha256: string;
}

export interface BundleImage {
  ref: string;
  digest: string;
  mediaType: string;
  platforms?: string[];
  /** Release names of the charts whose rendered output deploys this image. */
  charts?: string[];
  /** pack --with-signatures: its signatures, attestations, SBOMs and referrers (signatures.ts). */
  signatures?: BundleSignature[];
}

export type ChartGitops = 'rendered' | 'helmrelease';

/**
 * A Helm chart in the bundle: a Helm OCI artifact in oci/ (its manifest is
 * `digest`, named `charts/NAME:VERSION` in oci/index.json), the values it was
 * rendered with as one entry, and its rendered output under `manifests`.
 */
export interface BundleChart {
  name: string;
  version: string;
  /** The chart artifact's manifest digest. */
  digest: string;
  mediaType: string;
  /** Where it came from, without credentials (a repository URL and name, an oci:// reference, a path, a git URL@commit). */
  source: string;
  releaseName: string;
  namespace: string;
  gitops: ChartGitops;
  /** Bundle path of the values the chart was rendered with (its values files merged in order, then `set`): charts/<releaseName>/values.yaml. */
  values: string;
  /** Bundle folder of the rendered output: manifests/<releaseName>/. */
  manifests: string;
  /** Image references as written in the rendered output (and the chart's image annotations). */
  images: string[];
  kubeVersion?: string;
  apiVersions?: string[];
}

/** A delta bundle (pack --since) also has `requires` and `since` (delta.ts). */
export interface BundleIndex extends DeltaFields {
  airlockVersion: 1;
  name: string;
  version: string;
  created: string;
  platforms: string[];
  images: BundleImage[];
  charts: BundleChart[];
  entries: BundleEntry[];
}

export const INDEX_PATH = 'airlock.json';
export const SIGNATURE_PATH = 'airlock.json.sig';
/** About 80,000 entries (Harness: 800); a bigger index is refused before it is parsed, which bounds inspect's memory. */
export const MAX_INDEX_BYTES = 16 * 1024 * 1024;
export const MAX_SIGNATURE_BYTES = 4096;
/** The one-file enclave loader (pack --include-loader): when there, the first entry after the signature. */
export const LOADER_PATH = 'airlock-loader.mjs';
const ENTRY_ROOTS = ['manifests/', 'charts/', 'oci/'];

/**
 * A bundle entry path is relative, normalized, under manifests/, charts/ or
 * oci/, and free of "..", empty or "." components, backslashes and NULs.
 */
export function checkEntryPath(path: string): string | undefined {
  if (path === '' || path.startsWith('/')) return 'an absolute or empty path';
  if (/[\\\0]/.test(path)) return 'a backslash or NUL in the path';
  if (path.split('/').some((c) => c === '..' || c === '.' || c === '')) return 'a "..", "." or empty path component';
  if (posix.normalize(path) !== path) return 'a path that is not normalized';
  if (!ENTRY_ROOTS.some((r) => path.startsWith(r))) return `a path outside ${ENTRY_ROOTS.join(', ')}`;
  return undefined;
}

/** An index entry's path at `position` in entries: the loader only first, anything else by checkEntryPath. */
export function checkIndexEntryPath(path: string, position: number): string | undefined {
  if (path === LOADER_PATH) return position === 0 ? undefined : `${LOADER_PATH} in a place other than the first entry`;
  return checkEntryPath(path);
}

/** Nesting and value count an index may have before it is parsed: bounds JSON.parse's stack and memory on hostile input. */
export const MAX_INDEX_DEPTH = 32;
export const MAX_INDEX_VALUES = 2_000_000;

/**
 * Parse and validate an index into its shape. Called on the signed index
 * once its signature checked out, and by `inspect` on an unverified one: so
 * everything is checked, and any fault is a VerificationError (exit 3).
 */
export function parseBundleIndex(bytes: Buffer): BundleIndex {
  const bad = (why: string): never => {
    throw new VerificationError(`${INDEX_PATH}: ${why}`, { hint: 'the bundle is malformed; pack it again' });
  };
  const text = bytes.toString('utf8');
  const shape = jsonShape(text);
  if (shape.depth > MAX_INDEX_DEPTH) bad(`nested deeper than ${MAX_INDEX_DEPTH} levels`);
  if (shape.values > MAX_INDEX_VALUES) bad(`more than ${MAX_INDEX_VALUES} values`);
  let index: Partial<BundleIndex>;
  try {
    index = JSON.parse(text) as Partial<BundleIndex>;
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof index !== 'object' || index === null || Array.isArray(index)) return bad('not a JSON object');
  if (index.airlockVersion !== 1) bad(`airlockVersion ${JSON.stringify(index.airlockVersion)} is not 1 (made by a newer airlock?)`);
  for (const f of ['name', 'version', 'created'] as const) {
    if (typeof index[f] !== 'string' || index[f] === '') bad(`missing or empty field ${f}`);
  }
  if (!Number.isFinite(Date.parse(index.created!))) bad(`created ${JSON.stringify(index.created)} is not a time`);
  if (!isStringList(index.platforms)) bad('platforms must be a list of strings');
  if (!Array.isArray(index.images)) bad('missing field images');
  if (!Array.isArray(index.charts)) bad('charts must be a list');
  if (!Array.isArray(index.entries)) bad('missing field entries');
  index.images!.forEach((img, i) => {
    if (typeof img !== 'object' || img === null || typeof img.ref !== 'string' || typeof img.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(img.digest)) {
      bad(`images[${i}] needs a ref and a sha256 digest`);
    }
    if (typeof img.mediaType !== 'string') bad(`images[${i}] needs a mediaType`);
    if (img.platforms !== undefined && !isStringList(img.platforms)) bad(`images[${i}].platforms must be a list of strings`);
    if (img.charts !== undefined && !isStringList(img.charts)) bad(`images[${i}].charts must be a list of strings`);
    if (img.signatures !== undefined && !Array.isArray(img.signatures)) bad(`images[${i}].signatures must be a list`);
    img.signatures?.forEach((s, j) => {
      const why = signatureProblem(s);
      if (why) bad(`images[${i}].signatures[${j}] ${why}`);
    });
  });
  index.charts!.forEach((c, i) => {
    const why = chartProblem(c);
    if (why) bad(`charts[${i}] ${why}`);
  });
  const seen = new Set<string>();
  index.entries!.forEach((e, i) => {
    if (typeof e !== 'object' || e === null || typeof e.path !== 'string') bad(`entries[${i}] has no path`);
    const why = checkIndexEntryPath(e.path, i);
    if (why) bad(`entries[${i}] ${JSON.stringify(e.path)} has ${why}`);
    if (seen.has(e.path)) bad(`entries[${i}] ${e.path} is listed twice`);
    seen.add(e.path);
    if (typeof e.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0) bad(`entries[${i}] ${e.path} has an invalid size`);
    if (typeof e.sha256 !== 'string' || !/^[a-f0-9]{64}$/.test(e.sha256)) bad(`entries[${i}] ${e.path} has an invalid sha256`);
  });
  const deltaProblem = deltaFieldsProblem(index as BundleIndex);
  if (deltaProblem) bad(deltaProblem);
  return index as BundleIndex;
}

function chartProblem(c: Partial<BundleChart> | null): string | undefined {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'is not an object';
  for (const f of ['name', 'version', 'mediaType', 'source', 'releaseName', 'namespace', 'values', 'manifests'] as const) {
    if (typeof c[f] !== 'string' || c[f] === '') return `needs a string ${f}`;
  }
  if (typeof c.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(c.digest)) return 'needs a sha256 digest';
  if (c.gitops !== 'rendered' && c.gitops !== 'helmrelease') return 'gitops must be rendered or helmrelease';
  if (!isStringList(c.images)) return 'images must be a list of strings';
  if (c.apiVersions !== undefined && !isStringList(c.apiVersions)) return 'apiVersions must be a list of strings';
  if (c.kubeVersion !== undefined && typeof c.kubeVersion !== 'string') return 'kubeVersion must be a string';
  if (checkEntryPath(c.values!) || !c.values!.startsWith('charts/')) return `values ${JSON.stringify(c.values)} is not a path under charts/`;
  if (checkEntryPath(c.manifests!.replace(/\/$/, '')) || !c.manifests!.startsWith('manifests/')) return `manifests ${JSON.stringify(c.manifests)} is not a folder under manifests/`;
  return undefined;
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** The deepest nesting and the number of values of a JSON text, counted without parsing it (strings skipped). */
function jsonShape(text: string): { depth: number; values: number } {
  let depth = 0;
  let deepest = 0;
  let values = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      values++;
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c) values++;
  }
  return { depth: deepest, values };
}
