import assert from 'node:assert/strict';

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
  return results[0] as T & JsonLine;
}
