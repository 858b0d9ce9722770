import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { AirlockError, UsageError, VerificationError } from '../../shared/cli/errors.ts';
import { parseYamlValue } from '../../shared/yaml/bounded.ts';

/**
 * The parts of a chart (a folder or a .tgz) and of every subchart under its
 * charts/ (folders and .tgz archives, to any depth) that airlock reads without
 * Helm: each chart's Chart.yaml and the text of its templates. Read into
 * memory (they are small), nothing written to disk, so a hostile path in an
 * archive cannot land anywhere; caps on sizes, entries and nesting stop an
 * archive that expands without end (exit 3).
 */
export interface ChartMeta {
  /** Chart names from the top chart down: ["harness", "platform", "ng-manager"]. */
  chain: string[];
  name: string;
  version: string;
  /** Chart.yaml annotations (string values only). */
  annotations: Record<string, string>;
  /** templates/... path -> text. */
  templates: Map<string, string>;
}

export const MAX_CHART_FILE_BYTES = 8 * 1024 * 1024;
export const MAX_CHART_TOTAL_BYTES = 256 * 1024 * 1024;
export const MAX_CHART_ENTRIES = 100_000;
export const MAX_CHART_DEPTH = 8;

interface Budget {
  bytes: number;
  entries: number;
}

/** Files of one chart, by path relative to the chart's root folder. */
type FileMap = Map<string, Buffer>;

/** Every chart in `chart` (itself first, then its subcharts depth first, in path order). */
export async function readChartTree(chart: string, label = chart): Promise<ChartMeta[]> {
  const budget: Budget = { bytes: 0, entries: 0 };
  let info;
  try {
    info = await lstat(chart);
  } catch {
    throw new UsageError(`chart ${label}: not found`, { hint: 'give a chart folder or a .tgz chart archive' });
  }
  const files = info.isDirectory() ? await readFolder(chart, '', budget, label) : info.isFile() ? await readArchive(createReadStream(chart), budget, label) : undefined;
  if (files === undefined) throw new UsageError(`chart ${label}: neither a folder nor a file`, { hint: 'give a chart folder or a .tgz chart archive' });
  const out: ChartMeta[] = [];
  await collect(files, [], label, budget, out);
  return out;
}

/**
 * Is this path (relative to a chart root) one airlock reads? Chart.yaml,
 * templates/** and charts/*.tgz, of the chart and of each subchart folder
 * (charts/NAME/...).
 */
function wanted(rel: string): boolean {
  let r = rel;
  for (let m = /^charts\/[^/]+\//.exec(r); m; m = /^charts\/[^/]+\//.exec(r)) r = r.slice(m[0].length);
  return r === 'Chart.yaml' || r.startsWith('templates/') || /^charts\/[^/]+\.tgz$/i.test(r);
}

async function readFolder(root: string, rel: string, budget: Budget, label: string): Promise<FileMap> {
  const files: FileMap = new Map();
  const walk = async (dirRel: string): Promise<void> => {
    const entries = await readdir(join(root, dirRel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = dirRel === '' ? e.name : `${dirRel}/${e.name}`;
      if (e.isDirectory()) {
        if (dirRel === '' && !['templates', 'charts'].includes(e.name)) continue;
        await walk(p);
      } else if (e.isFile() && wanted(p)) {
        count(budget, (await lstat(join(root, p))).size, `${label}/${p}`);
        files.set(p, await readFile(join(root, p)));
      }
    }
  };
  await walk(rel);
  return files;
}

/**
 * Read a chart archive (gzip'd tar, one top folder) into a FileMap of the
 * wanted files, the top folder stripped.
 */
async function readArchive(source: NodeJS.ReadableStream | Buffer, budget: Budget, label: string): Promise<FileMap> {
  const files: FileMap = new Map();
  let failure: Error | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const parts = entry.path.replace(/\/+$/, '').split('/');
      const rel = parts.slice(1).join('/');
      const safe = parts.length > 1 && !parts.some((p) => p === '..' || p === '') && posix.normalize(rel) === rel;
      if (failure || entry.type !== 'File' || !safe || !wanted(rel)) {
        entry.resume();
        return;
      }
      try {
        count(budget, entry.size, `${label}: ${entry.path}`);
      } catch (err) {
        failure = err as Error;
        entry.resume();
        setImmediate(() => parser.abort(failure!));
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => files.set(rel, Buffer.concat(chunks)));
    },
  });
  try {
    await new Promise<void>((resolveEnd, reject) => {
      parser.on('error', reject);
      parser.once('end', () => resolveEnd());
      if (Buffer.isBuffer(source)) {
        parser.end(source);
      } else {
        source.on('error', reject);
        source.pipe(parser);
      }
    });
  } catch (err) {
    if (failure) throw failure;
    throw new VerificationError(`chart ${label}: not a readable chart archive (${(err as Error).message})`, {
      hint: 'a chart archive is a gzip-compressed tar with one top folder (helm package makes one)',
    });
  } finally {
    if (!Buffer.isBuffer(source) && 'destroy' in source) (source as NodeJS.ReadableStream & { destroy(): void }).destroy();
  }
  if (failure) throw failure;
  return files;
}

