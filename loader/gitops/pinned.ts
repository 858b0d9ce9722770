import fs from 'node:fs';
import git from 'isomorphic-git';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../shared/cli/errors.ts';

/** An image the base pins: its internal name (REGISTRY[/PREFIX]/REPO) and digest. */
export interface Pin {
  newName: string;
  digest: string;
}

/** PATH/base/kustomization.yaml `images:` entries that pin a newName by digest. */
export async function pinnedImages(gitdir: string, commit: string, path: string, branch: string): Promise<Pin[]> {
  let text: string;
  try {
    text = Buffer.from((await git.readBlob({ fs, gitdir, oid: commit, filepath: `${path}/base/kustomization.yaml` })).blob).toString('utf8');
  } catch {
    throw new UsageError(`${branch} has no ${path}/base/kustomization.yaml`, { hint: 'run airlock load --git first, or check --git-path' });
  }
  let doc: { images?: unknown } | null;
  try {
    doc = parseYaml(text) as { images?: unknown } | null;
  } catch (err) {
    throw new UsageError(`${branch}: ${path}/base/kustomization.yaml is not valid YAML (${(err as Error).message})`, { hint: 'it is written by airlock load: load the release again' });
  }
  const pins = new Map<string, Pin>();
  const images = Array.isArray(doc?.images) ? (doc.images as { newName?: unknown; digest?: unknown }[]) : [];
  for (const i of images) {
    if (typeof i?.newName === 'string' && typeof i.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(i.digest)) pins.set(`${i.newName}@${i.digest}`, { newName: i.newName, digest: i.digest });
  }
  return [...pins.values()].sort((a, b) => a.newName.localeCompare(b.newName));
}

