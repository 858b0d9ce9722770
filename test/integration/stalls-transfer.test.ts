import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startS3, type S3Service } from '../services/s3.ts';
import { startSshd, type SshServer } from '../services/sshd.ts';
import { startStallingProxy } from '../services/stallingProxy.ts';

/**
 * --timeout against servers that stop mid-answer: a TCP proxy
 * (test/services/stallingProxy.ts) passes the first big answer part way
 * (git over HTTPS: TLS, the ref advertisement and part of the pack; S3: part
 * of an object; SFTP: the SSH session and part of the file), then nothing.
 * Each stall is noticed within --timeout, the transfer is tried again on a
 * new connection, and the command completes with the right bytes.
 */
const PASSWORD = 'stalls transfer';
const PW_ENV = 'AIRLOCK_TEST_GIT_PASSWORD';

describe('stalled git, S3 and SFTP transfers (--timeout)', () => {
  let work: string;
  let server: GitServer;
  let s3: S3Service;
  let sshd: SshServer;
  let content: string;
  let file: string;
  let fileSha: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-stalls-transfer-'));
    [server, s3, sshd] = await Promise.all([startGitServer(), startS3(), startSshd()]);
    file = join(work, 'bundle.tar');
    const bytes = randomBytes(6 * 1024 * 1024);
    writeFileSync(file, bytes);
    fileSha = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(work, 'airlock.key'), generateKeyPair(PASSWORD).privateKeyPem, { mode: 0o600 });
    // Incompressible content, so the pack is large enough for the stall to land inside it.
    content = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: big }\ndata:\n  blob: ${randomBytes(600_000).toString('base64')}\n`;
    const bare = await server.createRepo('apps');
    const src = join(work, 'src');
    mkdirSync(join(src, 'deploy'), { recursive: true });
    writeFileSync(join(src, 'deploy', 'big.yaml'), content);
    const git = (args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: src, stdio: 'pipe' });
    git(['init', '--quiet', '--initial-branch', 'main']);
    git(['add', '-A']);
    git(['commit', '--quiet', '-m', 'one']);
    git(['push', '--quiet', bare, 'main']);
  });

  after(async () => {
    await Promise.all([server?.stop(), s3?.stop(), sshd?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  test('a git-over-HTTPS answer that stalls mid-pack is dropped after --timeout, fetched again, and the pack completes', async () => {
    const port = Number(new URL(server.url('apps')).port);
    const proxy = await startStallingProxy({ host: '127.0.0.1', port }, { afterBytes: 100_000 });
    try {
      const url = server.url('apps').replace(`:${port}/`, `:${proxy.port}/`);
      const spec = join(work, 'airlock.yaml');
      writeFileSync(spec, `name: stalls\nversion: 1.0.0\nmanifests:\n  - git: { url: "${url}", ref: main, path: deploy }\n`);
      const bundle = join(work, 'git.tar');
      const started = Date.now();
      const res = await airlock(
        ['pack', '-f', spec, '-o', bundle, '--key', join(work, 'airlock.key'), '--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', PW_ENV, '--timeout', '2'],
        { env: { AIRLOCK_PASSWORD: PASSWORD, [PW_ENV]: server.password }, timeoutMs: 120_000 },
      );
      const took = Date.now() - started;
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.stats().stalled, 1, 'the first connection stalled');
      assert.ok(proxy.stats().connections >= 2, 'a new connection was opened');
      assert.ok(took < 90_000, `took ${took} ms`);
      const out = mkdtempSync(join(work, 'x-'));
      execFileSync('tar', ['-xf', bundle, '-C', out, 'manifests/deploy/big.yaml']);
      assert.equal(readFileSync(join(out, 'manifests', 'deploy', 'big.yaml'), 'utf8'), content);
    } finally {
      await proxy.stop();
    }
  });

  const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
  const s3Env = () => ({ ...s3.env, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_PROFILE: undefined });

  test('an S3 download that stalls mid-object is dropped after --timeout, resumed, and completes with the right bytes', async () => {
    const up = await airlock(['upload', file, `s3://${s3.bucket}/stall/`, '--s3-endpoint', s3.endpoint], { env: s3Env() });
    assert.equal(up.code, 0, up.stderr);
    const port = Number(new URL(s3.endpoint).port);
    const proxy = await startStallingProxy({ host: '127.0.0.1', port }, { afterBytes: 1024 * 1024 });
    try {
      const out = join(work, 's3-down.tar');
      const started = Date.now();
      const res = await airlock(['download', `s3://${s3.bucket}/stall/bundle.tar`, '-o', out, '--s3-endpoint', `http://127.0.0.1:${proxy.port}`, '--timeout', '2'], { env: s3Env(), timeoutMs: 120_000 });
      const took = Date.now() - started;
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.stats().stalled, 1, 'a connection stalled');
      assert.ok(took < 90_000, `took ${took} ms`);
      assert.equal(sha(out), fileSha);
      assert.match(res.stderr, /S3 download of .* broke off: .*timed out after 2000 ms.*; resuming \(attempt 2 of \d\)/);
    } finally {
      await proxy.stop();
    }
  });

  test('an SFTP download that stalls mid-file is dropped after --timeout, retried, and completes with the right bytes', async () => {
    const proxy = await startStallingProxy({ host: '127.0.0.1', port: sshd.port }, { afterBytes: 1024 * 1024 });
    try {
      // The host key, known under the proxy's port.
      const knownHosts = join(work, 'known_hosts');
      writeFileSync(knownHosts, readFileSync(sshd.knownHosts, 'utf8').replaceAll(`[127.0.0.1]:${sshd.port}`, `[127.0.0.1]:${proxy.port}`));
      const url = sshd.url(file).replace('ssh://', 'sftp://').replace(`:${sshd.port}/`, `:${proxy.port}/`);
      const out = join(work, 'sftp-down.tar');
      const started = Date.now();
      const res = await airlock(['download', url, '-o', out, '--ssh-key', sshd.clientKey, '--known-hosts', knownHosts, '--timeout', '2'], { timeoutMs: 120_000 });
      const took = Date.now() - started;
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.stats().stalled, 1, 'a connection stalled');
      assert.ok(took < 90_000, `took ${took} ms`);
      assert.equal(sha(out), fileSha);
      assert.match(res.stderr, /SFTP download of .* no progress for 2 s \(--timeout\); resuming \(attempt 2 of \d\)/);
    } finally {
      await proxy.stop();
    }
  });
});
