import { formatReference, type ImageReference } from './reference.ts';

/**
 * Where a source image lands inside the enclave (DESIGN.md §6): the source
 * host is dropped and the path kept, under the target registry's optional
 * prefix. docker.io/harness/ng-manager:1.0 -> PREFIX/harness/ng-manager:1.0,
 * docker.io/nginx -> PREFIX/library/nginx.
 */
export function internalRepository(ref: ImageReference, prefix = ''): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p === '' ? ref.repository : `${p}/${ref.repository}`;
}

export interface MappingConflict {
  repository: string;
  /** The source references (from two or more registries) that would share it. */
  sources: string[];
}

/**
 * Repositories that images from more than one source registry would share
 * once the host is dropped (quay.io/x/app and docker.io/x/app both become
 * x/app): their tags and content would mix, so the pack refuses them.
 */
export function mappingConflicts(refs: ImageReference[]): MappingConflict[] {
  const byRepository = new Map<string, { registries: Set<string>; sources: string[] }>();
  for (const ref of refs) {
    const repository = internalRepository(ref);
    let entry = byRepository.get(repository);
    if (!entry) byRepository.set(repository, (entry = { registries: new Set(), sources: [] }));
    entry.registries.add(ref.registry);
    entry.sources.push(formatReference(ref));
  }
  return [...byRepository]
    .filter(([, e]) => e.registries.size > 1)
    .map(([repository, e]) => ({ repository, sources: e.sources }));
}
