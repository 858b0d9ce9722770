import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AirlockError, RemoteError, UsageError, VerificationError } from '../../../shared/cli/errors.ts';
import { parseYamlValue, yamlLimits } from '../../../shared/yaml/bounded.ts';
import { downloadToFile, redactUrl } from '../http-download.ts';
import { MAX_CHART_ARCHIVE_BYTES } from './archive.ts';
import type { ChartFetchContext } from './context.ts';
import { repositoryFor } from './repositories.ts';
import { highestMatch, parseConstraint } from './version.ts';

/**
 * HTTP(S) chart repositories (helm/helm pkg/repo): `index.yaml` lists each
 * chart's versions with the archive's sha256 (`digest`) and its `urls`,
 * absolute or relative to the repository. The index is size-capped and read
 * once per pack; the archive is streamed to disk and must match the digest,
 * or it is removed and the fetch fails (exit 3). Basic credentials from
 * repositories.yaml (or the URL) go to the repository's own origin only.
 */

export const MAX_INDEX_BYTES = 32 * 1024 * 1024;
const MiB = 1024 * 1024;

export interface IndexEntry {
  name: string;
  version: string;
  /** hex sha256 of the archive, when the index gives one. */
  digest?: string;
  urls: string[];
}

export interface RepoIndex {
  /** The repository URL as given (credentials kept: they are sent, never shown). */
  url: URL;
  entries: Map<string, IndexEntry[]>;
}

export interface DownloadedChart {
  file: string;
  /** hex */
  sha256: string;
  size: number;
  /** "harness-delegate-ng 1.0.32 from https://host/charts" */
  origin: string;
}

/** The repository's index, fetched once per context. */
export function loadIndex(repo: string, ctx: ChartFetchContext, from: string): Promise<RepoIndex> {
  const key = redactUrl(repo).replace(/\/+$/, '');
  let cached = ctx.indexes.get(key) as Promise<RepoIndex> | undefined;
  if (!cached) {
    cached = fetchIndex(repo, ctx, from);
    ctx.indexes.set(key, cached);
    cached.catch(() => ctx.indexes.delete(key));
  }
  return cached;
}

