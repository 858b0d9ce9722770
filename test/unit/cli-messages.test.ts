import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { airlock } from '../helpers/cli.ts';
import { parseSpec } from '../../packer/spec.ts';
import { openBundleBytes } from '../../shared/bundle/volumes.ts';
import { UsageError } from '../../shared/cli/errors.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';

/**
 * The messages a new user found confusing, each for its exact input: what
 * failed in airlock's words (never yargs', OpenSSL's or a bare errno), what to
 * do, and the exit code of the kind of failure.
 */

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-messages-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('pack --jobs abc says the value as typed, not "null"', async () => {
  const r = await airlock(['pack', '--jobs', 'abc']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--jobs must be a positive integer \(e\.g\. --jobs 4\), not "abc"/);
  assert.doesNotMatch(r.stderr, /null|NaN/);
});

test('pack --bogus-flag names the option once, as typed, before the missing ones, and points at --help', async () => {
  const r = await airlock(['pack', '--bogus-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error: unknown option --bogus-flag\n/);
  assert.doesNotMatch(r.stderr, /bogusFlag|Unknown arguments/);
  assert.match(r.stderr, /hint: run 'airlock pack --help' for usage/);
  const missing = await airlock(['pack', '-f', 'airlock.yaml']);
  assert.match(missing.stderr, /error: missing required options --output, --key\n/);
});

test('verify without a bundle says the bundle path is missing, with the usage', async () => {
  const r = await airlock(['verify', '--key', 'airlock.pub']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error: missing the bundle path \(the bundle file, or the \.000 volume of a split bundle\): airlock verify <bundle>/);
  assert.doesNotMatch(r.stderr, /non-option/);
});

test('inspect of a file that is not a bundle says so (exit 3)', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'random.bin'), randomBytes(8192));
  const r = await airlock(['inspect', join(dir, 'random.bin')]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /random\.bin: the first entry is not airlock\.json: not an airlock bundle/);
  assert.doesNotMatch(r.stderr, /base256/);
});

test('verify --key with the private key says it is the private key and to pass the .pub', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'airlock.key'), generateKeyPair('pw').privateKeyPem);
  writeFileSync(join(dir, 'b.tar'), randomBytes(2048));
  const r = await airlock(['verify', join(dir, 'b.tar'), '--key', join(dir, 'airlock.key')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /airlock\.key is a private key; verifying takes the public key/);
  assert.match(r.stderr, /hint: pass the \.pub file/);
  assert.doesNotMatch(r.stderr, /DECODER|error:[0-9A-F]{8}/);
});

test('a sha256 that YAML read as a number: an all-digit digest is kept as written; a wrong one says to quote it', () => {
  const spec = (digest: string) => `name: x\nversion: 1\nmanifests:\n  - url: https://example.com/a.yaml\n    sha256: ${digest}\n`;
  const digits = '1234567890'.repeat(6) + '1234';
  assert.equal((parseSpec(spec(digits), 'airlock.yaml').manifests[0] as { sha256?: string }).sha256, digits);
  assert.throws(
    () => parseSpec(spec(digits.slice(1)), 'airlock.yaml'),
    (err: Error) => err instanceof UsageError && /airlock\.yaml:5: manifests\[\]\.sha256 must be 64 lowercase hex characters; YAML read \d{63} as a number: put the digest in quotes/.test(err.message),
  );
});

test('a YAML syntax error shows the line and a caret under the column', () => {
  const text = 'name: x\nversion: 1\nimages:\n  - a\n  - b\n - c\n';
  assert.throws(
    () => parseSpec(text, 'airlock.yaml'),
    (err: Error) => {
      assert.ok(err instanceof UsageError);
      const [first, line, caret] = err.message.split('\n');
      assert.match(first!, /^airlock\.yaml:6: invalid YAML: .+ \(column \d+\)$/);
      assert.equal(line, '   - c');
      assert.match(caret!, /^ +\^$/);
      return true;
    },
  );
});

test('promote --git ssh://... without --ssh-key is a usage error (exit 2) that names --ssh-key', async () => {
  const r = await airlock(['promote', '--git', 'ssh://git@127.0.0.1:1/apps.git', '--to', 'prod']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--git ssh:\/\/git@127\.0\.0\.1:1\/apps\.git is git over SSH, which needs --ssh-key FILE/);
});

test('a bundle path whose volumes are there instead names them and the first volume to pass', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'base.tar.000'), 'a');
  writeFileSync(join(dir, 'base.tar.001'), 'b');
  writeFileSync(join(dir, 'base.tar.parts.json'), '{}');
  await assert.rejects(openBundleBytes(join(dir, 'base.tar')), (err: Error) => {
    assert.ok(err instanceof UsageError);
    assert.match(err.message, /there is no such file, but .* holds it split in 2 volumes \(base\.tar\.000, base\.tar\.001\) and its parts list base\.tar\.parts\.json/);
    assert.equal(err.hint, `pass the first volume: ${join(dir, 'base.tar.000')}`);
    assert.doesNotMatch(err.message, /ENOENT/);
    return true;
  });
  await assert.rejects(openBundleBytes(join(dir, 'other.tar')), /other\.tar: there is no such file$/);
});
