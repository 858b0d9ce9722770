import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startStallingProxy } from '../services/stallingProxy.ts';

/**
 * --timeout against git over HTTPS that stops mid-answer: a TCP proxy
 * (test/services/stallingProxy.ts) passes the first connection's TLS
 * handshake, ref advertisement and part of the pack, then nothing. The stall
 * is noticed within --timeout, the fetch is tried again on a new connection,
 * and the pack completes with the repository's files.
 */
const PASSWORD = 'stalls transfer';
const PW_ENV = 'AIRLOCK_TEST_GIT_PASSWORD';

describe('stalled git, S3 and SFTP transfers (--timeout)', () => {
  let work: string;
  let server: GitServer;
  let content: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-stalls-transfer-'));
    server = await startGitServer();
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
    await server?.stop();
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
        { env: { AIRLOCK_PASSWORD: PASSWORD, [PW_ENV]: server.password }, built: true, timeoutMs: 120_000 },
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
});
