import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { AirlockError } from '../../shared/cli/errors.ts';
import { mergeMaps, mergeValuesFiles } from '../../packer/helm/values.ts';
import { writeSetValues } from '../../packer/helm/set-values.ts';

/** The one values file a chart is rendered with (the real-helm comparison is in test/integration/pack-charts.test.ts). */

test("mergeMaps is helm's: mappings merge key by key, anything else replaces, null is kept, inputs untouched", () => {
  const a = { keep: 1, map: { a: 1, b: 2, deep: { x: 1 } }, list: [1, 2], scalar: 'a', gone: 'x' };
  const b = { map: { b: 3, deep: { y: 2 } }, list: [3], scalar: { now: 'a map' }, gone: null };
  assert.deepEqual(mergeMaps(a, b), { keep: 1, map: { a: 1, b: 3, deep: { x: 1, y: 2 } }, list: [3], scalar: { now: 'a map' }, gone: null });
  assert.deepEqual(a.map, { a: 1, b: 2, deep: { x: 1 } });
  assert.deepEqual(mergeMaps({ m: { a: 1 } }, { m: 'flat' }), { m: 'flat' });
});

test('values files in order, then set; YAML 1.1 as helm reads it, and strings that look like something else stay strings', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-values-'));
  try {
    writeFileSync(join(dir, 'a.yaml'), 'a: yes\nb: "on"\nc: 0755\nd: 2001-12-14\nm: { p: 1, q: 2 }\n');
    writeFileSync(join(dir, 'b.yaml'), 'm: { q: 3 }\n');
    writeFileSync(join(dir, 'empty.yaml'), '');
    const out = join(dir, 'values.yaml');
    const r = await mergeValuesFiles([join(dir, 'a.yaml'), join(dir, 'empty.yaml'), join(dir, 'b.yaml')], { 'm.z': '1.10', s: 'no', n: 0 }, out, 'charts[0]');
    const text = readFileSync(out, 'utf8');
    assert.equal(r.size, Buffer.byteLength(text));
    assert.deepEqual(parse(text, { version: '1.1' }), { a: true, b: 'on', c: 493, d: '2001-12-14', m: { p: 1, q: 3, z: '1.10' }, s: 'no', n: 0 });
    assert.match(text, /s: "no"/);
    await mergeValuesFiles([], {}, out, 'x');
    assert.equal(readFileSync(out, 'utf8'), '{}\n');

    const usage = (message: RegExp) => (err: unknown) => err instanceof AirlockError && err.exitCode === 2 && message.test(err.message);
    writeFileSync(join(dir, 'list.yaml'), '- a\n');
    writeFileSync(join(dir, 'dup.yaml'), 'a: 1\na: 2\n');
    await assert.rejects(mergeValuesFiles([join(dir, 'missing.yaml')], {}, out, 'c'), usage(/values file .*missing\.yaml not found/));
    await assert.rejects(mergeValuesFiles([join(dir, 'list.yaml')], {}, out, 'c'), usage(/must be a mapping/));
    await assert.rejects(mergeValuesFiles([join(dir, 'dup.yaml')], {}, out, 'c'), usage(/not valid YAML/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeSetValues quotes a string helm would read as a boolean or number', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-set-'));
  try {
    const file = join(dir, 'set.yaml');
    await writeSetValues({ a: 'yes', b: 'on', c: '0755', d: true }, file);
    assert.deepEqual(parse(readFileSync(file, 'utf8'), { version: '1.1' }), { a: 'yes', b: 'on', c: '0755', d: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
