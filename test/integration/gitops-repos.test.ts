import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startSshd, type SshServer } from '../services/sshd.ts';

/**
 * Loads and promotes against the repositories users start from, over HTTPS
 * and SSH: an empty one as every forge creates it (HEAD names a branch that
 * does not exist, and still does after airlock pushed only dev), and ones
 * whose HEAD is main or master with a commit. Release 1, release 1 again (no
 * commit), a promote that creates prod, release 2, a promote that merges it.
 */
const PASSWORD = 'gitops repos test';

describe('load and promote against empty, main and master repositories', () => {
  let source: RegistryService;
  let enclave: RegistryService;
  let server: GitServer;
  let sshd: SshServer;
  let work: string;
  const bundles: string[] = [];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-gitops-repos-'));
    [source, enclave, server, sshd] = await Promise.all([startRegistry(), startRegistry(), startGitServer(), startSshd()]);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem);
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    mkdirSync(join(work, 'deploy'));
    for (const [version, tag, seed] of [['1.0.0', '1.25', 21], ['1.1.0', '1.26', 22]] as const) {
      await pushImages(source.url, await generateImages({ seed, images: [{ repository: 'library/nginx', tag, layers: 1, layerSize: 5_000 }] }));
      writeFileSync(join(work, 'deploy', 'web.yaml'), deployment('web', `nginx:${tag}`));
      writeFileSync(join(work, 'airlock.yaml'), `name: harness\nversion: ${version}\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n`);
      const out = join(work, `harness-${version}.tar`);
      const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', out, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], {
        env: { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined },
      });
      assert.equal(packed.code, 0, packed.stderr);
      bundles.push(out);
    }
  });

  after(async () => {
    await Promise.all([source?.stop(), enclave?.stop(), server?.stop(), sshd?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  type Transport = 'https' | 'ssh';
  const cases: { repo: string; head: string; seeded: boolean }[] = [
    { repo: 'empty', head: 'main', seeded: false },
    { repo: 'main', head: 'main', seeded: true },
    { repo: 'master', head: 'master', seeded: true },
  ];

  for (const transport of ['https', 'ssh'] as Transport[]) {
    for (const c of cases) {
      const name = `${c.repo}-${transport}`;
      test(`${transport}: ${c.seeded ? `HEAD is ${c.head} with a commit` : `empty repository (HEAD names ${c.head}, which does not exist)`}`, async () => {
        const bare = await server.createRepo(name, { branch: c.head, ...(c.seeded ? { files: { 'README.md': 'enclave apps\n' } } : {}) });
        const remote =
          transport === 'https'
            ? ['--git', server.url(name), '--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', 'GIT_PW']
            : ['--git', sshd.url(bare), '--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts];
        const env = { GIT_PW: server.password };
        const load = (bundle: string): Promise<CliResult> =>
          airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', ...remote], { env });
        const promote = (): Promise<CliResult> => airlock(['promote', '--to', 'prod', ...remote], { env });
        const tip = async (branch: string) => (await server.git(name, ['rev-parse', branch])).trim();

        const first = await load(bundles[0]!);
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /git: committed [0-9a-f]{12} to dev \(new branch\)/);
        if (!c.seeded) {
          assert.equal((await server.git(name, ['symbolic-ref', 'HEAD'])).trim(), `refs/heads/${c.head}`);
          assert.equal((await server.git(name, ['for-each-ref', '--format=%(refname)'])).trim(), 'refs/heads/dev', `HEAD still names ${c.head}, which does not exist`);
        } else {
          assert.equal((await server.git(name, ['rev-parse', 'dev^'])).trim(), await tip(c.head), `dev starts from ${c.head}`);
        }
        const dev1 = await tip('dev');

        const again = await load(bundles[0]!);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, /already matches this bundle; no commit/);
        assert.equal(await tip('dev'), dev1);

        const created = await promote();
        assert.equal(created.code, 0, created.stderr);
        assert.match(created.stdout, /promote harness 1\.0\.0: created prod from dev/);

        const second = await load(bundles[1]!);
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stdout, /git: committed [0-9a-f]{12} to dev/);
        assert.equal((await server.git(name, ['log', '-1', '--format=%s', 'dev'])).trim(), 'airlock: load harness 1.1.0');
        assert.equal((await server.git(name, ['rev-parse', 'dev^'])).trim(), dev1);

        const merged = await promote();
        assert.equal(merged.code, 0, merged.stderr);
        assert.match(merged.stdout, /promote harness 1\.1\.0: merged dev into prod/);
        assert.equal((await server.git(name, ['merge-base', '--is-ancestor', 'dev', 'prod']).then(() => true)), true);
        assert.equal((await server.git(name, ['cat-file', '-e', 'prod:harness/overlays/prod/kustomization.yaml']).then(() => true)), true);
      });
    }
  }
});

function deployment(name: string, image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  selector: { matchLabels: { app: ${name} } }\n  template:\n    metadata: { labels: { app: ${name} } }\n    spec:\n      containers:\n        - name: app\n          image: ${image}\n`;
}
