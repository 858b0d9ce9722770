import type { BundleEntry } from './format.ts';

/**
 * The delta part of a bundle index (`pack --since`): the blobs the bundle
 * relies on the enclave having (`requires`) and the release it was made
 * against (`since`). Both are signed with the rest of airlock.json.
 */
export interface BundleRequirement {
  /** sha256:<hex> of a layer or config blob the bundle does not carry. */
  digest: string;
  size: number;
  /**
   * A mount hint: a repository that held the blob. From an inventory, the
   * enclave repository path as the inventory lists it (prefix included, no
   * host); from an older bundle, the source repository (HOST/PATH, as in its
   * image references; charts/NAME for a chart's blobs), which the loader maps
   * under its --registry prefix as it maps images.
   */
  repository: string;
}

export interface BundleSince {
  name: string;
  version: string;
}

export interface DeltaFields {
  requires?: BundleRequirement[];
  since?: BundleSince;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * Why the delta fields of a parsed index are malformed, or undefined: each
 * requirement a sha256 digest with a size and a repository, listed once, and
 * never also carried (a blob is either in the bundle or required, not both).
 */
export function deltaFieldsProblem(index: DeltaFields & { entries: BundleEntry[] }): string | undefined {
  const { requires, since } = index;
  if (since !== undefined) {
    if (typeof since !== 'object' || since === null || Array.isArray(since)) return 'since must be an object';
    for (const f of ['name', 'version'] as const) if (typeof since[f] !== 'string' || since[f] === '') return `since needs a string ${f}`;
  }
  if (requires === undefined) return undefined;
  if (!Array.isArray(requires)) return 'requires must be a list';
  const carried = new Set(index.entries.map((e) => e.path));
  const seen = new Set<string>();
  for (const [i, r] of requires.entries()) {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return `requires[${i}] is not an object`;
    if (typeof r.digest !== 'string' || !DIGEST.test(r.digest)) return `requires[${i}] needs a sha256 digest`;
    if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) return `requires[${i}] ${r.digest} has an invalid size`;
    if (typeof r.repository !== 'string' || r.repository === '' || /[\s\0\\]/.test(r.repository)) return `requires[${i}] ${r.digest} needs a repository`;
    if (seen.has(r.digest)) return `requires[${i}] ${r.digest} is listed twice`;
    seen.add(r.digest);
    if (carried.has(requiredBlobPath(r.digest))) return `requires[${i}] ${r.digest} is also carried in the bundle`;
  }
  return undefined;
}

export function requiredBlobPath(digest: string): string {
  return `oci/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/** What a delta relies on, for verify and inspect; undefined for a full bundle. */
export interface DeltaSummary {
  blobs: number;
  bytes: number;
  since?: BundleSince;
}

export function deltaSummary(index: DeltaFields): DeltaSummary | undefined {
  if (index.requires === undefined) return undefined;
  return {
    blobs: index.requires.length,
    bytes: index.requires.reduce((a, r) => a + r.size, 0),
    ...(index.since ? { since: index.since } : {}),
  };
}

export function describeDelta(delta: DeltaSummary, formatBytes: (n: number) => string): string {
  const since = delta.since ? ` since ${delta.since.name} ${delta.since.version}` : '';
  return `a delta bundle${since}: it relies on ${delta.blobs} blob${delta.blobs === 1 ? '' : 's'} (${formatBytes(delta.bytes)}) the target registry must already hold`;
}
