import { open, readFile } from 'node:fs/promises';
import { UsageError, VerificationError } from '../shared/cli/errors.ts';
import { BLOCK, layoutBundle, padding, readFirstHeader, readSignatureHeader } from '../shared/bundle/canonical.ts';
import type { BundleRequirement, BundleSince } from '../shared/bundle/delta.ts';
import { MAX_INDEX_BYTES, MAX_SIGNATURE_BYTES, parseBundleIndex, type BundleIndex } from '../shared/bundle/format.ts';
import { peekBundleIndex } from '../shared/bundle/reader.ts';
import { openBundleBytes, type BundleBytes } from '../shared/bundle/volumes.ts';
import { parseInventory, type Inventory } from '../shared/inventory/format.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import { sha256Hex } from '../shared/oci/digest.ts';
import type { BundleContent } from '../shared/bundle/writer.ts';
import { childrenOf, isManifestOrIndex, parseManifest } from '../shared/oci/mediatype.ts';
import { parseReference } from '../shared/oci/reference.ts';

/**
 * The base of a delta (`pack --since FILE`): which blobs the enclave already
 * holds, and where. FILE is told apart by its content: an inventory (JSON
 * with airlockInventory), an older bundle's index (JSON with airlockVersion),
 * or an older bundle (the tar, or the first volume of a split one). The file
 * is trusted as it is: the packer does not check an old bundle's signature.
 */
export interface SinceBase {
  kind: 'inventory' | 'bundle' | 'index';
  /** digest -> what the enclave holds: its size and a repository holding it (the mount hint), when known. */
  held: Map<string, { size: number; repository?: string }>;
  /** Repositories of the base's images (source HOST/PATH), for blobs whose holder is unknown (an index alone has no manifests). */
  baseRepositories: Set<string>;
  since?: BundleSince;
}

export async function readSinceBase(path: string): Promise<SinceBase> {
  const head = await firstBytes(path, 64);
  if (/^\s*\{/.test(head.toString('latin1'))) return fromJson(path);
  const bytes = await openBundleBytes(path).catch((err: unknown) => {
    throw new UsageError(`--since ${path}: ${(err as Error).message}`);
  });
  try {
    return await fromBundle(bytes);
  } catch (err) {
    if (err instanceof VerificationError) throw new UsageError(`--since ${path}: not a usable airlock bundle: ${err.message}`, { hint: SINCE_HINT });
    throw err;
  } finally {
    await bytes.close();
  }
}

const SINCE_HINT = 'give an inventory (airlock inventory), an older bundle, or an older bundle\'s airlock.json';

async function firstBytes(path: string, n: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new UsageError(`--since ${path}: ${(err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function fromJson(path: string): Promise<SinceBase> {
  const text = await readFile(path, 'utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--since ${path}: not valid JSON (${(err as Error).message})`, { hint: SINCE_HINT });
  }
  const object = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if ('airlockInventory' in object) return fromInventory(parseInventory(text, `--since ${path}`));
  if ('airlockVersion' in object) {
    let index: BundleIndex;
    try {
      index = parseBundleIndex(Buffer.from(text));
    } catch (err) {
      throw new UsageError(`--since ${path}: ${(err as Error).message}`, { hint: SINCE_HINT });
    }
    return fromIndex(index, 'index');
  }
  throw new UsageError(`--since ${path}: a JSON file that is neither an inventory (airlockInventory) nor a bundle index (airlockVersion)`, { hint: SINCE_HINT });
}

/** An inventory: every blob it lists, with the enclave repository that holds it. */
export function fromInventory(inventory: Inventory): SinceBase {
  const held = new Map<string, { size: number; repository?: string }>();
  for (const [digest, [size, at]] of Object.entries(inventory.blobs)) held.set(digest, { size, repository: inventory.repositories[at]! });
  const last = (inventory as { lastLoaded?: { name?: unknown; version?: unknown } }).lastLoaded;
  const since = last && typeof last.name === 'string' && last.name !== '' && typeof last.version === 'string' && last.version !== '' ? { name: last.name, version: last.version } : undefined;
  return { kind: 'inventory', held, baseRepositories: new Set(), ...(since ? { since } : {}) };
}

/** An older bundle's index: the blobs it carried (holders unknown) plus those it required itself. */
function fromIndex(index: BundleIndex, kind: 'bundle' | 'index'): SinceBase {
  const held = new Map<string, { size: number; repository?: string }>();
  for (const e of index.entries) {
    const m = /^oci\/blobs\/sha256\/([a-f0-9]{64})$/.exec(e.path);
    if (m) held.set(`sha256:${m[1]}`, { size: e.size });
  }
  for (const r of index.requires ?? []) held.set(r.digest, { size: r.size, repository: r.repository });
  const baseRepositories = new Set(index.images.map((i) => sourceRepository(i.ref)));
  for (const c of index.charts) baseRepositories.add(`charts/${c.name}`);
  return { kind, held, baseRepositories, since: { name: index.name, version: index.version } };
}

