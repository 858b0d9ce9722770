import { formatReference, type ImageReference } from './reference.ts';

/**
 * Where a source image lands inside the enclave (DESIGN.md §6): the source
 * host is dropped and the path kept, under the target registry's optional
 * prefix. docker.io/harness/ng-manager:1.0 -> PREFIX/harness/ng-manager:1.0,
 * docker.io/nginx -> PREFIX/library/nginx.
 */
export function internalRepository(ref: ImageReference, prefix = '', mapDepth?: number): string {
  return underPrefix(prefix, limitDepth(ref.repository, mapDepth));
}

/**
 * Where the enclave's names go: its registry host, the optional prefix, and
 * --map-depth (for registries that refuse deep repository paths).
 */
export interface EnclaveRegistry {
  host: string;
  prefix: string;
  /** Keep at most this many path segments under the prefix (--map-depth). */
  mapDepth?: number;
}

/**
 * --map-depth N: a repository path (under the prefix) of at most N segments,
 * the first N-1 kept and the rest joined with "-":
 * ingress-nginx/controller/chroot at 2 -> ingress-nginx/controller-chroot.
 */
export function limitDepth(path: string, mapDepth?: number): string {
  if (mapDepth === undefined) return path;
  if (!Number.isInteger(mapDepth) || mapDepth < 1) throw new RangeError(`map depth ${mapDepth}: a whole number of at least 1`);
  const segments = path.split('/');
  if (segments.length <= mapDepth) return path;
  return [...segments.slice(0, mapDepth - 1), segments.slice(mapDepth - 1).join('-')].join('/');
}

/** PREFIX/path, or path without a prefix. */
export function underPrefix(prefix: string, path: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p === '' ? path : `${p}/${path}`;
}

/**
 * Source repositories that --map-depth folds into one enclave repository
 * (a/b/c and a/b-c both become a/b-c at depth 2): their tags would mix.
 */
export function depthConflicts(paths: readonly string[], mapDepth: number | undefined): MappingConflict[] {
  if (mapDepth === undefined) return [];
  const bySource = new Map<string, Set<string>>();
  for (const path of paths) {
    const mapped = limitDepth(path, mapDepth);
    let sources = bySource.get(mapped);
    if (!sources) bySource.set(mapped, (sources = new Set()));
    sources.add(path);
  }
  return [...bySource].filter(([, s]) => s.size > 1).map(([repository, s]) => ({ repository, sources: [...s].sort() }));
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
