import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { commitFiles } from '../../loader/gitops/repo.ts';
import { openRemote } from '../../loader/gitops/commit.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startSshd } from '../services/sshd.ts';
import { kubectl } from '../services/tools.ts';

/**
 * load --git against a real git server (git-http-backend behind nginx, HTTPS
 * with its own CA, Basic auth): the kustomize base, no commit on an
 * unchanged reload, a race with another writer, a protected branch.
 */
const PASSWORD = 'gitops test';

describe('airlock load --git', () => {
  let source: RegistryService;
  let enclave: RegistryService;
  let server: GitServer;
  let work: string;
  let bundle: string;
  let index: BundleIndex;
  const gitEnv = () => ({ GIT_PW: server.password, GIT_SSL_CAINFO: server.caFile, AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-gitops-'));
    source = await startRegistry();
    enclave = await startRegistry();
    server = await startGitServer();
    const images = await generateImages({
      seed: 3,
      images: [
        { repository: 'library/nginx', tag: '1.25', layers: 1, layerSize: 20_000 },
        { repository: 'harness/ng-manager', tag: '1.0', layers: 1, layerSize: 20_000 },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem);
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    mkdirSync(join(work, 'deploy', 'platform'), { recursive: true });
    writeFileSync(join(work, 'deploy', 'web.yaml'), deployment('web', 'nginx:1.25'));
    writeFileSync(join(work, 'deploy', 'platform', 'kustomization.yaml'), 'resources: [manager.yaml]\n');
    writeFileSync(join(work, 'deploy', 'platform', 'manager.yaml'), deployment('ng-manager', 'docker.io/harness/ng-manager:1.0'));
    writeFileSync(join(work, 'deploy', 'values.yaml'), 'image: not-a-resource\n');
    writeFileSync(join(work, 'airlock.yaml'), 'name: harness\nversion: 1.0.0\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n');
    bundle = join(work, 'harness.tar');
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], {
      env: gitEnv(),
    });
    assert.equal(packed.code, 0, packed.stderr);
    await run('tar', ['-xf', bundle, '-C', work, 'airlock.json']);
    index = JSON.parse(readFileSync(join(work, 'airlock.json'), 'utf8')) as BundleIndex;
  });

  after(async () => {
    await source?.stop();
    await enclave?.stop();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const load = (repo: string, extra: string[] = []): Promise<CliResult> =>
    airlock(
      ['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--ca-file', server.caFile, '--git', server.url(repo), '--git-username', server.username, '--git-password-env', 'GIT_PW', ...extra],
      { env: gitEnv() },
    );

  async function checkout(repo: string, branch: string): Promise<string> {
    const dir = mkdtempSync(join(work, 'co-'));
    const url = new URL(server.url(repo));
    url.username = server.username;
    url.password = server.password;
    // GIT_SSL_CAINFO, not http.sslCAInfo: this environment sets GIT_SSL_CAINFO, which wins over config.
    await run('git', ['clone', '--quiet', '--branch', branch, url.toString(), dir], { env: { GIT_SSL_CAINFO: server.caFile } });
    return dir;
  }

  test('commits the base pinned by digest to dev; kubectl kustomize renders only internal images; a reload commits nothing', async () => {
    await server.createRepo('apps', { files: { 'README.md': 'enclave apps\n' } });
    const first = await load('apps', ['--git-author', 'Loader Bot <loader@enclave.test>']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /git: committed [0-9a-f]{12} to dev \(new branch\) under harness\//);
    const log = await server.git('apps', ['log', '--format=%s|%an|%ae', 'dev']);
    assert.equal(log.trim().split('\n')[0], 'airlock: load harness 1.0.0|Loader Bot|loader@enclave.test');

    const dir = await checkout('apps', 'dev');
    assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), 'enclave apps\n', 'dev starts from the default branch');
    assert.equal(readFileSync(join(dir, 'harness/base/deploy/web.yaml'), 'utf8'), deployment('web', 'nginx:1.25'), 'vendor YAML byte for byte');
    const kustomization = readFileSync(join(dir, 'harness/base/kustomization.yaml'), 'utf8');
    assert.match(kustomization, /resources:\n {2}- "deploy\/platform"\n {2}- "deploy\/web\.yaml"\nimages:/);
    assert.doesNotMatch(kustomization, /values\.yaml/);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'harness/airlock/airlock.json'), 'utf8')), index);
    const tip = (await server.git('apps', ['rev-parse', 'dev'])).trim();
    const again = await load('apps');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already matches this bundle; no commit/);
    assert.equal((await server.git('apps', ['rev-parse', 'dev'])).trim(), tip);

    const rendered = (await run(kubectl(), ['kustomize', join(dir, 'harness/base')])).stdout;
    const imagesUsed = [...rendered.matchAll(/image: (\S+)/g)].map((m) => m[1]);
    assert.equal(imagesUsed.length, 2);
    for (const image of imagesUsed) {
      assert.match(image!, new RegExp(`^${enclave.host.replace('.', '\\.')}/(library/nginx|harness/ng-manager)@sha256:[0-9a-f]{64}$`));
      assert.ok(index.images.some((i) => image!.endsWith(`@${i.digest}`)));
    }

  });

  let bundle2 = '';
  test('promote: a new environment gets a starter overlay; its patch survives the promotion of the next release', async () => {
    const promote = (extra: string[]) =>
      airlock(['promote', '--git', server.url('apps'), '--to', 'prod', '--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', 'GIT_PW', ...extra], { env: gitEnv() });
    const created = await promote([]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /promote harness 1\.0\.0: created prod from dev with a starter overlay harness\/overlays\/prod\//);

    // The environment's own change: three replicas of web, in its overlay.
    const prod = await checkout('apps', 'prod');
    writeFileSync(
      join(prod, 'harness/overlays/prod/kustomization.yaml'),
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\npatches:\n  - target: { kind: Deployment, name: web }\n    patch: |-\n      - op: add\n        path: /spec/replicas\n        value: 3\n',
    );
    const g = (args: string[]) => run('git', ['-C', prod, '-c', 'user.name=ops', '-c', 'user.email=ops@enclave.test', ...args], { env: { GIT_SSL_CAINFO: server.caFile } });
    await g(['commit', '--quiet', '-am', 'prod: three replicas of web']);
    await g(['push', '--quiet', 'origin', 'prod']);

    // Release 1.1.0: web moves to nginx 1.26.
    await pushImages(source.url, await generateImages({ seed: 4, images: [{ repository: 'library/nginx', tag: '1.26', layers: 1, layerSize: 20_000 }] }));
    writeFileSync(join(work, 'deploy', 'web.yaml'), deployment('web', 'nginx:1.26'));
    writeFileSync(join(work, 'airlock.yaml'), 'name: harness\nversion: 1.1.0\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n');
    bundle2 = join(work, 'harness-1.1.0.tar');
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle2, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], { env: gitEnv() });
    assert.equal(packed.code, 0, packed.stderr);
    const loaded = await airlock(
      ['load', bundle2, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--ca-file', server.caFile, '--git', server.url('apps'), '--git-username', server.username, '--git-password-env', 'GIT_PW'],
      { env: gitEnv() },
    );
    assert.equal(loaded.code, 0, loaded.stderr);
    await run('tar', ['-xf', bundle2, '-C', prod, 'airlock.json']);
    const nginx = (JSON.parse(readFileSync(join(prod, 'airlock.json'), 'utf8')) as BundleIndex).images.find((i) => i.ref === 'docker.io/library/nginx:1.26')!;

    const prodBefore = (await server.git('apps', ['rev-parse', 'prod'])).trim();
    const review = await promote(['--review']);
    assert.equal(review.code, 0, review.stderr);
    assert.match(review.stdout, /pushed airlock\/promote-prod-1\.1\.0/);
    assert.equal((await server.git('apps', ['rev-parse', 'prod'])).trim(), prodBefore, '--review leaves prod alone');

    const merged = await promote([]);
    assert.equal(merged.code, 0, merged.stderr);
    assert.match(merged.stdout, /promote harness 1\.1\.0: merged dev into prod/);
    // The merge commit says what prod receives: nginx from 1.25 to 1.26, old and new digests (12 hex).
    const oldNginx = index.images.find((i) => i.ref === 'docker.io/library/nginx:1.25')!;
    const message = await server.git('apps', ['log', '-1', '--format=%B', 'prod']);
    assert.ok(message.startsWith('airlock: promote harness 1.1.0 to prod\n\n'), message);
    assert.ok(message.includes(`\n- changed docker.io/library/nginx: 1.25@${oldNginx.digest.slice(0, 19)} -> 1.26@${nginx.digest.slice(0, 19)}\n`), message);
    assert.ok(message.includes('\nImages: 0 added, 0 removed, 1 changed.\n') && message.includes('\n- changed deploy/web.yaml\n'), message);
    const again = await promote([]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /prod already has dev; nothing to do/);

    const after = await checkout('apps', 'prod');
    assert.match(readFileSync(join(after, 'harness/overlays/prod/kustomization.yaml'), 'utf8'), /value: 3/, 'the overlay survived');
    assert.match(readFileSync(join(after, 'harness/base/kustomization.yaml'), 'utf8'), new RegExp(`digest: ${nginx.digest}`));
    const rendered = (await run(kubectl(), ['kustomize', join(after, 'harness/overlays/prod')])).stdout;
    assert.match(rendered, new RegExp(`image: ${enclave.host.replace('.', '\\.')}/library/nginx@${nginx.digest}`));
    assert.match(rendered, /replicas: 3/);
    for (const m of rendered.matchAll(/image: (\S+)/g)) assert.match(m[1]!, /^127\.0\.0\.1:\d+\/.*@sha256:[0-9a-f]{64}$/);
  });

  test('promote: a conflict with a change made on the environment branch stops with exit 5 and changes nothing', async () => {
    await server.createRepo('conflict', { files: { 'README.md': 'x\n' } });
    const withRepo = (args: string[]) => [...args, '--ca-file', server.caFile, '--git', server.url('conflict'), '--git-username', server.username, '--git-password-env', 'GIT_PW'];
    const first = await airlock(withRepo(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--skip-images']), { env: gitEnv() });
    assert.equal(first.code, 0, first.stderr);
    const created = await airlock(['promote', '--to', 'prod', ...withRepo([]).slice(0)], { env: gitEnv() });
    assert.equal(created.code, 0, created.stderr);
    // Someone edits the base on prod by hand...
    const prod = await checkout('conflict', 'prod');
    const k = join(prod, 'harness/base/kustomization.yaml');
    const edited = readFileSync(k, 'utf8').replace(/(name: "nginx"\n {4}newName: \S+\n {4}digest: )sha256:[0-9a-f]{64}/, `$1sha256:${'0'.repeat(64)}`);
    assert.match(edited, /sha256:0{64}/);
    writeFileSync(k, edited);
    const g = (args: string[]) => run('git', ['-C', prod, '-c', 'user.name=ops', '-c', 'user.email=ops@x', ...args], { env: { GIT_SSL_CAINFO: server.caFile } });
    await g(['commit', '--quiet', '-am', 'hand edit']);
    await g(['push', '--quiet', 'origin', 'prod']);
    // ...and the next release changes the same lines.
    assert.ok(bundle2, 'the previous test made release 1.1.0');
    const second = await airlock(withRepo(['load', bundle2, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--skip-images']), { env: gitEnv() });
    assert.equal(second.code, 0, second.stderr);
    const before = (await server.git('conflict', ['rev-parse', 'prod'])).trim();
    const res = await airlock(['promote', '--to', 'prod', ...withRepo([])], { env: gitEnv() });
    assert.equal(res.code, 5, res.stderr);
    assert.match(res.stderr, /conflicts.*nothing was changed/);
    assert.equal((await server.git('conflict', ['rev-parse', 'prod'])).trim(), before);
  });

  test('over SSH: known host key, load and promote (a key with a passphrase); unknown or changed host keys are exit 4 with the fingerprint', async () => {
    const sshd = await startSshd();
    try {
      const bare = await server.createRepo('viassh', { files: { 'README.md': 'x\n' } });
      const url = sshd.url(bare);
      const loaded = await airlock(
        ['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--skip-images', '--git', url, '--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts],
        { env: gitEnv() },
      );
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.match(loaded.stdout, /git: committed [0-9a-f]{12} to dev \(new branch\)/);
      assert.equal((await server.git('viassh', ['log', '-1', '--format=%s', 'dev'])).trim(), 'airlock: load harness 1.0.0');
      assert.equal((await server.git('viassh', ['cat-file', '-e', 'dev:harness/base/kustomization.yaml']).then(() => 'yes')), 'yes');

      const promoted = await airlock(
        ['promote', '--git', url, '--to', 'prod', '--ssh-key', sshd.clientKeyWithPassphrase.file, '--known-hosts', sshd.knownHosts],
        { env: { AIRLOCK_SSH_PASSPHRASE: sshd.clientKeyWithPassphrase.passphrase } },
      );
      assert.equal(promoted.code, 0, promoted.stderr);
      assert.match(promoted.stdout, /created prod/);

      const empty = join(work, 'known_hosts_empty');
      writeFileSync(empty, '');
      const unknown = await airlock(['promote', '--git', url, '--to', 'prod', '--ssh-key', sshd.clientKey, '--known-hosts', empty]);
      assert.equal(unknown.code, 4, unknown.stderr);
      assert.ok(unknown.stderr.includes(`is not in ${empty}: it offered ${sshd.hostKeyFingerprint}`), unknown.stderr);

      const other = join(work, 'known_hosts_other');
      const otherKey = readFileSync(`${sshd.clientKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
      writeFileSync(other, `[127.0.0.1]:${sshd.port} ${otherKey}\n`);
      const changed = await airlock(['promote', '--git', url, '--to', 'prod', '--ssh-key', sshd.clientKey, '--known-hosts', other]);
      assert.equal(changed.code, 4, changed.stderr);
      assert.match(changed.stderr, /does not match .*it offered SHA256:/);
    } finally {
      await sshd.stop();
    }
  });

  test('another writer pushing in between: the commit is rebuilt on the new tip', async () => {
    await server.createRepo('race', { files: { 'README.md': 'x\n' } });
    const transport = new HttpTransport({ caFile: server.caFile });
    process.env.GIT_PW_RACE = server.password;
    try {
      const remote = openRemote({ url: server.url('race'), username: server.username, passwordEnv: 'GIT_PW_RACE' }, transport);
      let raced = false;
      const result = await commitFiles({
        remote,
        branch: 'main',
        path: 'harness',
        replace: ['base'],
        files: new Map([['base/a.yaml', Buffer.from('kind: A\n')]]),
        message: 'airlock: load harness 1',
        author: { name: 'airlock', email: 'airlock@localhost' },
        beforePush: async () => {
          if (raced) return;
          raced = true;
          const other = await checkout('race', 'main');
          writeFileSync(join(other, 'OTHER.md'), 'someone else\n');
          const g = (args: string[]) => run('git', ['-C', other, '-c', 'user.name=other', '-c', 'user.email=o@x', ...args], { env: { GIT_SSL_CAINFO: server.caFile } });
          await g(['add', '-A']);
          await g(['commit', '--quiet', '-m', 'other writer']);
          await g(['push', '--quiet', 'origin', 'main']);
        },
      });
      assert.equal(result.attempts, 2);
      const log = (await server.git('race', ['log', '--format=%s', 'main'])).trim().split('\n');
      assert.deepEqual(log, ['airlock: load harness 1', 'other writer', 'seed']);
      const files = (await server.git('race', ['ls-tree', '-r', '--name-only', 'main'])).trim().split('\n');
      assert.deepEqual(files.sort(), ['OTHER.md', 'README.md', 'harness/base/a.yaml']);
    } finally {
      delete process.env.GIT_PW_RACE;
      await transport.close();
    }
  });

  test('a protected branch refuses the push: exit 5 naming the branch and the server message', async () => {
    await server.createRepo('locked', { files: { 'README.md': 'x\n' } });
    await server.protect('locked', ['dev']);
    const res = await load('locked', ['--skip-images']);
    assert.equal(res.code, 5, res.stderr);
    assert.match(res.stderr, /refused the push to branch dev: .*branch dev is protected/);
  });

  test('a wrong git password is exit 4 and is never printed', async () => {
    await server.createRepo('auth', { files: { 'README.md': 'x\n' } });
    const res = await airlock(
      ['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', '--skip-images', '--ca-file', server.caFile, '--git', server.url('auth'), '--git-username', server.username, '--git-password-env', 'GIT_PW'],
      { env: { ...gitEnv(), GIT_PW: 'wrong-password-123' } },
    );
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, /HTTP 401/);
    assert.equal(res.stderr.includes('wrong-password-123'), false);
  });
});

function deployment(name: string, image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  selector: { matchLabels: { app: ${name} } }\n  template:\n    metadata: { labels: { app: ${name} } }\n    spec:\n      containers:\n        - name: app\n          image: ${image}\n`;
}
