import fs from 'node:fs';
import git from 'isomorphic-git';
import type { ReleaseState } from './releaseChanges.ts';

/**
 * A branch's release as loaded into git: PATH/airlock/airlock.json (name,
 * version, creation time, images, charts), the signer fingerprint that
 * PATH/airlock/load-report.json records, and the blob ids of the files under
 * PATH/base. Undefined when the commit holds no PATH/airlock/airlock.json.
 */
export async function readReleaseState(gitdir: string, commit: string, path: string): Promise<ReleaseState | undefined> {
  const json = async (file: string): Promise<Record<string, unknown> | undefined> => {
    try {
      const { blob } = await git.readBlob({ fs, gitdir, oid: commit, filepath: `${path}/airlock/${file}` });
      const value = JSON.parse(Buffer.from(blob).toString('utf8')) as unknown;
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const index = await json('airlock.json');
  if (!index) return undefined;
  const report = await json('load-report.json');
  const list = <T>(v: unknown, ok: (x: Record<string, unknown>) => boolean): T[] =>
    Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x !== null && ok(x as Record<string, unknown>)) as T[]) : [];
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  return {
    name: str(index.name),
    version: str(index.version),
    created: str(index.created),
    images: list<{ ref: string; digest: string }>(index.images, (i) => typeof i.ref === 'string' && typeof i.digest === 'string').map((i) => ({ ref: i.ref, digest: i.digest })),
    charts: list<{ name: string; releaseName: string; version: string; digest: string }>(
      index.charts,
      (c) => ['name', 'releaseName', 'version', 'digest'].every((f) => typeof c[f] === 'string'),
    ).map((c) => ({ name: c.name, releaseName: c.releaseName, version: c.version, digest: c.digest })),
    vendorFiles: await vendorFiles(gitdir, commit, `${path}/base`),
    ...(typeof report?.signer === 'string' ? { signer: report.signer } : {}),
  };
}

/** Every blob under `folder`, by path relative to it; the base's kustomization.yaml (airlock's) left out. */
async function vendorFiles(gitdir: string, commit: string, folder: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (filepath: string, prefix: string): Promise<void> => {
    let tree;
    try {
      tree = (await git.readTree({ fs, gitdir, oid: commit, filepath })).tree;
    } catch {
      return;
    }
    for (const e of tree) {
      const rel = prefix ? `${prefix}/${e.path}` : e.path;
      if (e.type === 'tree') await walk(`${filepath}/${e.path}`, rel);
      else if (e.type === 'blob') files.set(rel, e.oid);
    }
  };
  await walk(folder, '');
  files.delete('kustomization.yaml');
  return files;
}
