import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { helm4 } from '../services/tools.ts';
import { airlock } from './cli.ts';
import { tarFile, tarHeader, TAR_END } from './tar.ts';

/**
 * Hostile sources for `airlock pack`, written into a folder with the spec
 * that names them: YAML alias bombs, nesting 100k deep, a 500 MB document, a
 * chart archive that expands past the cap, links and ".." in chart archives.
 * Each must be refused with `code` and a message matching `refusal`, with
 * nothing written, in bounded memory and time.
 */
export interface HostileSource {
  name: string;
  /** Writes the files and airlock.yaml into `dir` (empty); returns the spec's path. */
  write: (dir: string) => string;
  code: 2 | 3;
  refusal: RegExp;
}

/** "Billion laughs": nine levels of nine aliases, 9^9 nodes once expanded. */
export function aliasBomb(): string {
  const names = 'abcdefghi';
  let text = `${names[0]}: &${names[0]} ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n`;
  for (let i = 1; i < names.length; i++) text += `${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(',')}]\n`;
  return text;
}

const DEEP = 100_000;

function spec(dir: string, lines: string[]): string {
  const file = join(dir, 'airlock.yaml');
  writeFileSync(file, ['name: hostile', 'version: 1.0.0', ...lines, ''].join('\n'));
  return file;
}

function manifest(dir: string, body: string, discover = true): string {
  mkdirSync(join(dir, 'deploy'));
  writeFileSync(join(dir, 'deploy', 'app.yaml'), body);
  return spec(dir, [`discoverImages: ${discover}`, 'manifests:', '  - path: deploy']);
}

/** A chart folder "web" and a values file holding `values`. */
function chartWithValues(dir: string, values: string): string {
  mkdirSync(join(dir, 'web', 'templates'), { recursive: true });
  writeFileSync(join(dir, 'web', 'Chart.yaml'), 'apiVersion: v2\nname: web\nversion: 0.1.0\n');
  writeFileSync(join(dir, 'web', 'templates', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: web }\n');
  writeFileSync(join(dir, 'values.yaml'), values);
  return spec(dir, ['charts:', '  - { path: web, values: [values.yaml] }']);
}

/** A chart .tgz whose tar holds `entries` (raw tar blocks) after a good Chart.yaml. */
function chartArchive(dir: string, entries: Buffer[]): string {
  const chartYaml = Buffer.from('apiVersion: v2\nname: web\nversion: 0.1.0\n');
  writeFileSync(join(dir, 'web-0.1.0.tgz'), gzipSync(Buffer.concat([tarFile('web/Chart.yaml', chartYaml), ...entries, TAR_END])));
  return spec(dir, ['charts:', '  - path: web-0.1.0.tgz']);
}

/** A gzip stream of a tar whose one file declares `bytes` of zeros: a few hundred KB that expand past the cap. */
function gzipBomb(dir: string, bytes: number): string {
  const header = tarHeader('web/blob.bin', bytes);
  const chartYaml = tarFile('web/Chart.yaml', Buffer.from('apiVersion: v2\nname: web\nversion: 0.1.0\n'));
  // gzip of a run of zeros compresses ~1000:1; build it from one compressed MiB repeated as gzip members.
  const zeroMiB = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  const fd = openSync(join(dir, 'web-0.1.0.tgz'), 'w');
  try {
    writeSync(fd, gzipSync(Buffer.concat([chartYaml, header])));
    for (let i = 0; i < Math.ceil(bytes / (1024 * 1024)); i++) writeSync(fd, zeroMiB);
    writeSync(fd, gzipSync(TAR_END));
  } finally {
    closeSync(fd);
  }
  return spec(dir, ['charts:', '  - path: web-0.1.0.tgz']);
}

/** One YAML document of `bytes` (a single long plain scalar), written in 1 MiB chunks. */
function hugeDocument(dir: string, bytes: number): string {
  mkdirSync(join(dir, 'deploy'));
  const fd = openSync(join(dir, 'deploy', 'big.yaml'), 'w');
  try {
    writeSync(fd, 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: big }\ndata:\n  blob: ');
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < Math.ceil(bytes / chunk.length); i++) writeSync(fd, chunk);
    writeSync(fd, '\n');
  } finally {
    closeSync(fd);
  }
  return spec(dir, ['manifests:', '  - path: deploy']);
}

