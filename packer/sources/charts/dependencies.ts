import { copyFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UsageError, VerificationError } from '../../../shared/cli/errors.ts';
import { copyChartFolder, extractChart, packChart } from './archive.ts';
import type { ChartFetchContext } from './context.ts';
import { parseChartYaml, readChartLock, readChartYaml, type ChartDependency, type ChartLock, type ChartMetadata } from './metadata.ts';
import { ociDependencyRef, pullOciChart } from './oci.ts';
import { downloadEntry, loadIndex, resolveEntry } from './repo.ts';
import { repositoryNamed } from './repositories.ts';
import { parseChartVersion, parseConstraint, sameVersion, satisfies } from './version.ts';

/**
 * Completing a chart's dependencies, as `helm dependency build` would: every
 * Chart.yaml dependency that the chart's charts/ folder lacks (matched by
 * chart name, as Helm matches them) is fetched from its repository (https
 * chart repository, oci://, file:// relative to the chart folder, or a
 * repositories.yaml name as "@name"), at its Chart.lock version when there
 * is one and the highest version its range allows otherwise, and written as
 * charts/NAME-VERSION.tgz. Subcharts, vendored or fetched, are completed the
 * same way, recursively; one whose content changed is packed again
 * deterministically. Chart.yaml and Chart.lock are left as they are (aliases,
 * conditions and tags are Helm's business at render time).
 */
export interface CompletionResult {
  /** True when anything was added anywhere below the chart. */
  changed: boolean;
  /** "charts/ng-manager-1.158.4.tgz: ng-manager 1.158.4 from oci://host/path/ng-manager:1.158.4", nested ones prefixed. */
  added: string[];
}

export interface CompleteOptions {
  /** Names the chart in messages. */
  from: string;
  /** The chart's own folder on the user's disk, for file:// dependencies (folder sources only). */
  localBase?: string;
}

/** How deep subcharts may nest, and how many charts one pack may fetch for dependencies. */
export const MAX_DEPENDENCY_DEPTH = 16;
export const MAX_FETCHED_DEPENDENCIES = 2_000;

interface Vendored {
  name: string;
  /** The subchart's folder in the tree being completed, or its unpacked copy. */
  dir: string;
  /** For charts/*.tgz: the archive, packed again when the subchart changes. */
  archive?: string;
}

/** A fetched dependency's final archive, shared by every chart that needs the same one. */
interface Fetched {
  file: string;
  name: string;
  version: string;
  origin: string;
  added: string[];
}

export class DependencyCompleter {
  private readonly fetched = new Map<string, Promise<Fetched>>();

  constructor(private readonly ctx: ChartFetchContext) {}

  /** Complete the unpacked chart in `chartDir` in place. */
  complete(chartDir: string, options: CompleteOptions): Promise<CompletionResult> {
    return this.completeAt(chartDir, options, []);
  }

  private async completeAt(chartDir: string, options: CompleteOptions, trail: string[]): Promise<CompletionResult> {
    const meta = await readChartYaml(join(chartDir, 'Chart.yaml'), `${options.from}: Chart.yaml`);
    const path = [...trail, meta.name];
    if (path.length > MAX_DEPENDENCY_DEPTH) {
      throw new VerificationError(`${options.from}: subcharts nest deeper than ${MAX_DEPENDENCY_DEPTH} levels (${path.join(' > ')})`);
    }
    const dependencies = await declaredDependencies(chartDir, meta, options.from);
    const lock = await readChartLock(join(chartDir, 'Chart.lock'), `${options.from}: Chart.lock`);
    const added: string[] = [];
    let changed = false;

    // Vendored subcharts first: they may lack their own dependencies (Harness's module charts do).
    const vendored = await this.vendored(chartDir, options.from);
    for (const v of vendored) {
      const sub = await this.completeAt(v.dir, { from: `${options.from} > ${v.name}`, ...subBase(options.localBase, chartDir, v) }, path);
      if (!sub.changed) continue;
      changed = true;
      if (v.archive !== undefined) {
        await rm(v.archive);
        await packChart(v.dir, v.name, v.archive);
      }
      added.push(...sub.added.map((a) => `charts/${v.archive ? basenameOf(v.archive) : `${basenameOf(v.dir)}/`} > ${a}`));
    }

    const present = new Set(vendored.map((v) => v.name));
    const written = new Set<string>();
    for (const dep of dependencies) {
      if (present.has(dep.name)) continue;
      const version = lockedVersion(dep, lock, options.from);
      const got = await this.fetch(dep, version, options, path);
      const target = `${dep.name}-${got.version}.tgz`;
      if (!written.has(target)) {
        await mkdir(join(chartDir, 'charts'), { recursive: true });
        await copyFile(got.file, join(chartDir, 'charts', target));
        written.add(target);
        added.push(`charts/${target}: ${got.origin}`, ...got.added.map((a) => `charts/${target} > ${a}`));
      }
      changed = true;
    }
    return { changed, added };
  }

