import fs from 'node:fs';
import git from 'isomorphic-git';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../shared/cli/errors.ts';

/** An image the base pins: its internal name (REGISTRY[/PREFIX]/REPO) and digest. */
export interface Pin {
  newName: string;
  digest: string;
}

/** What the base pins by digest: PATH/base/kustomization.yaml `images:` and the HelmReleases' post-renderer images. */
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
  const images = Array.isArray(doc?.images) ? (doc.images as unknown[]) : [];
  const add = (value: unknown) => {
    const i = value as { newName?: unknown; digest?: unknown } | null;
    if (typeof i?.newName === 'string' && typeof i.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(i.digest)) pins.set(`${i.newName}@${i.digest}`, { newName: i.newName, digest: i.digest });
  };
  for (const i of images) add(i);
  for (const release of await helmReleases(gitdir, commit, path)) {
    for (const i of release) add(i);
  }
  return [...pins.values()].sort((a, b) => a.newName.localeCompare(b.newName));
}

/**
 * The image pins of each Flux HelmRelease that load wrote for a `gitops:
 * helmrelease` chart (base/RELEASE/helmrelease.yaml: spec.postRenderers[]
 * .kustomize.images), which kustomization.yaml does not list.
 */
async function helmReleases(gitdir: string, commit: string, path: string): Promise<unknown[][]> {
  const out: unknown[][] = [];
  for (const { helmRelease } of await fluxObjects(gitdir, commit, path)) {
    const renderers = (helmRelease as { spec?: { postRenderers?: unknown } } | undefined)?.spec?.postRenderers;
    if (!Array.isArray(renderers)) continue;
    for (const r of renderers as { kustomize?: { images?: unknown } }[]) {
      if (Array.isArray(r?.kustomize?.images)) out.push(r.kustomize.images as unknown[]);
    }
  }
  return out;
}

/** The Flux objects load wrote for one `gitops: helmrelease` chart, as parsed (either may be absent). */
export interface FluxObjects {
  /** The release's folder under PATH/base. */
  folder: string;
  helmRelease?: Record<string, unknown>;
  ociRepository?: Record<string, unknown>;
}

/** base/RELEASE/helmrelease.yaml (kind HelmRelease) and ocirepository.yaml (kind OCIRepository) of every release folder. */
export async function fluxObjects(gitdir: string, commit: string, path: string): Promise<FluxObjects[]> {
  let entries;
  try {
    entries = (await git.readTree({ fs, gitdir, oid: commit, filepath: `${path}/base` })).tree;
  } catch {
    return [];
  }
  const read = async (file: string, kind: string): Promise<Record<string, unknown> | undefined> => {
    let text: string;
    try {
      text = Buffer.from((await git.readBlob({ fs, gitdir, oid: commit, filepath: `${path}/base/${file}` })).blob).toString('utf8');
    } catch {
      return undefined;
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new UsageError(`${path}/base/${file} is not valid YAML (${(err as Error).message})`, { hint: 'it is written by airlock load: load the release again' });
    }
    return (doc as { kind?: unknown } | null)?.kind === kind ? (doc as Record<string, unknown>) : undefined;
  };
  const out: FluxObjects[] = [];
  for (const e of entries.filter((t) => t.type === 'tree')) {
    const helmRelease = await read(`${e.path}/helmrelease.yaml`, 'HelmRelease');
    const ociRepository = await read(`${e.path}/ocirepository.yaml`, 'OCIRepository');
    if (helmRelease || ociRepository) out.push({ folder: e.path, ...(helmRelease ? { helmRelease } : {}), ...(ociRepository ? { ociRepository } : {}) });
  }
  return out;
}