/** An older bundle: its index, then its manifests read from the tar to learn which image held each blob. */
async function fromBundle(bytes: BundleBytes): Promise<SinceBase> {
  const index = await peekBundleIndex(bytes, bytes.name);
  const base = fromIndex(index, 'bundle');
  const located = await locateEntries(bytes, index);
  const readManifest = async (desc: Descriptor): Promise<Buffer | undefined> => {
    const at = located.get(desc.digest);
    if (!at || at.size !== desc.size || desc.size > 4 * 1024 * 1024) return undefined;
    const data = await bytes.read(at.offset, at.size);
    if (`sha256:${sha256Hex(data)}` !== desc.digest) throw new VerificationError(`${bytes.name}: manifest ${desc.digest} does not match its digest`);
    return data;
  };
  const walk = async (desc: Descriptor, repository: string, seen: Set<string>): Promise<void> => {
    if (seen.has(desc.digest)) return;
    seen.add(desc.digest);
    const data = await readManifest(desc);
    if (!data) return;
    for (const child of childrenOf(parseManifest(data, desc.mediaType, `${bytes.name}: manifest ${desc.digest}`))) {
      if (isManifestOrIndex(child.mediaType)) await walk(child, repository, seen);
      else {
        const h = base.held.get(child.digest);
        if (h && h.repository === undefined) h.repository = repository;
      }
    }
  };
  for (const img of index.images) await walk({ mediaType: img.mediaType, digest: img.digest, size: located.get(img.digest)?.size ?? -1 }, sourceRepository(img.ref), new Set());
  for (const c of index.charts) await walk({ mediaType: c.mediaType, digest: c.digest, size: located.get(c.digest)?.size ?? -1 }, `charts/${c.name}`, new Set());
  return base;
}

/** Where each blob entry's content starts in the tar, by digest (the canonical layout follows from the index). */
async function locateEntries(bytes: BundleBytes, index: BundleIndex): Promise<Map<string, { offset: number; size: number }>> {
  const { size: indexSize, mtime } = readFirstHeader(bytes.name, await bytes.read(0, BLOCK), MAX_INDEX_BYTES);
  const sigAt = BLOCK + indexSize + padding(indexSize);
  const sigSize = readSignatureHeader(bytes.name, await bytes.read(sigAt, BLOCK), sigAt, mtime, MAX_SIGNATURE_BYTES);
  const located = new Map<string, { offset: number; size: number }>();
  for (const e of layoutBundle(indexSize, sigSize, index.entries, mtime).entries) {
    const m = /^oci\/blobs\/sha256\/([a-f0-9]{64})$/.exec(e.path);
    if (m && e.offset + e.size <= bytes.size) located.set(`sha256:${m[1]}`, { offset: e.offset, size: e.size });
  }
  return located;
}

/** docker.io/harness/ng-manager:1.0 -> docker.io/harness/ng-manager. */
function sourceRepository(ref: string): string {
  const r = parseReference(ref);
  return `${r.registry}/${r.repository}`;
}

/** Blobs of the new release, each with the repository (source HOST/PATH, or charts/NAME) of the first image or chart using it. */
export interface BlobUser {
  repository: string;
  blobs: readonly Descriptor[];
}

export interface DeltaSplit {
  /** The blobs the bundle carries. */
  carried: Descriptor[];
  requires: BundleRequirement[];
  leftOutBytes: number;
}

/**
 * Split the release's blobs into those carried and those required: a blob the
 * base holds with the same size is left out, with a mount hint (the holder the
 * base names; else, from an index alone, the repository of the image that uses
 * it when the base had that repository, else one of the base's repositories).
 */
export function splitBlobs(blobs: readonly Descriptor[], users: readonly BlobUser[], base: SinceBase): DeltaSplit {
  const userOf = new Map<string, string>();
  for (const u of users) for (const b of u.blobs) if (!userOf.has(b.digest)) userOf.set(b.digest, u.repository);
  const anyBase = [...base.baseRepositories].sort()[0];
  const carried: Descriptor[] = [];
  const requires: BundleRequirement[] = [];
  for (const b of blobs) {
    const held = base.held.get(b.digest);
    if (!held || held.size !== b.size) {
      carried.push(b);
      continue;
    }
    const user = userOf.get(b.digest);
    const repository = held.repository ?? (user !== undefined && base.baseRepositories.has(user) ? user : (anyBase ?? user));
    if (repository === undefined) {
      carried.push(b);
      continue;
    }
    requires.push({ digest: b.digest, size: b.size, repository });
  }
  return { carried, requires, leftOutBytes: requires.reduce((a, r) => a + r.size, 0) };
}

/** The bundle's content as a delta against `base`: left-out blobs move from `blobs` to `requires`. */
export function applySince(
  content: BundleContent,
  base: SinceBase,
  users: readonly BlobUser[],
): { content: BundleContent; leftOut: { blobsLeftOut: number; bytesLeftOut: number; since?: BundleSince } } {
  const split = splitBlobs(content.blobs, users, base);
  return {
    content: { ...content, blobs: split.carried, requires: split.requires, ...(base.since ? { since: base.since } : {}) },
    leftOut: { blobsLeftOut: split.requires.length, bytesLeftOut: split.leftOutBytes, ...(base.since ? { since: base.since } : {}) },
  };
}
