import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode, type AirlockError } from '../../shared/cli/errors.ts';
import { checkYamlShape, forEachYamlDocument, parseYamlValue, toJs, yamlLimits } from '../../shared/yaml/bounded.ts';
import { aliasBomb } from '../helpers/hostile-sources.ts';

const limits = { ...yamlLimits({}), maxDepth: 20, maxDocumentBytes: 1000, maxFileBytes: 4000 };
const refused = (code: number, pattern: RegExp) => (err: AirlockError) => err.exitCode === code && pattern.test(err.message);

test('ordinary Kubernetes YAML passes the shape check: block scalars with quotes and brackets, flow lists, comments', () => {
  const text = [
    'apiVersion: apps/v1 # a comment with [ and {',
    'kind: Deployment',
    'metadata: { name: web, labels: { app: web } }',
    'spec:',
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: app',
    '          args: ["--flag=[x]", \'--it\'\'s\']',
    '          command:',
    '            - sh',
    '            - -c',
    '            - |',
    "              if [ -f /x ]; then echo \"it's {odd\"; fi",
    "              echo don't [ stop",
    '---',
    '- - - nested: [1, [2, [3]]]',
    '',
  ].join('\n');
  checkYamlShape(text, 'ok.yaml', 'source', limits);
  const docs: unknown[] = [];
  forEachYamlDocument(text, 'ok.yaml', 'source', (d) => docs.push(toJs(d, 'ok.yaml', 'source', limits)), {}, limits);
  assert.equal(docs.length, 2);
});

test('nesting past the limit is refused, in block, compact and flow form, naming the line', () => {
  const block = Array.from({ length: 25 }, (_, i) => `${' '.repeat(i)}a${i}:`).join('\n');
  assert.throws(() => checkYamlShape(block, 'b.yaml', 'source', limits), refused(ExitCode.Verification, /^b\.yaml: nests deeper than 20 levels \(line 2[01]\)/));
  assert.throws(() => checkYamlShape(`x:\n  ${'- '.repeat(25)}y\n`, 'c.yaml', 'user', limits), refused(ExitCode.Usage, /^c\.yaml: nests deeper than 20 levels \(line 2\)/));
  assert.throws(() => checkYamlShape(`a: ${'{b: '.repeat(25)}1${'}'.repeat(25)}`, 'f.yaml', 'source', limits), refused(ExitCode.Verification, /nests deeper than 20/));
  // Twenty levels is allowed.
  checkYamlShape(`${'['.repeat(19)}${']'.repeat(19)}`, 'ok.yaml', 'source', limits);
});

test('a document or a file past its cap is refused with the sizes and the setting that raises it', () => {
  const doc = `a: ${'x'.repeat(1200)}\n`;
  assert.throws(() => checkYamlShape(`small: 1\n---\n${doc}---\nsmall: 2\n`, 'd.yaml', 'source', limits), refused(ExitCode.Verification, /one document may hold/));
  assert.throws(() => checkYamlShape(`${'---\nk: v\n'.repeat(600)}`, 'e.yaml', 'source', limits), refused(ExitCode.Verification, /more than the 0\.0 MiB a YAML file may hold|a YAML file may hold/));
  checkYamlShape(`${'---\nk: v\n'.repeat(100)}`, 'many-small.yaml', 'source', limits);
});

test('an alias bomb is refused when expanded; ordinary anchors are fine', () => {
  assert.throws(() => parseYamlValue(aliasBomb(), 'v.yaml', 'user'), refused(ExitCode.Usage, /^v\.yaml: its aliases expand past 100 nodes/));
  assert.throws(
    () => forEachYamlDocument(aliasBomb(), 'm.yaml', 'source', (d) => toJs(d, 'm.yaml', 'source')),
    refused(ExitCode.Verification, /^m\.yaml: its aliases expand past 100 nodes/),
  );
  assert.deepEqual(parseYamlValue('base: &b { a: 1 }\none: *b\ntwo: *b\n', 'ok.yaml', 'user'), { base: { a: 1 }, one: { a: 1 }, two: { a: 1 } });
});

test('the caps come from AIRLOCK_MAX_YAML_FILE_MIB and AIRLOCK_MAX_YAML_DOCUMENT_MIB', () => {
  assert.equal(yamlLimits({}).maxFileBytes, 64 * 1024 * 1024);
  assert.equal(yamlLimits({}).maxDocumentBytes, 16 * 1024 * 1024);
  assert.equal(yamlLimits({ AIRLOCK_MAX_YAML_FILE_MIB: '512' }).maxFileBytes, 512 * 1024 * 1024);
  assert.throws(() => yamlLimits({ AIRLOCK_MAX_YAML_DOCUMENT_MIB: '0' }), refused(ExitCode.Usage, /AIRLOCK_MAX_YAML_DOCUMENT_MIB="0" is not a positive number/));
});
