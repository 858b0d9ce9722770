/**
 * Summarize a V8 CPU profile (`node --cpu-prof` writes *.cpuprofile): the top
 * functions and the top modules by self time. Run alone with
 * `npx tsx scripts/profile-summary.ts FILE.cpuprofile [TOP]`, or from the bench
 * (BENCH_PROFILE=1). Modules are found from an unminified one-file build
 * (AIRLOCK_BUILD_MINIFY=0 npm run build): esbuild marks where each module starts
 * with a `// path/to/module.ts` comment line, in the file and in its lazily
 * compiled command chunk (profiled as `FILE (commands)`).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const CHUNK_SUFFIX = ' (commands)';
const MODULE_COMMENT = /^\s*\/\/ ((?:[\w@.-]+\/)*[\w@.-]+\.(?:ts|js|mjs|cjs|json))$/;

/** Per source text, the line numbers where each module starts (ascending), for a line -> module lookup. */
function moduleStarts(text: string): { line: number; module: string }[] {
  const starts: { line: number; module: string }[] = [];
  text.split('\n').forEach((l, i) => {
    const m = MODULE_COMMENT.exec(l);
    if (m) starts.push({ line: i, module: m[1]!.replace(/^node_modules\/((?:@[^/]+\/)?[^/]+).*/, '$1') });
  });
  return starts;
}

/** A profile url as a path (V8 gives `file:///...airlock.mjs%20(commands)` for the chunk). */
const urlPath = (url: string): string => (url.startsWith('file:') ? fileURLToPath(url) : url);

/** The text behind a profile url: the file, or for `FILE (commands)` the chunk string the one-file build embeds. */
function sourceText(url: string): string | undefined {
  try {
    const path = urlPath(url);
    const chunk = path.endsWith(CHUNK_SUFFIX);
    const text = readFileSync(chunk ? path.slice(0, -CHUNK_SUFFIX.length) : path, 'utf8');
    if (!chunk) return text;
    // esbuild writes it as a single- or double-quoted literal (`code = '...'`); our own build's text, evaluated alone.
    const literal = /^\s*(?:const |let |var )?code = ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*");$/m.exec(text);
    return literal ? String(runInNewContext(literal[1]!)) : undefined;
  } catch {
    return undefined;
  }
}

function moduleOf(url: string, line: number, cache: Map<string, { line: number; module: string }[]>): string {
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return url;
  if (!cache.has(url)) cache.set(url, moduleStarts(sourceText(url) ?? ''));
  const starts = cache.get(url)!;
  let found: string | undefined;
  for (const s of starts) {
    if (s.line > line) break;
    found = s.module;
  }
  return found ?? relative(process.cwd(), urlPath(url));
}

export interface ProfileSummary {
  totalMs: number;
  functions: { name: string; ms: number }[];
  modules: { name: string; ms: number }[];
}

export function summarizeProfile(file: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  const cache = new Map<string, { line: number; module: string }[]>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const module = functionName.startsWith('(') ? functionName : moduleOf(url, lineNumber, cache);
    const name = functionName.startsWith('(') ? functionName : `${functionName || '(anonymous)'}  ${module}:${lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    modules.set(module, (modules.get(module) ?? 0) + us);
    total += us;
  }
  const topOf = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: us / 1000 }));
  return { totalMs: total / 1000, functions: topOf(functions), modules: topOf(modules) };
}

export function formatProfileSummary(title: string, s: ProfileSummary): string[] {
  const pct = (ms: number) => `${((ms / s.totalMs) * 100).toFixed(1).padStart(5)}%`;
  return [
    `${title}: ${(s.totalMs / 1000).toFixed(2)} s sampled`,
    `  top functions by self time:`,
    ...s.functions.map((f) => `    ${f.ms.toFixed(0).padStart(6)} ms ${pct(f.ms)}  ${f.name}`),
    `  top modules by self time:`,
    ...s.modules.map((m) => `    ${m.ms.toFixed(0).padStart(6)} ms ${pct(m.ms)}  ${m.name}`),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: tsx scripts/profile-summary.ts FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(formatProfileSummary(file, summarizeProfile(file, Number(top ?? 15))).join('\n') + '\n');
}
