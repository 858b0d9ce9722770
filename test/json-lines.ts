import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

/** One line of --json output (docs/json-output.md). */
export interface JsonLine {
  ts: string;
  event: 'progress' | 'log' | 'result' | 'error';
  [field: string]: unknown;
}

/** Every line of a --json run's stdout, each checked for the common shape: ts, then event. */
export function jsonLines(stdout: string): JsonLine[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const line = JSON.parse(l) as JsonLine;
      assert.deepEqual(Object.keys(line).slice(0, 2), ['ts', 'event'], l);
      assert.match(line.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
      assert.ok(['progress', 'log', 'result', 'error'].includes(line.event), l);
      return line;
    });
}

/** The one result line of a successful --json run of `command` (it is the last line; there is no error line). */
export function resultOf<T = Record<string, unknown>>(stdout: string, command: string): T & JsonLine {
  const lines = jsonLines(stdout);
  const results = lines.filter((l) => l.event === 'result');
  assert.equal(results.length, 1, `exactly one result line:\n${stdout}`);
  assert.equal(lines.filter((l) => l.event === 'error').length, 0, stdout);
  assert.equal(lines.at(-1), results[0], 'the result is the last line');
  assert.equal(results[0]!.command, command);
  assertDocumented(results[0]!, command);
  return results[0] as T & JsonLine;
}

/** A command's result fields as docs/json-output.md lists them. */
export interface DocumentedResult {
  required: string[];
  optional: string[];
  /** The table ends with "...": more fields may follow (inspect: the index). */
  open: boolean;
}

/** Every command's result fields from docs/json-output.md ("### `pack`", "### `upload` and `download`" tables). */
export function documentedResults(): Map<string, DocumentedResult> {
  const text = readFileSync(new URL('../docs/json-output.md', import.meta.url), 'utf8');
  const results = text.slice(text.indexOf('\n## `result`'));
  const out = new Map<string, DocumentedResult>();
  for (const section of results.split(/\n### /).slice(1)) {
    const commands = [...section.split('\n')[0]!.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
    const doc: DocumentedResult = { required: [], optional: [], open: false };
    for (const row of section.split('\n').filter((l) => l.startsWith('|'))) {
      const cells = row.split('|').map((c) => c.trim());
      const field = /^`([A-Za-z]+)`$/.exec(cells[1] ?? '')?.[1];
      if (cells[1] === '...') doc.open = true;
      if (field === undefined) continue;
      (/\*optional\*/.test(row) ? doc.optional : doc.required).push(field);
    }
    for (const c of commands) out.set(c, doc);
  }
  return out;
}

/** The result's fields are the documented ones: every required one there, nothing undocumented. */
export function assertDocumented(result: Record<string, unknown>, command: string): void {
  const doc = documentedResults().get(command);
  assert.ok(doc, `docs/json-output.md documents the result of ${command}`);
  const fields = Object.keys(result).filter((k) => k !== 'ts' && k !== 'event' && k !== 'command');
  for (const f of doc.required) assert.ok(f in result, `${command} result: the documented field ${f} is missing`);
  if (!doc.open) {
    const known = new Set([...doc.required, ...doc.optional]);
    assert.deepEqual(fields.filter((f) => !known.has(f)), [], `${command} result: fields missing from docs/json-output.md`);
  }
}