export const HOSTILE_SOURCES: HostileSource[] = [
  { name: 'manifest alias bomb', write: (d) => manifest(d, aliasBomb()), code: 3, refusal: /deploy\/app\.yaml: its aliases expand past 100 nodes/ },
  {
    name: 'spec alias bomb',
    write: (d) => spec(d, ['x-laughs:', ...aliasBomb().split('\n').map((l) => `  ${l}`), 'images: *i']),
    code: 2,
    refusal: /airlock\.yaml/,
  },
  { name: 'values alias bomb', write: (d) => chartWithValues(d, aliasBomb()), code: 2, refusal: /values\.yaml: its aliases expand past 1000 nodes/ },
  { name: 'manifest nested 100k deep (flow)', write: (d) => manifest(d, `${'['.repeat(DEEP)}${']'.repeat(DEEP)}\n`), code: 3, refusal: /app\.yaml: nests deeper than 200 levels/ },
  { name: 'manifest nested 100k deep (block), discovery off', write: (d) => manifest(d, `${'- '.repeat(DEEP)}x\n`, false), code: 3, refusal: /app\.yaml: nests deeper than 200 levels/ },
  { name: 'spec nested 100k deep', write: (d) => spec(d, [`images: ${'['.repeat(DEEP)}${']'.repeat(DEEP)}`]), code: 2, refusal: /airlock\.yaml: nests deeper than 200 levels/ },
  { name: 'values nested 100k deep', write: (d) => chartWithValues(d, `a: ${'{b: '.repeat(DEEP)}1${'}'.repeat(DEEP)}\n`), code: 2, refusal: /values\.yaml: nests deeper than 200 levels/ },
  { name: 'manifest: one 500 MB document', write: (d) => hugeDocument(d, 500 * 1024 * 1024), code: 3, refusal: /big\.yaml: 500 MiB of YAML, more than the 64 MiB a YAML file may hold/ },
  { name: 'chart archive expanding past the cap (gzip bomb)', write: (d) => gzipBomb(d, 300 * 1024 * 1024), code: 3, refusal: /refused the archive: it expands to more than 256 MiB/ },
  { name: 'chart archive with a symbolic link', write: (d) => chartArchive(d, [tarHeader('web/values.yaml', 0, '2', '/etc/passwd')]), code: 3, refusal: /"web\/values\.yaml" is a symbolic link to "\/etc\/passwd"/ },
  { name: 'chart archive with a hard link', write: (d) => chartArchive(d, [tarHeader('web/values.yaml', 0, '1', '/etc/passwd')]), code: 3, refusal: /"web\/values\.yaml" is a hard link to "\/etc\/passwd"/ },
  { name: 'chart archive with ".." in a path', write: (d) => chartArchive(d, [tarFile('web/../../escape.yaml', Buffer.from('x: 1\n'))]), code: 3, refusal: /climbs out of the archive with "\.\."/ },
];

/** The heap `packHostile` runs pack with: a parser that expanded a bomb or read the whole document dies of it. */
export const HOSTILE_HEAP_MB = 192;

/**
 * Write the case into `dir` (created, then removed), run the built CLI's pack
 * on it with a capped heap, and say what was wrong, or undefined when it was
 * refused as it must be: its exit code, its message, no bundle, no crash.
 */
export async function packHostile(c: HostileSource, dir: string, key: string, password: string): Promise<string | undefined> {
  mkdirSync(dir);
  try {
    const spec = c.write(dir);
    const res = await airlock(['pack', '-f', spec, '-o', join(dir, 'out.tar'), '--key', key, '--helm', helm4()], {
      env: { AIRLOCK_PASSWORD: password, NODE_OPTIONS: `--max-old-space-size=${HOSTILE_HEAP_MB}` },
      timeoutMs: 60_000,
    });
    const said = `exit ${res.code}${res.signal ? ` (${res.signal})` : ''}: ${res.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    const left = readdirSync(dir).filter((f) => f.startsWith('out.tar'));
    if (res.code !== c.code || !c.refusal.test(res.stderr) || /heap out of memory|RangeError|a bug in airlock/.test(res.stderr)) return `${c.name}: wanted exit ${c.code} ${c.refusal}, got ${said}`;
    if (left.length > 0) return `${c.name}: left ${left.join(', ')}`;
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
