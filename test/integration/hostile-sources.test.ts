import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { HOSTILE_SOURCES, packHostile } from '../helpers/hostile-sources.ts';

/**
 * `airlock pack` against hostile sources (test/helpers/hostile-sources.ts):
 * YAML alias bombs in a manifest, the spec and a values file; nesting 100k
 * deep; a 500 MB document; a chart .tgz that expands past its cap; links and
 * ".." in a chart archive. Each is refused with its exit code (2 for the
 * spec and values, 3 for sources) and a message naming the file and the
 * limit, writes no bundle, and runs with a capped heap (HOSTILE_HEAP_MB): a parser that
 * expanded the bomb or read the whole document would die of it (exit 134).
 */
const PASSWORD = 'hostile sources';

describe('hostile manifests, specs, values and charts', () => {
  let work: string;
  let key: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'airlock-hostile-src-'));
    key = join(work, 'airlock.key');
    writeFileSync(key, generateKeyPair(PASSWORD).privateKeyPem, { mode: 0o600 });
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  test('each is refused with a clear error, nothing written, in bounded memory and time', async () => {
    const limit = pLimit(2);
    const findings = await Promise.all(HOSTILE_SOURCES.map((c, i) => limit(() => packHostile(c, join(work, `case-${i}`), key, PASSWORD))));
    assert.deepEqual(findings.filter((f) => f !== undefined), []);
  });

  test('the caps are configurable: AIRLOCK_MAX_YAML_FILE_MIB raises the file cap, a bad value is exit 2', async () => {
    const dir = join(work, 'cap');
    mkdirSync(join(dir, 'deploy'), { recursive: true });
    // 2 MiB of one ConfigMap: refused under a 1 MiB cap, packed under the default.
    writeFileSync(join(dir, 'deploy', 'cm.yaml'), `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: big }\ndata:\n  blob: ${'x'.repeat(2 * 1024 * 1024)}\n`);
    writeFileSync(join(dir, 'airlock.yaml'), 'name: cap\nversion: 1.0.0\nmanifests:\n  - path: deploy\n');
    const pack = (out: string, env: Record<string, string>) =>
      airlock(['pack', '-f', join(dir, 'airlock.yaml'), '-o', join(dir, out), '--key', key], { env: { AIRLOCK_PASSWORD: PASSWORD, ...env } });
    const [small, bad, fine] = await Promise.all([pack('small.tar', { AIRLOCK_MAX_YAML_FILE_MIB: '1' }), pack('bad.tar', { AIRLOCK_MAX_YAML_DOCUMENT_MIB: 'lots' }), pack('fine.tar', {})]);
    assert.equal(small.code, 3, small.stderr);
    assert.match(small.stderr, /cm\.yaml: 2\.0 MiB of YAML, more than the 1\.0 MiB a YAML file may hold/);
    assert.match(small.stderr, /AIRLOCK_MAX_YAML_FILE_MIB/);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /AIRLOCK_MAX_YAML_DOCUMENT_MIB="lots" is not a positive number of MiB/);
    assert.equal(fine.code, 0, fine.stderr);
  });
});