async function fetchIndex(repo: string, ctx: ChartFetchContext, from: string): Promise<RepoIndex> {
  let base: URL;
  try {
    base = new URL(repo);
  } catch {
    throw new UsageError(`${from}: ${JSON.stringify(redactUrl(repo))} is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new UsageError(`${from}: a chart repository is an http(s) URL, not ${base.protocol}`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const creds = repositoryFor(repo, ctx.repositories);
  const indexUrl = new URL('index.yaml', base);
  const dir = await ctx.newDir('index');
  const file = join(dir, 'index.yaml');
  const shown = `${from}: index ${redactUrl(indexUrl)}`;
  await downloadToFile(indexUrl, file, {
    transport: await ctx.transportFor(creds?.caFile),
    from: shown,
    maxBytes: MAX_INDEX_BYTES,
    tooBig: () => new RemoteError(`${shown}: more than ${MAX_INDEX_BYTES / MiB} MiB; that is not a chart repository index`),
    ...basicAuth(creds),
    deniedHint: "the repository refused access: add its credentials with helm repo add --username ... (Helm's repositories.yaml)",
  });
  let doc: unknown;
  try {
    const indexLimits = { ...yamlLimits(), maxFileBytes: MAX_INDEX_BYTES, maxDocumentBytes: MAX_INDEX_BYTES };
    doc = parseYamlValue(await readFile(file, 'utf8'), shown, 'source', {}, indexLimits);
  } catch (err) {
    if (err instanceof AirlockError) throw err;
    throw new RemoteError(`${shown}: not valid YAML: ${(err as Error).message.split('\n')[0]}`, { hint: 'check that the URL is a Helm chart repository' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const entries = (doc as { entries?: unknown } | null)?.entries;
  if (entries === null || typeof entries !== 'object' || Array.isArray(entries)) {
    throw new RemoteError(`${shown}: no entries: not a Helm chart repository index`, { hint: 'check the repository URL (helm repo add takes the same one)' });
  }
  const map = new Map<string, IndexEntry[]>();
  for (const [name, list] of Object.entries(entries as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    const versions: IndexEntry[] = [];
    for (const e of list as unknown[]) {
      if (e === null || typeof e !== 'object') continue;
      const o = e as Record<string, unknown>;
      const version = typeof o.version === 'string' || typeof o.version === 'number' ? String(o.version) : undefined;
      const urls = Array.isArray(o.urls) ? o.urls.filter((u): u is string => typeof u === 'string' && u !== '') : [];
      if (version === undefined || urls.length === 0) continue;
      const digest = typeof o.digest === 'string' && o.digest !== '' ? o.digest.replace(/^sha256:/, '').toLowerCase() : undefined;
      versions.push({ name, version, urls, ...(digest !== undefined ? { digest } : {}) });
    }
    map.set(name, versions);
  }
  return { url: base, entries: map };
}

/** The highest version of `name` in the index that the version text allows. */
export function resolveEntry(index: RepoIndex, name: string, version: string, from: string): IndexEntry {
  const versions = index.entries.get(name);
  const repo = redactUrl(index.url);
  if (!versions || versions.length === 0) {
    throw new RemoteError(`${from}: the chart repository ${repo} has no chart named ${JSON.stringify(name)}`, { hint: 'check the name (helm search repo lists them)' });
  }
  const constraint = parseConstraint(version, from);
  const chosen = highestMatch(versions.map((v) => v.version), constraint);
  if (chosen === undefined) {
    const newest = versions
      .map((v) => v.version)
      .slice(0, 5)
      .join(', ');
    throw new RemoteError(`${from}: no version of ${name} in ${repo} matches ${JSON.stringify(version)} (it has ${newest}${versions.length > 5 ? ', ...' : ''})`, {
      hint: 'change the version, or check the repository',
    });
  }
  return versions.find((v) => v.version === chosen)!;
}

/**
 * Download the entry's archive (its first URL, resolved against the
 * repository) into `dir` and check it against the index's digest. A mismatch
 * removes the file and is a VerificationError.
 */
export async function downloadEntry(index: RepoIndex, entry: IndexEntry, dir: string, ctx: ChartFetchContext, from: string): Promise<DownloadedChart> {
  let url: URL;
  try {
    url = new URL(entry.urls[0]!, index.url);
  } catch {
    throw new RemoteError(`${from}: the index gives ${entry.name} ${entry.version} the URL ${JSON.stringify(entry.urls[0])}, which is not one`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RemoteError(`${from}: the index points ${entry.name} ${entry.version} at ${redactUrl(url)}, which is not http(s)`);
  if (index.url.protocol === 'https:' && url.protocol !== 'https:') {
    throw new RemoteError(`${from}: the https repository points ${entry.name} ${entry.version} at plain http ${redactUrl(url)}`, { hint: 'use a repository that serves its charts over https' });
  }
  const creds = repositoryFor(index.url.toString(), ctx.repositories);
  // Credentials go to the repository's own origin only (Helm's pass_credentials_all is off by default).
  const sameOrigin = url.origin === index.url.origin;
  if (!sameOrigin) {
    url.username = '';
    url.password = '';
  }
  const file = join(dir, `${entry.name}-${entry.version}.tgz`.replace(/[^A-Za-z0-9._+-]/g, '_'));
  const shown = `${from}: ${entry.name} ${entry.version} from ${redactUrl(url)}`;
  const got = await downloadToFile(url, file, {
    transport: await ctx.transportFor(creds?.caFile),
    from: shown,
    maxBytes: MAX_CHART_ARCHIVE_BYTES,
    tooBig: () => new VerificationError(`${shown}: more than ${MAX_CHART_ARCHIVE_BYTES / MiB} MiB; that is not a chart archive`),
    ...(sameOrigin ? basicAuth(creds) : {}),
    deniedHint: "the server refused access: add the repository's credentials with helm repo add --username ... (Helm's repositories.yaml)",
  });
  if (entry.digest === undefined) {
    ctx.options.onLog?.(`${shown}: the repository index gives no digest; the archive downloaded with sha256 ${got.sha256}`);
  } else if (got.sha256 !== entry.digest) {
    await rm(file, { force: true });
    throw new VerificationError(`${shown}: the archive has sha256 ${got.sha256}, the repository index says ${entry.digest}`, {
      hint: 'the chart changed at its source or in transit; nothing was kept. Find out why before you trust this repository',
    });
  }
  return { file, sha256: got.sha256, size: got.size, origin: `${entry.name} ${entry.version} from ${redactUrl(index.url)}` };
}

function basicAuth(creds: { username?: string; password?: string } | undefined): { basicAuth?: { username: string; password: string } } {
  return creds?.username !== undefined || creds?.password !== undefined ? { basicAuth: { username: creds?.username ?? '', password: creds?.password ?? '' } } : {};
}
