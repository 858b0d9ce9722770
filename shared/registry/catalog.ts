import { RemoteError } from '../cli/errors.ts';
import type { RegistryClient } from './client.ts';

/**
 * Listings of a registry, page by page (distribution-spec "Listing Tags" and
 * the catalog API of distribution's docs): GET with `n`, then follow the
 * `Link: <url>; rel="next"` header until there is none.
 */

/** Entries asked for per page; registries may answer fewer (distribution caps the catalog at 1000). */
export const DEFAULT_PAGE_SIZE = 1000;

/**
 * The URL of the next page from a Link header (RFC 8288), resolved against the
 * URL of the page that carried it; undefined when no link has rel "next".
 * Handles several links in one header, quoted or bare rel values and rel
 * lists ("next last").
 */
export function parseNextLink(link: string | undefined, base: URL): URL | undefined {
  if (link === undefined) return undefined;
  const re = /<([^>]*)>((?:\s*;\s*[A-Za-z*-]+\s*(?:=\s*(?:"(?:[^"\\]|\\.)*"|[^;,\s]*))?)*)/g;
  for (let m = re.exec(link); m !== null; m = re.exec(link)) {
    const params = m[2]!;
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]*))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (!rels.includes('next')) continue;
    try {
      return new URL(m[1]!, base);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The catalog answered 401, 403 or 404: the registry does not let this identity list repositories. */
export class CatalogRefusedError extends RemoteError {
  constructor(
    readonly status: number,
    registry: string,
  ) {
    const fromGit = 'build the inventory from the images of the bundle last loaded instead: --from-git URL [--git-path PATH] [--git-branch dev] (each image is then checked in the registry)';
    super(`registry ${registry} refuses to list its repositories (GET /v2/_catalog answered HTTP ${status}): many registries restrict or disable the catalog`, {
      hint:
        status === 401
          ? `if the registry needs credentials, give --registry-username with --registry-password-env (or docker login); if they are right, ${fromGit}`
          : `${fromGit}; or ask the registry operator for catalog access`,
    });
  }
}

export interface ListingOptions {
  /** Entries per page (n). */
  pageSize?: number;
  /** Refuse a listing longer than this (bounded memory). Default 10 million. */
  maxEntries?: number;
}

const DEFAULT_MAX_ENTRIES = 10_000_000;

/**
 * Every repository of the registry's catalog whose path is `prefix` or lies
 * under it ("" for all), in the order the registry lists them.
 */
export async function listRepositories(client: RegistryClient, prefix: string, options: ListingOptions = {}): Promise<string[]> {
  const under = prefix.replace(/^\/+|\/+$/g, '');
  const repositories: string[] = [];
  const what = `list the repositories of ${client.endpoint.registry}`;
  for await (const body of pages(client, '/v2/_catalog', ['registry:catalog:*'], what, options, 'catalog')) {
    const names = (body as { repositories?: unknown }).repositories;
    if (names !== undefined && names !== null && !Array.isArray(names)) throw new RemoteError(`${what}: the answer's "repositories" is not a list`);
    for (const name of (names ?? []) as unknown[]) {
      if (typeof name !== 'string') continue;
      if (under === '' || name === under || name.startsWith(`${under}/`)) repositories.push(name);
    }
    if (repositories.length > (options.maxEntries ?? DEFAULT_MAX_ENTRIES)) throw new RemoteError(`${what}: more than ${options.maxEntries ?? DEFAULT_MAX_ENTRIES} repositories`);
  }
  return repositories;
}

/** Every tag of a repository, or [] when the registry has no such repository. */
export async function listAllTags(client: RegistryClient, repository: string, options: ListingOptions = {}): Promise<string[]> {
  // `repository` is the path as the registry names it (a mirror's prefix included).
  const tags: string[] = [];
  const what = `list the tags of ${client.display(repository)}`;
  for await (const body of pages(client, `/v2/${repository}/tags/list`, [`repository:${repository}:pull`], what, options, 'tags')) {
    const names = (body as { tags?: unknown }).tags;
    // distribution answers "tags": null for a repository whose tags were all deleted.
    if (names !== undefined && names !== null && !Array.isArray(names)) throw new RemoteError(`${what}: the answer's "tags" is not a list`);
    for (const t of (names ?? []) as unknown[]) if (typeof t === 'string') tags.push(t);
    if (tags.length > (options.maxEntries ?? DEFAULT_MAX_ENTRIES)) throw new RemoteError(`${what}: more than ${options.maxEntries ?? DEFAULT_MAX_ENTRIES} tags`);
  }
  return tags;
}

/** Upper bound on pages of one listing: a registry whose Link loops must not keep airlock busy forever. */
const MAX_PAGES = 1_000_000;

async function* pages(
  client: RegistryClient,
  path: string,
  scopes: string[],
  what: string,
  options: ListingOptions,
  kind: 'catalog' | 'tags',
): AsyncGenerator<unknown> {
  let url: URL | undefined = new URL(path, client.endpoint.origin);
  url.searchParams.set('n', String(options.pageSize ?? DEFAULT_PAGE_SIZE));
  const seen = new Set<string>();
  for (let page = 0; url !== undefined; page++) {
    if (page >= MAX_PAGES || seen.has(url.href)) throw new RemoteError(`${what}: the registry's pages do not end (page ${page + 1} is ${url.pathname}${url.search})`);
    seen.add(url.href);
    const answer = await client.listingPage(url, scopes, what);
    if (answer.status !== 200) {
      if (kind === 'catalog') throw new CatalogRefusedError(answer.status, client.endpoint.registry);
      if (answer.status === 404) return;
      throw new RemoteError(`${what}: the registry answered HTTP ${answer.status}`);
    }
    yield answer.body;
    url = answer.next;
    if (url !== undefined && url.origin !== client.endpoint.origin.origin) throw new RemoteError(`${what}: the registry's next page is on another host (${url.origin})`);
  }
}
