import fs from 'node:fs';
import git from 'isomorphic-git';
import { Document, parse as parseYaml, stringify } from 'yaml';
import { UsageError } from '../../shared/cli/errors.ts';
import { describeTarget, environmentName, type EnvironmentPlan } from './envRegistry.ts';
import { putEntry } from './repo.ts';

/**
 * The environment's image mapping, a kustomize Component airlock owns:
 * PATH/overlays/ENV/airlock/kustomization.yaml. The overlay lists it under
 * `components:` (the starter overlay does), so the environment renders the
 * base with every internal name replaced by the environment registry's name,
 * pinned by the same digest. airlock rewrites only this file; the overlay's
 * own files are the environment's and are never touched.
 *
 * Components run before the overlay's own patches, so a customer patch sees
 * (and may still change) what the component produced.
 */
export const COMPONENT = 'airlock';

/** The folder an overlay lists under components: `airlock`, `./airlock`, `airlock/`. */
const COMPONENT_ENTRY = /^(\.\/)?airlock\/?$/;

/** The files kustomize takes as a folder's kustomization, in its order. */
const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

/** The lines the starter overlay of a new environment adds when it has its own registry. */
export const STARTER_COMPONENT_LINES = ['components:', `  - ${COMPONENT}`];

export function componentSegments(path: string, env: string): string[] {
  return [...path.split('/').filter(Boolean), 'overlays', ...env.split('/'), COMPONENT, 'kustomization.yaml'];
}

/**
 * The Component's YAML: `images:` from each internal name to the environment
 * registry's, same digest; for a Flux chart (gitops: helmrelease) also JSON
 * patches that point its HelmRelease's post-renderer pins and its
 * OCIRepository at the environment registry. A function of its input only, so
 * an unchanged promote writes the same bytes.
 */
export function renderComponent(plan: EnvironmentPlan, env: string, release: { name: string; version: string }, plainHttp: boolean): Buffer {
  const doc = new Document({
    apiVersion: 'kustomize.config.k8s.io/v1alpha1',
    kind: 'Component',
    images: componentImages(plan),
    ...(fluxPatches(plan, plainHttp).length > 0 ? { patches: fluxPatches(plan, plainHttp) } : {}),
  });
  doc.commentBefore = [
    ` Written by airlock promote: ${env} pulls ${release.name} ${release.version} from ${describeTarget(plan.registry)}.`,
    ` airlock rewrites this file at every promote --env-registry; put your own patches in the overlay, not here.`,
  ].join('\n');
  return Buffer.from(doc.toString({ lineWidth: 0 }));
}

/** One entry per internal name; the digest with it when the name has one digest (kustomize sets one per name). */
function componentImages(plan: EnvironmentPlan): { name: string; newName: string; digest?: string }[] {
  const byName = new Map<string, { newName: string; digests: Set<string> }>();
  for (const c of plan.copies.filter((x) => x.kind === 'image')) {
    const entry = byName.get(c.from) ?? { newName: c.to, digests: new Set<string>() };
    entry.digests.add(c.digest);
    byName.set(c.from, entry);
  }
  return [...byName]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, e]) => ({ name, newName: e.newName, ...(e.digests.size === 1 ? { digest: [...e.digests][0]! } : {}) }));
}

interface Patch {
  target: { group: string; version: string; kind: string; name: string; namespace?: string };
  patch: string;
}

function fluxPatches(plan: EnvironmentPlan, plainHttp: boolean): Patch[] {
  const rename = (name: string) => environmentName(name, plan.source, plan.registry);
  const patches: Patch[] = [];
  for (const { helmRelease, ociRepository } of plan.releases) {
    if (helmRelease) {
      const renderers = ((helmRelease.spec as { postRenderers?: unknown } | undefined)?.postRenderers ?? []) as { kustomize?: { images?: unknown } }[];
      const ops = (Array.isArray(renderers) ? renderers : []).flatMap((r, i) =>
        Array.isArray(r?.kustomize?.images)
          ? [
              {
                op: 'replace',
                path: `/spec/postRenderers/${i}/kustomize/images`,
                value: (r.kustomize.images as { name: string; newName: string; digest: string }[]).map((p) => ({ ...p, newName: rename(p.newName) })),
              },
            ]
          : [],
      );
      if (ops.length > 0) patches.push({ target: targetOf(helmRelease, 'helm.toolkit.fluxcd.io', 'v2', 'HelmRelease'), patch: stringify(ops) });
    }
    const url = (ociRepository?.spec as { url?: unknown } | undefined)?.url;
    if (ociRepository && typeof url === 'string' && url.startsWith('oci://')) {
      const ops = [
        { op: 'replace', path: '/spec/url', value: `oci://${rename(url.slice('oci://'.length))}` },
        { op: 'add', path: '/spec/insecure', value: plainHttp },
      ];
      patches.push({ target: targetOf(ociRepository, 'source.toolkit.fluxcd.io', 'v1', 'OCIRepository'), patch: stringify(ops) });
    }
  }
  return patches;
}

function targetOf(doc: Record<string, unknown>, group: string, version: string, kind: string): Patch['target'] {
  const meta = (doc.metadata ?? {}) as { name?: unknown; namespace?: unknown };
  return { group, version, kind, name: String(meta.name), ...(typeof meta.namespace === 'string' ? { namespace: meta.namespace } : {}) };
}

/**
 * The environment's overlay must list the component: airlock never edits the
 * overlay's files, so an overlay without it is a UsageError with the exact
 * line to add (the environment would otherwise keep pulling from dev's registry).
 */
export async function checkOverlayUsesComponent(gitdir: string, commit: string, path: string, env: string, registry: string): Promise<void> {
  const folder = `${path}/overlays/${env}`;
  for (const file of KUSTOMIZATION_FILES) {
    let text: string;
    try {
      text = Buffer.from((await git.readBlob({ fs, gitdir, oid: commit, filepath: `${folder}/${file}` })).blob).toString('utf8');
    } catch {
      continue;
    }
    let doc: { components?: unknown } | null;
    try {
      doc = parseYaml(text) as typeof doc;
    } catch (err) {
      throw new UsageError(`${env}: ${folder}/${file} is not valid YAML (${(err as Error).message.split('\n')[0]})`, { hint: 'fix the overlay on its branch, then promote again' });
    }
    const components = doc?.components;
    if (Array.isArray(components) && components.some((c) => typeof c === 'string' && COMPONENT_ENTRY.test(c))) return;
    const line = Array.isArray(components) ? `  - ${COMPONENT}` : `components: [${COMPONENT}]`;
    throw new UsageError(
      `${folder}/${file} on ${env} does not list the ${COMPONENT} component, so ${env} would not pull from ${registry}; add this line to it${Array.isArray(components) ? ' under components:' : ''}:\n${line}`,
      { hint: `airlock writes ${folder}/${COMPONENT}/ and never edits your overlay: commit the line on ${env}, then promote again; nothing was copied or changed` },
    );
  }
  throw new UsageError(`${env} has no ${folder}/kustomization.yaml, so nothing there would use the images in ${registry}`, {
    hint: `create it on ${env} with resources: [../../base] and components: [${COMPONENT}], then promote again`,
  });
}

/** The tree with the component's file set to `bytes`. */
export async function putComponent(gitdir: string, tree: string, path: string, env: string, bytes: Buffer): Promise<string> {
  const blob = await git.writeBlob({ fs, gitdir, blob: bytes });
  return putEntry(gitdir, tree, componentSegments(path, env), { mode: '100644', oid: blob, type: 'blob' });
}