  /** charts/: folders holding Chart.yaml, and .tgz archives (unpacked into the work folder). */
  private async vendored(chartDir: string, from: string): Promise<Vendored[]> {
    const dir = join(chartDir, 'charts');
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const out: Vendored[] = [];
    for (const e of entries) {
      const full = join(dir, e.name);
      if (e.isDirectory()) {
        const has = await stat(join(full, 'Chart.yaml')).catch(() => undefined);
        if (!has?.isFile()) continue;
        const meta = await readChartYaml(join(full, 'Chart.yaml'), `${from}: charts/${e.name}/Chart.yaml`);
        out.push({ name: meta.name, dir: full });
      } else if (e.isFile() && e.name.endsWith('.tgz')) {
        const into = await this.ctx.newDir(`vendored-${e.name}`);
        const sub = await extractChart(full, into, `${from}: charts/${e.name}`);
        const meta = await readChartYaml(join(sub, 'Chart.yaml'), `${from}: charts/${e.name}: Chart.yaml`);
        out.push({ name: meta.name, dir: sub, archive: full });
      }
    }
    return out;
  }

  /** The dependency's final archive (fetched, completed, repacked if it changed), once per pack. */
  private fetch(dep: ChartDependency, version: string, options: CompleteOptions, trail: string[]): Promise<Fetched> {
    const key = `${dep.repository.startsWith('file://') ? resolve(options.localBase ?? '', dep.repository.slice(7)) : dep.repository}|${dep.name}|${version}`;
    let p = this.fetched.get(key);
    if (!p) {
      if (this.fetched.size >= MAX_FETCHED_DEPENDENCIES) {
        throw new VerificationError(`${options.from}: more than ${MAX_FETCHED_DEPENDENCIES} dependency charts to fetch`);
      }
      p = this.fetchNew(dep, version, options, trail);
      this.fetched.set(key, p);
    }
    return p;
  }

