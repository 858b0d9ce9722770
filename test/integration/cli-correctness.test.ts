import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, existsSync, openSync, readSync, statSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { airlock } from '../helpers/cli.ts';
import { packedWorld, type PackedWorld } from '../helpers/packed-world.ts';
import { run } from '../services/exec.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * Correctness a new user ran into, through the real CLI against real
 * servers: --platform is checked against single-platform images too (and
 * an unknown platform is a usage error), inspect refuses a bundle whose size
 * disagrees with its index without reading any blob, and load --dry-run --git
 * checks the repository and says what it would commit, pushing nothing.
 */
describe('cli correctness', () => {
  let world: PackedWorld;
  let enclave: RegistryService;
  let server: GitServer;
  let work: string;
  let bundle: string;

  before(async () => {
    world = await packedWorld({
      name: 'correctness',
      password: 'correct horse',
      images: {
        seed: 15,
        baseLayerSize: 50_000,
        images: [
          // No platforms: one linux/amd64 manifest, no index.
          { repository: 'harness/amd-only', tag: '1.0', layers: 2, layerSize: 100_000, sharedBaseLayers: 1 },
          { repository: 'library/both', tag: '1.0', layers: 1, layerSize: 20_000, platforms: ['linux/amd64', 'linux/arm64'] },
        ],
      },
      manifests: { 'app.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: { name: web }\nspec:\n  containers:\n    - { name: web, image: "docker.io/harness/amd-only:1.0" }\n' },
      spec: ['name: demo', 'version: 1.0.0', 'images:', '  - docker.io/harness/amd-only:1.0', '  - docker.io/library/both:1.0', 'manifests:', '  - path: ./deploy', ''].join('\n'),
      bundleName: 'demo.tar',
      // The tests pack it (--platform).
      pack: false,
    });
    ({ work, bundle } = world);
    enclave = await startRegistry();
    server = await startGitServer();
  });

  after(async () => {
    await world?.stop();
    await enclave?.stop();
    await server?.stop();
  });

  const pack = (out: string, extra: string[]) => world.pack(out, extra);

  test('--platform linux/arm64 with an amd64-only image: exit 4 naming the image and its platform, no bundle', async () => {
    const out = join(work, 'arm.tar');
    const r = await pack(out, ['--platform', 'linux/arm64']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /1 of 2 images cannot be packed/);
    assert.match(r.stderr, /docker\.io\/harness\/amd-only:1\.0: a single-platform image: it offers linux\/amd64, not linux\/arm64/);
    assert.doesNotMatch(r.stderr, /library\/both/, 'the index has linux/arm64');
    assert.equal(existsSync(out), false);
  });

  test('an unknown os or architecture is a usage error (exit 2) before anything is fetched', async () => {
    const arch = await pack(join(work, 'x.tar'), ['--platform', 'linux/nonsense']);
    assert.equal(arch.code, 2, arch.stderr);
    assert.match(arch.stderr, /invalid platform "linux\/nonsense": unknown architecture "nonsense"/);
    const os = await pack(join(work, 'x.tar'), ['--platform', 'linux/amd64', '--platform', 'beos/amd64']);
    assert.equal(os.code, 2);
    assert.match(os.stderr, /unknown operating system "beos"/);
  });

  test('--platform linux/amd64 packs both; the index says what each image offers', async () => {
    const r = await pack(bundle, ['--platform', 'linux/amd64']);
    assert.equal(r.code, 0, r.stderr);
    const inspect = await airlock(['inspect', bundle, '--json']);
    const index = JSON.parse(inspect.stdout) as { platforms: string[]; images: { ref: string; platforms?: string[] }[] };
    assert.deepEqual(index.platforms, ['linux/amd64']);
    assert.deepEqual(
      index.images.map((i) => [i.ref, i.platforms]),
      [
        ['docker.io/harness/amd-only:1.0', ['linux/amd64']],
        ['docker.io/library/both:1.0', ['linux/amd64']],
      ],
    );
  });

  test('inspect: a bundle longer or shorter than its index says is exit 3; a changed blob is not read', async () => {
    const size = statSync(bundle).size;
    const longer = join(work, 'longer.tar');
    copyFileSync(bundle, longer);
    appendFileSync(longer, Buffer.alloc(512));
    const l = await airlock(['inspect', longer]);
    assert.equal(l.code, 3, l.stdout + l.stderr);
    assert.match(l.stderr, new RegExp(`longer\\.tar: data after the end of the bundle \\(it ends at offset ${size}\\)`));
    assert.equal(l.stdout, '');

    const shorter = join(work, 'shorter.tar');
    copyFileSync(bundle, shorter);
    truncateSync(shorter, size - 10_000);
    const s = await airlock(['inspect', shorter]);
    assert.equal(s.code, 3);
    assert.match(s.stderr, new RegExp(`shorter\\.tar: truncated: it ends at byte ${size - 10_000} inside .*; the signed index makes it ${size} bytes`));

    // Same size, one byte of a layer changed: inspect reads the index only, so it still shows it (verify would refuse it).
    const changed = join(work, 'changed.tar');
    copyFileSync(bundle, changed);
    const fd = openSync(changed, 'r+');
    const at = Math.floor(size / 2);
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
    closeSync(fd);
    const c = await airlock(['inspect', changed]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /not verified/);
  });

  describe('load --dry-run --git', () => {
    const load = (extra: string[], password = server.password) =>
      airlock(
        ['load', bundle, '--key', world.pub, '--registry', enclave.host, '--plain-http', '--ca-file', server.caFile, '--git', server.url('apps'), '--git-username', server.username, '--git-password-env', 'GIT_PW', ...extra],
        { env: { GIT_PW: password } },
      );

    before(async () => {
      await server.createRepo('apps', { files: { 'README.md': 'apps\n' } });
    });

    test('on a new branch: every file would be added, from the default branch; nothing is pushed', async () => {
      const r = await load(['--dry-run']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /git: would commit to dev in https:\/\/\S+ under demo\/ \(a new branch from main\): \d+ added, 0 changed, 0 removed \(repository reachable, push allowed; nothing pushed\)/);
      assert.match(r.stdout, /^ {2}\+ demo\/base\/kustomization\.yaml$/m);
      assert.match(r.stdout, /^ {2}\+ demo\/airlock\/airlock\.json$/m);
      assert.equal((await server.git('apps', ['branch', '--list'])).trim(), '* main', 'no branch was pushed');

      const json = await load(['--dry-run', '--json']);
      const result = JSON.parse(json.stdout.trim().split('\n').at(-1)!) as { gitPlan: { createdBranch: boolean; startFrom: string; added: string[] } };
      assert.equal(result.gitPlan.createdBranch, true);
      assert.equal(result.gitPlan.startFrom, 'main');
      assert.ok(result.gitPlan.added.includes('demo/base/deploy/app.yaml'), JSON.stringify(result.gitPlan.added));
    });

    test('refused credentials are exit 4 in the dry run already', async () => {
      const r = await load(['--dry-run'], 'wrong password');
      assert.equal(r.code, 4, r.stdout + r.stderr);
      assert.match(r.stderr, /HTTP 401/);
      assert.match(r.stderr, /--git-username \/ --git-password-env/);
    });

    test('after a load: nothing to commit; after someone changed the branch: the files changed and removed', async () => {
      const real = await load([]);
      assert.equal(real.code, 0, real.stderr);
      const same = await load(['--dry-run']);
      assert.equal(same.code, 0, same.stderr);
      assert.match(same.stdout, /git: dev in \S+ under demo\/ already matches this bundle; no commit would be made/);

      // Someone edits the base and adds a file to it on dev.
      const clone = join(work, 'clone');
      const authed = server.url('apps').replace('https://', `https://${server.username}:${encodeURIComponent(server.password)}@`);
      const gitEnvVars = { GIT_SSL_CAINFO: server.caFile, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
      await run('git', ['clone', '--quiet', '--branch', 'dev', authed, clone], { env: gitEnvVars });
      appendFileSync(join(clone, 'demo', 'base', 'kustomization.yaml'), '# edited by hand\n');
      writeFileSync(join(clone, 'demo', 'base', 'stale.yaml'), 'kind: ConfigMap\n');
      writeFileSync(join(clone, 'demo', 'notes.md'), 'kept: outside the folders a load replaces\n');
      await run('git', ['-C', clone, 'add', '-A'], { env: gitEnvVars });
      await run('git', ['-C', clone, 'commit', '--quiet', '-m', 'by hand'], { env: gitEnvVars });
      await run('git', ['-C', clone, 'push', '--quiet', 'origin', 'dev'], { env: gitEnvVars });
      const tip = (await server.git('apps', ['rev-parse', 'dev'])).trim();

      const r = await load(['--dry-run']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /git: would commit to dev in \S+ under demo\/: 0 added, 1 changed, 1 removed/);
      assert.match(r.stdout, /^ {2}~ demo\/base\/kustomization\.yaml$/m);
      assert.match(r.stdout, /^ {2}- demo\/base\/stale\.yaml$/m);
      assert.doesNotMatch(r.stdout, /notes\.md/);
      assert.equal((await server.git('apps', ['rev-parse', 'dev'])).trim(), tip, 'the dry run pushed nothing');
    });
  });
});
