import { posix } from 'node:path';
import { VerificationError } from '../cli/errors.ts';

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
}

export interface BundleIndex {
  airlockVersion: 1;
  name: string;
  version: string;
  created: string;
  platforms: string[];
  images: BundleImage[];
  charts: unknown[];
  entries: BundleEntry[];
}

export const INDEX_PATH = 'airlock.json';
export const SIGNATURE_PATH = 'airlock.json.sig';
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;
export const MAX_SIGNATURE_BYTES = 4096;
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

/** Parse and validate the signed index. Called only after its signature checked out. */
export function parseBundleIndex(bytes: Buffer): BundleIndex {
  const bad = (why: string): never => {
    throw new VerificationError(`${INDEX_PATH}: ${why}`, { hint: 'the bundle is malformed; pack it again' });
  };
  let index: Partial<BundleIndex>;
  try {
    index = JSON.parse(bytes.toString('utf8')) as Partial<BundleIndex>;
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof index !== 'object' || index === null || Array.isArray(index)) return bad('not a JSON object');
  if (index.airlockVersion !== 1) bad(`airlockVersion ${JSON.stringify(index.airlockVersion)} is not 1 (made by a newer airlock?)`);
  for (const f of ['name', 'version', 'created'] as const) {
    if (typeof index[f] !== 'string' || index[f] === '') bad(`missing or empty field ${f}`);
  }
  if (!Array.isArray(index.images)) bad('missing field images');
  if (!Array.isArray(index.entries)) bad('missing field entries');
  index.images!.forEach((img, i) => {
    if (typeof img?.ref !== 'string' || typeof img.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(img.digest)) {
      bad(`images[${i}] needs a ref and a sha256 digest`);
    }
  });
  const seen = new Set<string>();
  index.entries!.forEach((e, i) => {
    if (typeof e?.path !== 'string') bad(`entries[${i}] has no path`);
    const why = checkEntryPath(e.path);
    if (why) bad(`entries[${i}] ${JSON.stringify(e.path)} has ${why}`);
    if (seen.has(e.path)) bad(`entries[${i}] ${e.path} is listed twice`);
    seen.add(e.path);
    if (typeof e.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0) bad(`entries[${i}] ${e.path} has an invalid size`);
    if (typeof e.sha256 !== 'string' || !/^[a-f0-9]{64}$/.test(e.sha256)) bad(`entries[${i}] ${e.path} has an invalid sha256`);
  });
  return index as BundleIndex;
}
