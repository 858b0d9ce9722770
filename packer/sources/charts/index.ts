import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, VerificationError } from '../../../shared/cli/errors.ts';
import { copyChartFolder, extractChart, hashFile, packChart } from './archive.ts';
import { buildChartArtifact, type ChartArtifact } from './artifact.ts';
import { ChartFetchContext, type ChartFetchOptions } from './context.ts';
import { DependencyCompleter } from './dependencies.ts';
import { readChartYaml, type ChartMetadata } from './metadata.ts';
import { parseOciChartUrl, pullOciChart } from './oci.ts';
import { downloadEntry, loadIndex, resolveEntry } from './repo.ts';
import { sameVersion } from './version.ts';

export { ChartFetchContext, type ChartFetchOptions } from './context.ts';
export type { ChartArtifact, ArtifactBlob } from './artifact.ts';
export { ChartArtifactContent } from './artifact.ts';

/**
 * A chart as the spec names it (DESIGN.md §5 `charts:`), fetched, its
 * dependencies completed, and turned into the OCI artifact the bundle
 * carries. A chart that lacked nothing keeps its original archive (and, from
 * an OCI registry, its original manifest, config and layers: the same
 * digests); one that airlock completed is packed again deterministically.
 */
export type ChartSourceSpec =
  | { kind: 'repo'; repo: string; name: string; version: string }
  | { kind: 'oci'; oci: string; version: string }
  /** A chart folder or .tgz; absolute (the spec's reader resolves it against the spec's folder). */
  | { kind: 'path'; path: string }
  | { kind: 'git'; git: { url: string; ref?: string; path?: string } };

export interface FetchedChart {
  name: string;
  version: string;
  /** Chart.yaml of the chart as packed. */
  metadata: ChartMetadata;
  /** The chart archive the bundle carries (the artifact's chart layer). */
  archive: { file: string; sha256: string; size: number };
  /** The unpacked, completed chart folder, for helm template. */
  dir: string;
  artifact: ChartArtifact;
  /** True when airlock added dependencies and packed the chart again (or packed a folder). */
  repackaged: boolean;
  /** What was added, one line each ("charts/x-1.0.0.tgz: x 1.0.0 from https://..."). */
  added: string[];
  /** Where it came from, for airlock.json and messages (no credentials). */
  source: string;
}

/** One spec entry, `charts[i]`. */
export async function fetchChart(source: ChartSourceSpec, i: number, ctx: ChartFetchContext, completer = new DependencyCompleter(ctx)): Promise<FetchedChart> {
  const from = describe(source, i);
  const dir = await ctx.newDir(`chart-${i}`);

  // 1. The chart as published: an archive (repo, oci, path .tgz) or a folder (path, git).
  let archive: { file: string; sha256: string; size: number } | undefined;
  let original: ChartArtifact | undefined;
  let folder: string | undefined;
  let expect: { name?: string; version?: string } = {};
  let origin: string;
  switch (source.kind) {
    case 'repo': {
      const index = await loadIndex(source.repo, ctx, from);
      const entry = resolveEntry(index, source.name, source.version, from);
      const got = await downloadEntry(index, entry, dir, ctx, from);
      archive = got;
      origin = got.origin;
      expect = { name: source.name, version: entry.version };
      break;
    }
    case 'oci': {
      const ref = parseOciChartUrl(source.oci, from);
      const got = await pullOciChart(ref, source.version, dir, ctx, from);
      archive = got;
      original = got.artifact;
      origin = got.origin;
      expect = { name: ref.repository.split('/').pop()!, version: got.version };
      break;
    }
    case 'path': {
      const st = await stat(source.path).catch(() => undefined);
      if (st?.isFile()) {
        archive = { file: source.path, ...(await hashFile(source.path)) };
      } else if (st?.isDirectory()) {
        folder = source.path;
      } else {
        throw new UsageError(`${from}: no such chart folder or archive`, { hint: 'charts[].path is relative to the spec file’s folder' });
      }
      origin = source.path;
      break;
    }
    case 'git': {
      if (ctx.options.fetchGitFolder === undefined) {
        throw new UsageError(`${from}: git chart sources are not available in this build`, { hint: 'use a path source on a checkout of the repository' });
      }
      const fetched = await ctx.options.fetchGitFolder(source.git, join(dir, 'git'));
      folder = fetched.dir;
      // The commit, not the ref: a branch moves, and the bundle says exactly what was packed.
      origin = `${redact(source.git.url)}@${fetched.commit}${source.git.path ? `:${source.git.path}` : ''}`;
      break;
    }
  }

  // 2. Unpacked (or copied) into airlock's work folder, checked against what was asked for.
  const chartDir = archive ? await extractChart(archive.file, join(dir, 'unpacked'), from) : await copyChartFolder(folder!, join(dir, 'folder', 'chart'), from);
  const metadata = await readChartYaml(join(chartDir, 'Chart.yaml'), `${from}: Chart.yaml`);
  if (expect.name !== undefined && metadata.name !== expect.name) {
    throw new VerificationError(`${from}: ${origin} holds the chart ${JSON.stringify(metadata.name)}, not ${JSON.stringify(expect.name)}`);
  }
  if (expect.version !== undefined && !sameVersion(metadata.version, expect.version)) {
    throw new VerificationError(`${from}: ${origin} holds version ${metadata.version} of ${metadata.name}, not ${expect.version}`);
  }

  // 3. Dependencies.
  const completion = await completer.complete(chartDir, { from, ...(folder !== undefined && source.kind === 'path' ? { localBase: folder } : {}) });

  // 4. The archive and artifact the bundle carries.
  const repackaged = completion.changed || archive === undefined;
  let artifact: ChartArtifact;
  if (repackaged) {
    await mkdir(join(dir, 'completed'));
    const file = join(dir, 'completed', `${metadata.name}-${metadata.version}.tgz`);
    archive = { file, ...(await packChart(chartDir, metadata.name, file)) };
    artifact = await buildChartArtifact(file, metadata.raw, dir);
  } else {
    artifact = original ?? (await buildChartArtifact(archive!.file, metadata.raw, dir));
  }
  return {
    name: metadata.name,
    version: metadata.version,
    metadata,
    archive: archive!,
    dir: chartDir,
    artifact,
    repackaged,
    added: completion.added,
    source: origin,
  };
}

/** Every spec entry, in order, sharing one context (indexes read once, dependencies fetched once). */
export async function fetchCharts(sources: ChartSourceSpec[], options: ChartFetchOptions): Promise<FetchedChart[]> {
  const ctx = new ChartFetchContext(options);
  try {
    const completer = new DependencyCompleter(ctx);
    const out: FetchedChart[] = [];
    for (const [i, s] of sources.entries()) out.push(await fetchChart(s, i, ctx, completer));
    return out;
  } finally {
    await ctx.close();
  }
}

function describe(source: ChartSourceSpec, i: number): string {
  switch (source.kind) {
    case 'repo':
      return `charts[${i}] ${source.name} ${source.version} from ${redact(source.repo)}`;
    case 'oci':
      return `charts[${i}] ${source.oci} ${source.version}`;
    case 'path':
      return `charts[${i}].path ${source.path}`;
    case 'git':
      return `charts[${i}].git ${redact(source.git.url)}`;
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
