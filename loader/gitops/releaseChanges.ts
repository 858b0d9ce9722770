import { imageName } from './pins.ts';

/**
 * What a promotion changes: the release an environment has (its
 * PATH/airlock/airlock.json and PATH/base) against the one it receives from
 * dev. Pure: the states are read from git by releaseState.ts.
 */
export interface ReleaseState {
  name: string;
  version: string;
  /** The bundle's creation time (airlock.json "created"). */
  created: string;
  images: { ref: string; digest: string }[];
  charts: { name: string; releaseName: string; version: string; digest: string }[];
  /** Files under PATH/base (relative to it) -> blob id; the base's own kustomization.yaml excluded. */
  vendorFiles: ReadonlyMap<string, string>;
  /** The fingerprint of the key the bundle's signature was checked with, when the load recorded it. */
  signer?: string;
}

export interface ImageVersion {
  /** The tag as written in the source reference, if any. */
  tag?: string;
  digest: string;
}

export interface ImageChange {
  /** The source image name, without tag or digest. */
  name: string;
  old?: ImageVersion;
  new?: ImageVersion;
}

export interface ChartChange {
  name: string;
  releaseName: string;
  old?: { version: string; digest: string };
  new?: { version: string; digest: string };
}

export interface ReleaseChanges {
  /** The environment's release before the promotion (absent for a new environment). */
  from?: { name: string; version: string };
  to: { name: string; version: string; created: string; signer?: string };
  images: { added: ImageChange[]; removed: ImageChange[]; changed: ImageChange[] };
  charts: { added: ChartChange[]; removed: ChartChange[]; changed: ChartChange[] };
  vendorFiles: { added: string[]; changed: string[]; removed: string[] };
}

export function releaseChanges(before: ReleaseState | undefined, after: ReleaseState): ReleaseChanges {
  return {
    ...(before ? { from: { name: before.name, version: before.version } } : {}),
    to: { name: after.name, version: after.version, created: after.created, ...(after.signer ? { signer: after.signer } : {}) },
    images: imageChanges(before?.images ?? [], after.images),
    charts: chartChanges(before?.charts ?? [], after.charts),
    vendorFiles: fileChanges(before?.vendorFiles ?? new Map(), after.vendorFiles),
  };
}

function versionOf(ref: string, digest: string): ImageVersion {
  const noDigest = ref.split('@')[0]!;
  const name = imageName(ref);
  const tag = noDigest.length > name.length ? noDigest.slice(name.length + 1) : undefined;
  return { ...(tag ? { tag } : {}), digest };
}

/**
 * By image name: one entry on each side whose tag or digest differs is a
 * change; a name with several entries (two tags of one image) is compared
 * entry by entry (added and removed).
 */
function imageChanges(before: ReleaseState['images'], after: ReleaseState['images']): ReleaseChanges['images'] {
  const group = (list: ReleaseState['images']) => {
    const m = new Map<string, ImageVersion[]>();
    for (const i of list) {
      const name = imageName(i.ref);
      const v = versionOf(i.ref, i.digest);
      const seen = m.get(name) ?? [];
      if (!seen.some((s) => s.tag === v.tag && s.digest === v.digest)) seen.push(v);
      m.set(name, seen);
    }
    return m;
  };
  const old = group(before);
  const now = group(after);
  const out: ReleaseChanges['images'] = { added: [], removed: [], changed: [] };
  const same = (a: ImageVersion, b: ImageVersion) => a.tag === b.tag && a.digest === b.digest;
  for (const name of [...new Set([...old.keys(), ...now.keys()])].sort()) {
    const o = old.get(name) ?? [];
    const n = now.get(name) ?? [];
    if (o.length === 1 && n.length === 1) {
      if (!same(o[0]!, n[0]!)) out.changed.push({ name, old: o[0]!, new: n[0]! });
      continue;
    }
    for (const v of n) if (!o.some((x) => same(x, v))) out.added.push({ name, new: v });
    for (const v of o) if (!n.some((x) => same(x, v))) out.removed.push({ name, old: v });
  }
  return out;
}

/** By release name: a chart is one release of the bundle. */
function chartChanges(before: ReleaseState['charts'], after: ReleaseState['charts']): ReleaseChanges['charts'] {
  const old = new Map(before.map((c) => [c.releaseName, c]));
  const now = new Map(after.map((c) => [c.releaseName, c]));
  const out: ReleaseChanges['charts'] = { added: [], removed: [], changed: [] };
  const v = (c: ReleaseState['charts'][number]) => ({ version: c.version, digest: c.digest });
  for (const release of [...new Set([...old.keys(), ...now.keys()])].sort()) {
    const o = old.get(release);
    const n = now.get(release);
    if (o && n) {
      if (o.version !== n.version || o.digest !== n.digest || o.name !== n.name) out.changed.push({ name: n.name, releaseName: release, old: v(o), new: v(n) });
    } else if (n) out.added.push({ name: n.name, releaseName: release, new: v(n) });
    else if (o) out.removed.push({ name: o.name, releaseName: release, old: v(o) });
  }
  return out;
}

function fileChanges(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): ReleaseChanges['vendorFiles'] {
  const out: ReleaseChanges['vendorFiles'] = { added: [], changed: [], removed: [] };
  for (const [path, oid] of after) {
    const was = before.get(path);
    if (was === undefined) out.added.push(path);
    else if (was !== oid) out.changed.push(path);
  }
  for (const path of before.keys()) if (!after.has(path)) out.removed.push(path);
  for (const list of Object.values(out)) list.sort();
  return out;
}
