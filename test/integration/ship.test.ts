import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { airlock, REPO_ROOT } from '../helpers/cli.ts';
import { run, runBytes, type ExecResult } from '../services/exec.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { skopeoFlags } from '../services/skopeo.ts';
import { startSshd, type SshServer } from '../services/sshd.ts';

/**
 * What ships: the npm package (npm pack, installed with npm install -g into a
 * temporary prefix, run from another folder with relative paths), and the
 * one-file enclave loader, alone in an empty folder (no node_modules anywhere
 * above it), verifying and loading a bundle into an HTTPS registry with token
 * auth and into git over HTTPS and SSH; and the loader carried inside a bundle
 * (pack --include-loader), checked against the signed index as the enclave
 * does before running it. scripts/test.sh builds dist/ first.
 */
const PASSWORD = 'ship test';
const env = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };
const LOADER = join(REPO_ROOT, 'dist', 'airlock-loader.mjs');
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** `node PROGRAM ARGS` in `cwd`; never rejects (the exit code is in the result). */
function node(program: string, args: string[], cwd: string, extraEnv: Record<string, string | undefined> = {}): Promise<ExecResult> {
  return run(process.execPath, [program, ...args], { cwd, allowFail: true, timeoutMs: 110_000, env: { ...env, NODE_PATH: undefined, ...extraEnv } });
}

/** Steps 1 to 3 of the trust bootstrap in docs/enclave.md: the first sh block, up to step 4. */
function bootstrapSteps(doc: string): string {
  const block = /## The trust bootstrap[\s\S]*?```sh\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(block, 'docs/enclave.md has the trust bootstrap');
  return block.split('# 4.')[0]!;
}

