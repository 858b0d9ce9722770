import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { jsonLine, printResult } from '../../shared/cli/output.ts';
import { airlock } from '../helpers/cli.ts';
import { assertDocumented, documentedResults, jsonLines, resultOf } from '../json-lines.ts';

/** The --json line shape, and every command's result against docs/json-output.md. */

test('every line: ts and event first; a field cannot replace them', () => {
  const line = JSON.parse(jsonLine('log', { event: 'x', ts: 'y', level: 'info', message: 'm' }, new Date(0))) as Record<string, unknown>;
  assert.deepEqual(line, { ts: '1970-01-01T00:00:00.000Z', event: 'log', level: 'info', message: 'm' });
  assert.deepEqual(Object.keys(line).slice(0, 2), ['ts', 'event']);
});

test('printResult: one result line naming the command with --json, the human text without', () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  printResult('split', { bundle: 'b.tar', volumes: 2, files: [] }, true, () => 'human', out);
  printResult('split', { bundle: 'b.tar', volumes: 2, files: [] }, false, () => 'split b.tar', out);
  const [json, human] = text.split('\n');
  assert.deepEqual(jsonLines(json!).map((l) => [l.event, l.command]), [['result', 'split']]);
  assert.equal(human, 'split b.tar');
});

test('docs/json-output.md documents the result of every command', () => {
  const docs = documentedResults();
  for (const command of ['pack', 'verify', 'inspect', 'load', 'promote', 'approve', 'upload', 'download', 'split', 'keygen']) {
    const doc = docs.get(command);
    assert.ok(doc && doc.required.length > 0, command);
  }
  assert.deepEqual(docs.get('keygen'), { required: ['privateKey', 'publicKey'], optional: [], open: false });
  assert.ok(docs.get('inspect')!.open, 'inspect: the index fields follow');
  assert.ok(docs.get('load')!.optional.includes('git'));
  assert.throws(() => assertDocumented({ privateKey: 'a', publicKey: 'b', extra: 1 }, 'keygen'), /fields missing from docs/);
  assert.throws(() => assertDocumented({ privateKey: 'a' }, 'keygen'), /publicKey is missing/);
});

test('keygen --json prints its documented result; a failing verify --json ends with one error line and no result', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-json-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keygen = await airlock(['keygen', '--out-dir', dir, '--json'], { env: { AIRLOCK_PASSWORD: 'pw', COSIGN_PASSWORD: undefined } });
  assert.equal(keygen.code, 0, keygen.stderr);
  const keys = resultOf<{ privateKey: string; publicKey: string }>(keygen.stdout, 'keygen');
  assert.equal(keys.publicKey, join(dir, 'airlock.pub'));

  writeFileSync(join(dir, 'not-a-bundle.tar'), 'x'.repeat(100));
  const failed = await airlock(['verify', join(dir, 'not-a-bundle.tar'), '--key', keys.publicKey, '--json']);
  assert.notEqual(failed.code, 0);
  const lines = jsonLines(failed.stdout);
  assert.deepEqual(lines.filter((l) => l.event !== 'progress').map((l) => [l.event, l.exitCode]), [['error', failed.code]]);
  assert.equal(lines.at(-1)!.event, 'error');
  assert.ok(!lines.some((l) => l.event === 'result'));
  assert.equal(failed.stderr, '');
});