  private async fetchNew(dep: ChartDependency, version: string, options: CompleteOptions, trail: string[]): Promise<Fetched> {
    const from = `${options.from}: dependency ${dep.name}${dep.alias ? ` (alias ${dep.alias})` : ''}`;
    const dir = await this.ctx.newDir(`dep-${dep.name}`);
    let repository = dep.repository;
    const named = /^(?:@|alias:)(.+)$/.exec(repository)?.[1];
    if (named !== undefined) {
      const entry = repositoryNamed(named, this.ctx.repositories);
      if (!entry) {
        throw new UsageError(`${from}: the repository ${JSON.stringify(dep.repository)} is not in Helm's repository config`, {
          hint: `add it with helm repo add ${named} URL, or vendor the chart into charts/`,
        });
      }
      repository = entry.url;
    }

    let archive: string | undefined;
    let folder: string | undefined;
    let origin: string;
    let resolvedVersion = version;
    let localBase: string | undefined;
    if (repository === '') {
      throw new UsageError(`${from}: not in charts/ and no repository to fetch it from`, { hint: 'vendor the chart into charts/, or give the dependency a repository' });
    } else if (/^https?:\/\//.test(repository)) {
      const index = await loadIndex(repository, this.ctx, from);
      const entry = resolveEntry(index, dep.name, version, from);
      const got = await downloadEntry(index, entry, dir, this.ctx, from);
      archive = got.file;
      origin = got.origin;
      resolvedVersion = entry.version;
    } else if (repository.startsWith('oci://')) {
      const got = await pullOciChart(ociDependencyRef(repository, dep.name, from), version, dir, this.ctx, from);
      archive = got.file;
      origin = got.origin;
      resolvedVersion = got.version;
    } else if (repository.startsWith('file://')) {
      if (options.localBase === undefined) {
        throw new UsageError(`${from}: ${dep.repository} points at a folder next to the chart, which only a chart folder has`, {
          hint: 'vendor the dependency into charts/ before packaging the chart, or use the chart folder as the source',
        });
      }
      const target = resolve(options.localBase, repository.slice('file://'.length));
      const st = await stat(target).catch(() => undefined);
      if (st?.isDirectory()) {
        folder = await copyChartFolder(target, join(dir, 'src', dep.name), from);
        localBase = target;
      } else if (st?.isFile()) archive = target;
      else throw new UsageError(`${from}: ${dep.repository} (${target}) is neither a chart folder nor an archive`);
      origin = dep.repository;
    } else {
      throw new UsageError(`${from}: the repository ${JSON.stringify(dep.repository)} is none airlock can fetch from`, {
        hint: 'use an https:// chart repository, an oci:// registry, a file:// path, or vendor the chart into charts/',
      });
    }

    const chartDir = folder ?? (await extractChart(archive!, join(dir, 'unpacked'), `${from} (${origin})`));
    const meta = await readChartYaml(join(chartDir, 'Chart.yaml'), `${from}: Chart.yaml`);
    if (meta.name !== dep.name) {
      throw new VerificationError(`${from}: ${origin} holds the chart ${JSON.stringify(meta.name)}, not ${JSON.stringify(dep.name)}`);
    }
    if (folder === undefined && !sameVersion(meta.version, resolvedVersion)) {
      throw new VerificationError(`${from}: ${origin} holds version ${meta.version} of ${meta.name}, not ${resolvedVersion}`);
    }
    const sub = await this.completeAt(chartDir, { from: `${options.from} > ${dep.name}`, ...(localBase !== undefined ? { localBase } : {}) }, trail);
    let file = archive!;
    if (folder !== undefined || sub.changed) {
      await mkdir(join(dir, 'completed'));
      file = join(dir, 'completed', `${meta.name}-${meta.version}.tgz`);
      await packChart(chartDir, meta.name, file);
    }
    return { file, name: meta.name, version: meta.version, origin, added: sub.added };
  }
}

/** Chart.yaml's dependencies, or requirements.yaml's for an apiVersion v1 chart. */
async function declaredDependencies(chartDir: string, meta: ChartMetadata, from: string): Promise<ChartDependency[]> {
  if (meta.dependencies.length > 0 || meta.apiVersion !== 'v1') return meta.dependencies;
  const req = join(chartDir, 'requirements.yaml');
  if (!(await stat(req).catch(() => undefined))?.isFile()) return [];
  const text = await readFile(req, 'utf8');
  return parseChartYaml(`name: x\nversion: 0.0.0\n${text.replace(/^---\s*$/m, '')}`, `${from}: requirements.yaml`).dependencies;
}

/** The version to fetch: Chart.lock's for this dependency when there is one, else Chart.yaml's range. */
function lockedVersion(dep: ChartDependency, lock: ChartLock | undefined, from: string): string {
  const locked =
    lock?.dependencies.find((l) => l.name === dep.name && l.repository === dep.repository) ?? lock?.dependencies.find((l) => l.name === dep.name);
  if (locked === undefined || locked.version === '') return dep.version;
  const v = parseChartVersion(locked.version);
  if (v !== undefined && dep.version !== '' && !satisfies(v, parseConstraint(dep.version, `${from}: dependency ${dep.name}`))) {
    throw new UsageError(`${from}: Chart.lock pins ${dep.name} ${locked.version}, which Chart.yaml's ${JSON.stringify(dep.version)} does not allow`, {
      hint: 'the lock file is out of sync with Chart.yaml: run helm dependency update on the chart',
    });
  }
  return locked.version;
}


function subBase(localBase: string | undefined, chartDir: string, v: Vendored): { localBase?: string } {
  if (localBase === undefined || v.archive !== undefined) return {};
  return { localBase: join(localBase, v.dir.slice(chartDir.length + 1)) };
}

function basenameOf(p: string): string {
  return p.split('/').pop() ?? p;
}