function count(budget: Budget, size: number, what: string): void {
  budget.entries += 1;
  budget.bytes += size;
  if (size > MAX_CHART_FILE_BYTES) {
    throw new VerificationError(`${what}: ${size} bytes, more than a chart file may hold (${MAX_CHART_FILE_BYTES})`);
  }
  if (budget.bytes > MAX_CHART_TOTAL_BYTES || budget.entries > MAX_CHART_ENTRIES) {
    throw new VerificationError(`${what}: the chart and its subcharts expand past ${MAX_CHART_TOTAL_BYTES} bytes or ${MAX_CHART_ENTRIES} files`, {
      hint: 'this is not a chart airlock can pack; check where it came from',
    });
  }
}

async function collect(files: FileMap, parents: string[], label: string, budget: Budget, out: ChartMeta[]): Promise<void> {
  if (parents.length > MAX_CHART_DEPTH) {
    throw new VerificationError(`chart ${label}: subcharts nested deeper than ${MAX_CHART_DEPTH}`);
  }
  const where = [label, ...parents.map((p) => `charts/${p}`)].join('/');
  const chartYaml = files.get('Chart.yaml');
  if (chartYaml === undefined) throw new UsageError(`chart ${where}: no Chart.yaml`, { hint: 'a chart folder or archive has Chart.yaml at its top' });
  const meta = parseChartYaml(chartYaml.toString('utf8'), `${where}/Chart.yaml`);
  const chain = [...parents, meta.name];
  const templates = new Map<string, string>();
  const subFolders = new Map<string, FileMap>();
  const subArchives: [string, Buffer][] = [];
  for (const [rel, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (rel.startsWith('templates/')) templates.set(rel, bytes.toString('utf8'));
    else if (rel.startsWith('charts/')) {
      const rest = rel.slice('charts/'.length);
      const slash = rest.indexOf('/');
      if (slash < 0) {
        if (/\.tgz$/i.test(rest)) subArchives.push([rest, bytes]);
      } else {
        const dir = rest.slice(0, slash);
        if (!subFolders.has(dir)) subFolders.set(dir, new Map());
        subFolders.get(dir)!.set(rest.slice(slash + 1), bytes);
      }
    }
  }
  out.push({ chain, name: meta.name, version: meta.version, annotations: meta.annotations, templates });
  for (const sub of subFolders.values()) {
    if (sub.has('Chart.yaml')) await collect(sub, chain, label, budget, out);
  }
  for (const [file, bytes] of subArchives) {
    await collect(await readArchive(bytes, budget, `${where}/charts/${file}`), chain, label, budget, out);
  }
}

function parseChartYaml(text: string, where: string): { name: string; version: string; annotations: Record<string, string> } {
  let doc: unknown;
  try {
    doc = parseYamlValue(text, where, 'source');
  } catch (err) {
    if (err instanceof AirlockError) throw err;
    throw new UsageError(`${where}: invalid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const obj = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>) : {};
  if (typeof obj.name !== 'string' || obj.name === '') throw new UsageError(`${where}: no name`);
  const annotations: Record<string, string> = {};
  if (typeof obj.annotations === 'object' && obj.annotations !== null) {
    for (const [k, v] of Object.entries(obj.annotations as Record<string, unknown>)) if (typeof v === 'string') annotations[k] = v;
  }
  return { name: obj.name, version: obj.version === undefined ? '' : String(obj.version), annotations };
}
