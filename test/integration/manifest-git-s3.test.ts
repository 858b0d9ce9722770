import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { fetchManifests, type FetchManifestsOptions, type ManifestFile, type ResolvedSource } from '../../packer/sources/manifests.ts';
import { fetchS3Prefix } from '../../packer/sources/s3.ts';
import { fetchGitTree, type FetchGitTreeOptions } from '../../packer/sources/git.ts';
import type { ManifestSource } from '../../packer/spec.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { s3Client } from '../../shared/transfer/s3.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { FAST_RETRY } from '../helpers/retry.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { freePort } from '../services/ports.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startS3, type S3Service } from '../services/s3.ts';
import { startSshd, type SshServer } from '../services/sshd.ts';

/**
 * manifests: git and s3 sources against real servers: git-http-backend
 * behind nginx (HTTPS, a test CA given only as caFile, Basic auth), OpenSSH,
 * and s3rver. NODE_EXTRA_CA_CERTS (which this environment sets) is unset for
 * the whole file so that the CA really comes from caFile.
 *
 * The repository "apps":
 *   commit 1 (tags v1.0.0 annotated, light): README.md, deploy/app.yaml (v1), deploy/base/svc.yaml
 *   main, commit 2: deploy/app.yaml (v2), deploy/vendor (a submodule gitlink)
 *   release, from commit 1: deploy/extra.yaml
 * The repository "linky": deploy/app.yaml and deploy/link.yaml -> app.yaml
 */