function deployment(image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: { matchLabels: { app: web } }\n  template:\n    metadata: { labels: { app: web } }\n    spec:\n      containers:\n        - name: app\n          image: ${image}\n`;
}

/** A spec folder with relative paths only: airlock.yaml, deploy/web.yaml, keys. */
function writeProject(dir: string): void {
  mkdirSync(join(dir, 'deploy'), { recursive: true });
  writeFileSync(join(dir, 'deploy', 'web.yaml'), deployment('nginx:1.25'));
  writeFileSync(join(dir, 'airlock.yaml'), 'name: web\nversion: 1.0.0\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n');
  const pair = generateKeyPair(PASSWORD);
  writeFileSync(join(dir, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'airlock.pub'), pair.publicKeyPem);
}

describe('the npm package', () => {
  let work: string;
  let source: RegistryService;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-ship-npm-'));
    source = await startRegistry();
    await pushImages(source.url, await generateImages({ seed: 41, images: [{ repository: 'library/nginx', tag: '1.25', layers: 1, layerSize: 20_000 }] }));
  });
  after(async () => {
    await source?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('npm pack, npm install -g --prefix (no registry), then airlock from another folder with relative paths', async () => {
    const packed = await run('npm', ['pack', '--pack-destination', work], { cwd: REPO_ROOT, timeoutMs: 110_000 });
    const tarball = join(work, packed.stdout.trim().split('\n').pop()!);
    const listing = (await run('tar', ['-tzf', tarball])).stdout.split('\n');
    for (const f of ['package/dist/airlock.mjs', 'package/dist/airlock-loader.mjs', 'package/docs/spec.md', 'package/docs/enclave.md', 'package/README.md']) {
      assert.ok(listing.includes(f), `${f} ships (${listing.join(', ')})`);
    }
    assert.ok(!listing.some((f) => /\.ts$/.test(f)), 'no TypeScript sources ship');

    const prefix = join(work, 'global');
    // The builds carry every dependency: nothing to fetch, so --offline with an empty cache must do.
    await run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--cache', join(work, 'empty-cache'), '--no-audit', '--no-fund', tarball], { timeoutMs: 110_000 });
    const installed = join(prefix, 'lib', 'node_modules', 'airlock');
    assert.equal(existsSync(join(installed, 'node_modules')), false, 'no dependencies installed');
    const bin = join(prefix, 'bin', 'airlock');

    const project = join(work, 'project');
    writeProject(project);
    const help = await run(bin, ['--help'], { cwd: project, allowFail: true });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /airlock pack/);
    const version = await run(bin, ['--version'], { cwd: project, allowFail: true });
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);

    // The installed airlock finds the loader next to itself for --include-loader.
    const pack = await run(bin, ['pack', '-f', './airlock.yaml', '-o', './web.tar', '--key', './airlock.key', '--registry-mirror', `docker.io=${source.url}`, '--include-loader'], {
      cwd: project,
      allowFail: true,
      env,
      timeoutMs: 110_000,
    });
    assert.equal(pack.code, 0, pack.stderr);
    assert.match(pack.stdout, /loader +airlock-loader\.mjs, sha256 [0-9a-f]{64}/);
    const verified = await run(bin, ['verify', 'web.tar', '--key', 'airlock.pub'], { cwd: project, allowFail: true });
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('npm install -g of the repository itself (after npm ci built dist/) gives a working airlock', async () => {
    const prefix = join(work, 'global-from-clone');
    await run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', REPO_ROOT], { timeoutMs: 110_000 });
    const help = await run(join(prefix, 'bin', 'airlock'), ['--help'], { cwd: work, allowFail: true });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /airlock load/);
  });

  test('npm run -s airlock -- resolves relative paths against the folder npm was started in', async () => {
    const project = join(work, 'from-npm-run');
    writeProject(project);
    // npm runs scripts from the package root; INIT_CWD says where the user was.
    const packed = await run(
      'npm',
      ['--prefix', REPO_ROOT, 'run', '-s', 'airlock', '--', 'pack', '-f', './airlock.yaml', '-o', './web.tar', '--key', './airlock.key', '--registry-mirror', `docker.io=${source.url}`],
      { cwd: project, allowFail: true, env, timeoutMs: 110_000 },
    );
    assert.equal(packed.code, 0, packed.stderr);
    assert.ok(existsSync(join(project, 'web.tar')), 'the bundle lands in the folder the user gave it in');
  });
});

describe('the one-file enclave loader', () => {
  let work: string;
  let enclaveDir: string;
  let source: RegistryService;
  let enclave: RegistryService;
  let git: GitServer;
  let sshd: SshServer;
  let images: SyntheticImage[];
  let bundle: string;
  let index: BundleIndex;

  before(async () => {
    assert.ok(existsSync(LOADER), `${LOADER} is missing: run npm run build (scripts/test.sh does)`);
    work = mkdtempSync(join(tmpdir(), 'airlock-ship-loader-'));
    [source, enclave, git, sshd] = await Promise.all([startRegistry(), startRegistry({ auth: 'token', tls: true }), startGitServer(), startSshd()]);
    images = await generateImages({ seed: 42, images: [{ repository: 'library/nginx', tag: '1.25', layers: 2, layerSize: 50_000 }] });
    await pushImages(source.url, images);
    writeProject(work);
    bundle = join(work, 'web.tar');
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`, '--include-loader'], { env });
    assert.equal(packed.code, 0, packed.stderr);
    index = JSON.parse((await runBytes('tar', ['-xOf', bundle, 'airlock.json'])).toString('utf8')) as BundleIndex;

    // The enclave host: an empty folder holding the loader, nothing else; no node_modules above it either.
    enclaveDir = join(work, 'enclave');
    mkdirSync(enclaveDir);
    copyFileSync(LOADER, join(enclaveDir, 'airlock-loader.mjs'));
    for (let d = enclaveDir; d !== dirname(d); d = dirname(d)) assert.equal(existsSync(join(d, 'node_modules')), false, `no node_modules in ${d}`);
  });
  after(async () => {
    await Promise.all([source?.stop(), enclave?.stop(), git?.stop(), sshd?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  const loader = (args: string[], extraEnv: Record<string, string | undefined> = {}) => node('airlock-loader.mjs', args, enclaveDir, extraEnv);
  const registryArgs = (caFile = enclave.caFile!) => ['--registry', enclave.host, '--ca-file', caFile, '--registry-username', enclave.username!, '--registry-password-env', 'REGISTRY_PW'];

  test('the bundle carries it first, listed in the signed index; the trust bootstrap checks it', async () => {
    assert.deepEqual(
      (await run('tar', ['-tf', bundle])).stdout.split('\n').slice(0, 4),
      ['airlock.json', 'airlock.json.sig', 'airlock-loader.mjs', 'manifests/deploy/web.yaml'],
    );
    assert.equal(index.entries[0]!.path, 'airlock-loader.mjs');
    const carried = await runBytes('tar', ['-xOf', bundle, 'airlock-loader.mjs']);
    assert.equal(sha256(carried), index.entries[0]!.sha256, 'the carried loader matches the signed index');
    assert.equal(sha256(carried), sha256(readFileSync(LOADER)), 'and is the one npm run build made');

    // The trust bootstrap of docs/enclave.md, its shell lines as they are written there.
    const boot = join(work, 'boot');
    mkdirSync(boot);
    copyFileSync(bundle, join(boot, 'harness-0.44.1.tar'));
    copyFileSync(join(work, 'airlock.pub'), join(boot, 'airlock.pub'));
    const script = bootstrapSteps(readFileSync(join(REPO_ROOT, 'docs', 'enclave.md'), 'utf8'));
    const steps = await run('bash', ['-euo', 'pipefail', '-c', script], { cwd: boot, allowFail: true });
    assert.equal(steps.code, 0, steps.stderr);
    assert.match(steps.stdout, /Verified OK/);
    assert.match(steps.stdout, /airlock-loader\.mjs: OK/);
    // A loader that is not the one the index lists fails step 3.
    writeFileSync(join(boot, 'airlock-loader.mjs'), '// not the loader\n', { flag: 'a' });
    const changed = await run('bash', ['-euo', 'pipefail', '-c', script.replace(/^tar -xf .*$/m, '')], { cwd: boot, allowFail: true });
    assert.notEqual(changed.code, 0, 'sha256sum -c refuses a changed loader');
    await run('tar', ['-xf', bundle, '-C', boot, 'airlock-loader.mjs']);
    const fromBundle = await node(join(boot, 'airlock-loader.mjs'), ['verify', bundle, '--key', join(work, 'airlock.pub')], boot);
    assert.equal(fromBundle.code, 0, fromBundle.stderr);

    const inspect = await loader(['inspect', bundle]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, new RegExp(`loader: airlock-loader\\.mjs \\(.*sha256 ${index.entries[0]!.sha256}\\)`));
  });

  test('verify, and load into an HTTPS registry with token auth', async () => {
    assert.deepEqual(readdirSync(enclaveDir), ['airlock-loader.mjs']);
    const version = await loader(['--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version, 'the version is built in');
    const verified = await loader(['verify', bundle, '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /signature ok/);

    const loaded = await loader(['load', bundle, '--key', join(work, 'airlock.pub'), ...registryArgs()], { REGISTRY_PW: enclave.password });
    assert.equal(loaded.code, 0, loaded.stderr);
    const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(enclave), `docker://${enclave.host}/library/nginx:1.25`]);
    assert.equal(`sha256:${sha256(raw)}`, images[0]!.digest);
    assert.ok(enclave.tokenRequests.length > 0, 'the loader went through the token issuer');

    const tampered = join(work, 'tampered.tar');
    const bytes = readFileSync(bundle);
    const at = bytes.indexOf('apiVersion: apps/v1');
    bytes[at] = 'A'.charCodeAt(0) + 1;
    writeFileSync(tampered, bytes);
    const refused = await loader(['verify', tampered, '--key', join(work, 'airlock.pub')]);
    assert.equal(refused.code, 3, refused.stderr);
  });

  test('load --git over HTTPS and over SSH', async () => {
    await git.createRepo('apps', { branch: 'main' });
    // The enclave's CA bundle: the registry's and the git server's test CAs.
    const cas = join(work, 'enclave-cas.pem');
    writeFileSync(cas, Buffer.concat([readFileSync(enclave.caFile!), readFileSync(git.caFile)]));
    const https = await loader(
      ['load', bundle, '--key', join(work, 'airlock.pub'), ...registryArgs(cas), '--git', git.url('apps'), '--git-username', git.username, '--git-password-env', 'GIT_PW'],
      { REGISTRY_PW: enclave.password, GIT_PW: git.password },
    );
    assert.equal(https.code, 0, https.stderr);
    assert.match(https.stdout, /git: committed [0-9a-f]{12} to dev/);
    assert.equal((await git.git('apps', ['log', '-1', '--format=%s', 'dev'])).trim(), 'airlock: load web 1.0.0');

    const bare = await git.createRepo('apps-ssh', { branch: 'main' });
    const ssh = await loader(
      ['load', bundle, '--key', join(work, 'airlock.pub'), ...registryArgs(), '--git', sshd.url(bare), '--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts],
      { REGISTRY_PW: enclave.password },
    );
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.match(ssh.stdout, /git: committed [0-9a-f]{12} to dev/);
    assert.equal((await git.git('apps-ssh', ['log', '-1', '--format=%s', 'dev'])).trim(), 'airlock: load web 1.0.0');
  });

  test('pack --include-loader without a loader file is a usage error naming npm run build', async () => {
    const lone = join(work, 'lone');
    mkdirSync(lone);
    copyFileSync(join(REPO_ROOT, 'dist', 'airlock.mjs'), join(lone, 'airlock.mjs'));
    const args = ['pack', '-f', join(work, 'airlock.yaml'), '-o', join(lone, 'x.tar'), '--key', join(work, 'airlock.key'), '--include-loader'];
    const missing = await node('airlock.mjs', args, lone);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /no one-file loader found/);
    assert.match(missing.stderr, /npm run build/);
    const wrong = await node('airlock.mjs', [...args, '--loader-file', join(lone, 'nope.mjs')], lone);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /--loader-file .*nope\.mjs: no such file/);
    assert.equal(existsSync(join(lone, 'x.tar')), false);
  });
});
