import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { airlock, REPO_ROOT } from '../helpers/cli.ts';
import { readPrivateKey } from '../../shared/sign/keys.ts';

/**
 * keygen never makes an unprotected key by accident: an empty password is
 * confirmed on a terminal (here a real pseudo-terminal, through script(1)),
 * and needs --no-password without one.
 */

const noPasswordEnv = { AIRLOCK_PASSWORD: undefined, COSIGN_PASSWORD: undefined };

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-keygen-empty-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Run keygen on a pseudo-terminal, typing each answer once the prompt that wants it shows. */
function keygenOnTerminal(outDir: string, answers: [prompt: RegExp, answer: string][]): Promise<{ code: number; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.AIRLOCK_PASSWORD;
  delete env.COSIGN_PASSWORD;
  const command = `${process.execPath} --import tsx airlock.ts keygen --out-dir '${outDir}'`;
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let next = 0;
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    while (next < answers.length && answers[next]![0].test(output)) {
      child.stdin.write(answers[next]![1] + '\r');
      output = output.replace(answers[next]![0], '<answered>');
      next++;
    }
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, output });
    });
  });
}

test('keygen: an empty password without a terminal needs --no-password (exit 2, no key written)', async (t) => {
  const dir = tempDir(t);
  const refused = await airlock(['keygen', '--out-dir', join(dir, 'a')], { env: { ...noPasswordEnv, AIRLOCK_PASSWORD: '' } });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /AIRLOCK_PASSWORD is empty: the private key would be unprotected/);
  assert.match(refused.stderr, /--no-password/);
  assert.equal(existsSync(join(dir, 'a', 'airlock.key')), false);

  const cosign = await airlock(['keygen', '--out-dir', join(dir, 'b')], { env: { ...noPasswordEnv, COSIGN_PASSWORD: '' } });
  assert.equal(cosign.code, 2);
  assert.match(cosign.stderr, /COSIGN_PASSWORD is empty/);

  const onPurpose = await airlock(['keygen', '--out-dir', join(dir, 'c'), '--no-password'], { env: noPasswordEnv });
  assert.equal(onPurpose.code, 0, onPurpose.stderr);
  readPrivateKey(readFileSync(join(dir, 'c', 'airlock.key'), 'utf8'), '', 'airlock.key');

  const both = await airlock(['keygen', '--out-dir', join(dir, 'd'), '--no-password'], { env: { ...noPasswordEnv, AIRLOCK_PASSWORD: 'secret' } });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--no-password, but AIRLOCK_PASSWORD/);
});

test('keygen on a terminal: an empty password is asked about; no keeps no key, yes writes one', async (t) => {
  const dir = tempDir(t);
  const empty: [RegExp, string][] = [
    [/Password for the signing key: /, ''],
    [/Password again: /, ''],
  ];
  const no = await keygenOnTerminal(join(dir, 'no'), [...empty, [/Use no password\? \[y\/N\] /, 'n']]);
  assert.equal(no.code, 2, no.output);
  assert.match(no.output, /no key written: the password was empty/);
  assert.equal(existsSync(join(dir, 'no', 'airlock.key')), false);

  const yes = await keygenOnTerminal(join(dir, 'yes'), [...empty, [/Use no password\? \[y\/N\] /, 'y']]);
  assert.equal(yes.code, 0, yes.output);
  readPrivateKey(readFileSync(join(dir, 'yes', 'airlock.key'), 'utf8'), '', 'airlock.key');
});