describe('manifests from git and S3', () => {
  let server: GitServer;
  let sshd: SshServer;
  let s3: S3Service;
  let work: string;
  let transport: HttpTransport;
  const commits: Record<string, string> = {};
  const savedExtraCAs = process.env.NODE_EXTRA_CA_CERTS;
  const savedAws: Record<string, string | undefined> = {};
  const PW_ENV = 'AIRLOCK_TEST_GIT_PW';

  const git = (dir: string, args: string[]) => run('git', ['-C', dir, '-c', 'user.name=seed', '-c', 'user.email=seed@example.test', '-c', 'tag.gpgSign=false', ...args]);
  const write = (dir: string, files: Record<string, string>) => {
    for (const [f, content] of Object.entries(files)) {
      mkdirSync(join(dir, f, '..'), { recursive: true });
      writeFileSync(join(dir, f), content);
    }
  };
  const yaml = (name: string, v: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${name} }\ndata: { version: "${v}" }\n`;

  before(async () => {
    delete process.env.NODE_EXTRA_CA_CERTS;
    work = mkdtempSync(join(tmpdir(), 'airlock-mgit-'));
    [server, sshd, s3] = await Promise.all([startGitServer(), startSshd(), startS3()]);
    process.env[PW_ENV] = server.password;
    for (const k of Object.keys(s3.env).concat(['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_PROFILE'])) savedAws[k] = process.env[k];
    Object.assign(process.env, s3.env);
    delete process.env.AWS_ENDPOINT_URL;
    delete process.env.AWS_ENDPOINT_URL_S3;
    delete process.env.AWS_PROFILE;
    transport = new HttpTransport({ caFile: server.caFile, retry: FAST_RETRY });

    const bare = await server.createRepo('apps');
    const src = join(work, 'apps-src');
    mkdirSync(src);
    await git(src, ['init', '--quiet', '--initial-branch', 'main']);
    write(src, { 'README.md': '# apps\n', 'deploy/app.yaml': yaml('app', '1'), 'deploy/base/svc.yaml': yaml('svc', '1') });
    await git(src, ['add', '-A']);
    await git(src, ['commit', '--quiet', '-m', 'one']);
    commits.one = (await git(src, ['rev-parse', 'HEAD'])).stdout.trim();
    await git(src, ['tag', '-a', 'v1.0.0', '-m', 'release 1.0.0']);
    await git(src, ['tag', 'light']);
    await git(src, ['checkout', '--quiet', '-b', 'release']);
    write(src, { 'deploy/extra.yaml': yaml('extra', '1') });
    await git(src, ['add', '-A']);
    await git(src, ['commit', '--quiet', '-m', 'release']);
    commits.release = (await git(src, ['rev-parse', 'HEAD'])).stdout.trim();
    await git(src, ['checkout', '--quiet', 'main']);
    write(src, { 'deploy/app.yaml': yaml('app', '2') });
    await git(src, ['add', '-A']);
    await git(src, ['update-index', '--add', '--cacheinfo', `160000,${commits.one},deploy/vendor`]);
    await git(src, ['commit', '--quiet', '-m', 'two']);
    commits.two = (await git(src, ['rev-parse', 'HEAD'])).stdout.trim();
    await git(src, ['push', '--quiet', '--tags', bare, 'main', 'release']);

    const linkyBare = await server.createRepo('linky');
    const linky = join(work, 'linky-src');
    mkdirSync(linky);
    await git(linky, ['init', '--quiet', '--initial-branch', 'main']);
    write(linky, { 'deploy/app.yaml': yaml('app', '1') });
    await run('ln', ['-s', 'app.yaml', join(linky, 'deploy', 'link.yaml')]);
    await git(linky, ['add', '-A']);
    await git(linky, ['commit', '--quiet', '-m', 'link']);
    await git(linky, ['push', '--quiet', linkyBare, 'main']);

    const client = s3Client({ endpoint: s3.endpoint });
    const put = (Key: string, Body: string) => client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body }));
    await put('releases/harness/app.yaml', yaml('app', 's3'));
    await put('releases/harness/base/', '');
    await put('releases/harness/base/svc.yaml', yaml('svc', 's3'));
    await put('releases/harness/base/more/cm.yaml', yaml('cm', 's3'));
    await put('releases/harness-old/app.yaml', yaml('old', 's3'));
    await put('hostile/ok.yaml', yaml('ok', 's3'));
    // s3rver (a file system store) normalizes "..", "." and "//" in keys away; a backslash key is what it can hold.
    await put('hostile/..\\..\\etc\\passwd.yaml', 'root\n');
    client.destroy();
  });

  after(async () => {
    await transport?.close();
    await Promise.all([server?.stop(), sshd?.stop(), s3?.stop()]);
    rmSync(work, { recursive: true, force: true });
    if (savedExtraCAs !== undefined) process.env.NODE_EXTRA_CA_CERTS = savedExtraCAs;
    delete process.env[PW_ENV];
    for (const [k, v] of Object.entries(savedAws)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  let n = 0;
  const fetch = async (sources: ManifestSource[], extra: Partial<FetchManifestsOptions> = {}) => {
    const workDir = join(work, `fetch-${n++}`);
    mkdirSync(workDir);
    const logs: string[] = [];
    const resolved: ResolvedSource[] = [];
    const files = await fetchManifests(sources, {
      workDir,
      transport,
      caFile: server.caFile,
      gitUsername: server.username,
      gitPasswordEnv: PW_ENV,
      s3Endpoint: s3.endpoint,
      onLog: (m) => logs.push(m),
      onResolved: (r) => resolved.push(r),
      ...extra,
    });
    return { files, logs, resolved, workDir };
  };
  const contents = (files: ManifestFile[]) => Object.fromEntries(files.map((f) => [f.path, readFileSync(f.file, 'utf8')]));
  const exit = (code: number, message: RegExp, hint?: RegExp) => (err: Error & { exitCode?: number; hint?: string }) => {
    assert.equal(err.exitCode, code, `${err.message}`);
    assert.match(err.message, message);
    if (hint) assert.match(err.hint ?? '', hint);
    return true;
  };

  test('git over HTTPS: an annotated tag with a path; the commit is the tagged one, the folder is the path’s last component', async () => {
    const { files, resolved } = await fetch([{ kind: 'git', url: server.url('apps'), ref: 'v1.0.0', path: 'deploy' }]);
    assert.deepEqual(contents(files), { 'manifests/deploy/app.yaml': yaml('app', '1'), 'manifests/deploy/base/svc.yaml': yaml('svc', '1') });
    assert.deepEqual(resolved, [{ index: 0, kind: 'git', url: server.url('apps'), ref: 'refs/tags/v1.0.0', commit: commits.one, path: 'deploy' }]);
  });

  test('git: a branch (no path: the repository name), a lightweight tag, a full commit sha; a submodule is skipped with a warning', async () => {
    const main = await fetch([{ kind: 'git', url: server.url('apps'), ref: 'main' }]);
    assert.deepEqual(Object.keys(contents(main.files)), ['manifests/apps/README.md', 'manifests/apps/deploy/app.yaml', 'manifests/apps/deploy/base/svc.yaml']);
    assert.equal(contents(main.files)['manifests/apps/deploy/app.yaml'], yaml('app', '2'));
    assert.equal(main.resolved[0]!.commit, commits.two);
    assert.match(main.logs.join('\n'), new RegExp(`manifests\\[0\\]\\.git: deploy/vendor is a submodule \\(commit ${commits.one}\\); skipped`));

    const head = await fetch([{ kind: 'git', url: server.url('apps') }]);
    assert.deepEqual([head.resolved[0]!.ref, head.resolved[0]!.commit], ['refs/heads/main', commits.two], 'no ref: the remote HEAD');

    const release = await fetch([{ kind: 'git', url: server.url('apps'), ref: 'release', path: 'deploy/' }]);
    assert.deepEqual(Object.keys(contents(release.files)), ['manifests/deploy/app.yaml', 'manifests/deploy/base/svc.yaml', 'manifests/deploy/extra.yaml']);
    assert.equal(release.resolved[0]!.commit, commits.release);

    const light = await fetch([{ kind: 'git', url: server.url('apps'), ref: 'light', path: 'deploy/base' }]);
    assert.deepEqual(Object.keys(contents(light.files)), ['manifests/base/svc.yaml']);
    assert.equal(light.resolved[0]!.commit, commits.one);

    const bySha = await fetch([{ kind: 'git', url: server.url('apps'), ref: commits.one, path: 'deploy' }]);
    assert.deepEqual(contents(bySha.files), { 'manifests/deploy/app.yaml': yaml('app', '1'), 'manifests/deploy/base/svc.yaml': yaml('svc', '1') });
    assert.deepEqual([bySha.resolved[0]!.ref, bySha.resolved[0]!.commit], [commits.one, commits.one]);
    // Depth 1: the temporary repository held one commit only (and is gone).
    assert.deepEqual(readdirSync(bySha.workDir).sort(), ['source-0']);
    assert.deepEqual(readdirSync(join(bySha.workDir, 'source-0')), ['tree']);
  });

  test('git: an unknown ref (exit 2) lists the refs there are; an unknown path lists the folders; a short sha says to use the full one', async () => {
    await assert.rejects(
      fetch([{ kind: 'git', url: server.url('apps'), ref: 'v9.9.9' }]),
      exit(2, /manifests\[0\]\.git: .*apps\.git has no branch or tag "v9\.9\.9"/, /branch main, branch release, tag light, tag v1\.0\.0/),
    );
    await assert.rejects(fetch([{ kind: 'git', url: server.url('apps'), ref: commits.one.slice(0, 7) }]), exit(2, /has no branch or tag/, /full 40-character sha/));
    await assert.rejects(fetch([{ kind: 'git', url: server.url('apps'), ref: 'main', path: 'deploy/nope' }]), exit(2, /has no deploy\/nope/, /folders there: base/));
    await assert.rejects(fetch([{ kind: 'git', url: server.url('apps'), ref: 'main', path: 'README.md' }]), exit(2, /README\.md is a file in branch main, not a folder/));
    await assert.rejects(
      fetch([{ kind: 'git', url: server.url('apps'), ref: '0123456789012345678901234567890123456789' }]),
      exit(4, /did not serve commit 0123456789012345678901234567890123456789/),
    );
  });

  test('git: a symbolic link in the tree is refused (exit 3) naming the file and its target; the temporary repository is removed', async () => {
    const workDir = join(work, 'linky');
    mkdirSync(workDir);
    await assert.rejects(
      fetchManifests([{ kind: 'git', url: server.url('linky'), ref: 'main', path: 'deploy' }], {
        workDir,
        transport,
        gitUsername: server.username,
        gitPasswordEnv: PW_ENV,
      }),
      exit(3, /manifests\[0\]\.git: link\.yaml is a symbolic link \(to "app\.yaml"\); bundles carry regular files only/),
    );
    assert.deepEqual(readdirSync(join(workDir, 'source-0')), ['tree']);
  });

  test('git: the caps on the fetched data, the files and the bytes of the tree are exit 3', async () => {
    const source = { url: server.url('apps'), ref: 'main' };
    const base = { transport, username: server.username, passwordEnv: PW_ENV, label: 'manifests[0].git' };
    let i = 0;
    const attempt = (caps: Partial<FetchGitTreeOptions>) => {
      const workDir = join(work, `caps-${i++}`);
      mkdirSync(workDir);
      return fetchGitTree(source, join(workDir, 'tree'), { ...base, workDir, ...caps });
    };
    await assert.rejects(attempt({ maxFetchBytes: 300 }), exit(3, /apps\.git sent more than 300 bytes for one commit/));
    await assert.rejects(attempt({ maxFiles: 2 }), exit(3, /the tree holds more than 2 files/));
    await assert.rejects(attempt({ maxBytes: 50 }), exit(3, /the tree holds more than 50 bytes/));
    const whole = await attempt({});
    assert.deepEqual([whole.files, whole.commit, whole.skippedSubmodules], [3, commits.two, ['deploy/vendor']]);
  });

  test('git: wrong password, a closed port, no CA: exit 4, no secret in the message', async () => {
    process.env.AIRLOCK_TEST_WRONG_PW = 'not-the-pw-123';
    try {
      await assert.rejects(fetch([{ kind: 'git', url: server.url('apps'), ref: 'main' }], { gitPasswordEnv: 'AIRLOCK_TEST_WRONG_PW' }), (err: Error & { exitCode?: number; hint?: string }) => {
        exit(4, /HTTP 401/, /--git-username/)(err);
        assert.doesNotMatch(err.message + err.hint, /not-the-pw-123/);
        return true;
      });
    } finally {
      delete process.env.AIRLOCK_TEST_WRONG_PW;
    }
    const port = await freePort();
    await assert.rejects(fetch([{ kind: 'git', url: `https://127.0.0.1:${port}/git/apps.git`, ref: 'main' }]), exit(4, new RegExp(`127\\.0\\.0\\.1:${port}`)));
    const untrusting = new HttpTransport({ retry: FAST_RETRY });
    try {
      await assert.rejects(fetch([{ kind: 'git', url: server.url('apps'), ref: 'main' }], { transport: untrusting }), exit(4, /certificate|TLS/i));
    } finally {
      await untrusting.close();
    }
  });

  test('git over SSH: a tag with a path, host key checked; an unknown host key is exit 4 with the fingerprint', async () => {
    const url = sshd.url(join(server.root, 'apps.git'));
    const { files, resolved } = await fetch([{ kind: 'git', url, ref: 'v1.0.0', path: 'deploy' }], { sshKey: sshd.clientKey, knownHosts: sshd.knownHosts });
    assert.deepEqual(contents(files), { 'manifests/deploy/app.yaml': yaml('app', '1'), 'manifests/deploy/base/svc.yaml': yaml('svc', '1') });
    assert.equal(resolved[0]!.commit, commits.one);
    const empty = join(work, 'empty_known_hosts');
    writeFileSync(empty, '');
    await assert.rejects(fetch([{ kind: 'git', url, ref: 'main' }], { sshKey: sshd.clientKey, knownHosts: empty }), exit(4, new RegExp(`it offered ${sshd.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}`)));
  });

  test('s3: every object under the prefix (paged listing, folder markers skipped, a neighbouring prefix left out)', async () => {
    const { files } = await fetch([{ kind: 's3', url: `s3://${s3.bucket}/releases/harness/` }]);
    assert.deepEqual(contents(files), {
      'manifests/harness/app.yaml': yaml('app', 's3'),
      'manifests/harness/base/more/cm.yaml': yaml('cm', 's3'),
      'manifests/harness/base/svc.yaml': yaml('svc', 's3'),
    });
    const paged = await fetchS3Prefix(`s3://${s3.bucket}/releases/harness`, join(work, 'paged', 'harness'), { endpoint: s3.endpoint, pageSize: 1 });
    assert.deepEqual(paged.files, ['app.yaml', 'base/more/cm.yaml', 'base/svc.yaml']);
    await assert.rejects(
      fetchS3Prefix(`s3://${s3.bucket}/releases/`, join(work, 'capped', 'releases'), { endpoint: s3.endpoint, maxFiles: 2, pageSize: 1 }),
      exit(3, /more than 2 objects/),
    );
  });

  test('s3: a key that is not a plain relative path is refused (exit 3) before anything is downloaded', async () => {
    const dest = join(work, 'hostile', 'hostile');
    await assert.rejects(
      fetchS3Prefix(`s3://${s3.bucket}/hostile/`, dest, { endpoint: s3.endpoint, label: 'manifests[0].s3' }),
      exit(3, /manifests\[0\]\.s3: refused the object key "hostile\/\.\.\\\\\.\.\\\\etc\\\\passwd\.yaml": it has a backslash or NUL in the path/),
    );
    assert.equal(existsSync(dest), false, 'nothing was written');
  });

  describe('airlock pack with git and s3 manifest sources', () => {
    let registry: RegistryService;
    before(async () => {
      registry = await startRegistry();
      const images = await generateImages({ seed: 11, images: [{ repository: 'library/nginx', tag: '1.25', layers: 1, layerSize: 10_000 }] });
      await pushImages(registry.url, images);
    });
    after(async () => {
      await registry?.stop();
    });

    test('the bundle holds the git tree at the tag and the S3 objects, and verifies', async () => {
      const pair = generateKeyPair('pw');
      writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
      writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
      const repo = join(work, 'webrepo-src');
      const bare = await server.createRepo('web');
      mkdirSync(repo);
      await git(repo, ['init', '--quiet', '--initial-branch', 'main']);
      write(repo, { 'k8s/web.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  template:\n    spec:\n      containers:\n        - { name: web, image: nginx:1.25 }\n' });
      await git(repo, ['add', '-A']);
      await git(repo, ['commit', '--quiet', '-m', 'web']);
      await git(repo, ['tag', 'v2']);
      const commit = (await git(repo, ['rev-parse', 'HEAD'])).stdout.trim();
      await git(repo, ['push', '--quiet', '--tags', bare, 'main']);
      const spec = join(work, 'airlock.yaml');
      writeFileSync(
        spec,
        [
          'name: web',
          'version: 2.0.0',
          'discoverImages: true',
          'manifests:',
          `  - git: { url: ${server.url('web')}, ref: v2, path: k8s }`,
          `  - s3: s3://${s3.bucket}/releases/harness/`,
          '',
        ].join('\n'),
      );
      const bundle = join(work, 'web.tar');
      const packed = await airlock(
        [
          'pack', '-f', spec, '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${registry.url}`,
          '--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', 'WEB_GIT_PW', '--s3-endpoint', s3.endpoint,
        ],
        { env: { AIRLOCK_PASSWORD: 'pw', COSIGN_PASSWORD: undefined, WEB_GIT_PW: server.password, NODE_EXTRA_CA_CERTS: undefined, ...s3.env } },
      );
      assert.equal(packed.code, 0, packed.stderr);
      assert.match(packed.stderr, new RegExp(`manifests\\[0\\]\\.git .*web\\.git refs/tags/v2: commit ${commit}`));
      assert.doesNotMatch(packed.stdout + packed.stderr, new RegExp(server.password));
      const listing = (await run('tar', ['-tf', bundle])).stdout.split('\n').filter((l) => l.startsWith('manifests/'));
      assert.deepEqual(listing, ['manifests/harness/app.yaml', 'manifests/harness/base/more/cm.yaml', 'manifests/harness/base/svc.yaml', 'manifests/k8s/web.yaml']);
      const index = JSON.parse((await run('tar', ['-xOf', bundle, 'airlock.json'])).stdout) as { images: { ref: string }[] };
      assert.deepEqual(index.images.map((i) => i.ref), ['docker.io/library/nginx:1.25'], 'the image in the git manifest was discovered');
      const verified = await airlock(['verify', bundle, '--key', join(work, 'airlock.pub')]);
      assert.equal(verified.code, 0, verified.stderr);
    });
  });
});
