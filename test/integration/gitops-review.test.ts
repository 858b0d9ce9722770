import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { generateKeyPair, keyFingerprint } from '../../shared/sign/keys.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startSshd, type SshServer } from '../services/sshd.ts';
import { resultOf } from '../json-lines.ts';

/**
 * promote --review --review-style gitlab|agit against git-http-backend (HTTPS)
 * and OpenSSH: repositories with receive.advertisePushOptions=true and a
 * pre-receive hook that records the refs and push options it receives, which
 * is where GitLab and Gitea read them. The environment branch never moves.
 */
const PASSWORD = 'gitops review test';
const ZERO = '0'.repeat(40);
const TITLE = 'airlock: promote harness 1.1.0 to prod';

describe('promote --review with push options', () => {
  let server: GitServer;
  let sshd: SshServer;
  let work: string;
  const bundles: string[] = [];
  let fingerprint: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-gitops-review-'));
    [server, sshd] = await Promise.all([startGitServer(), startSshd()]);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem);
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    fingerprint = keyFingerprint(createPublicKey(pair.publicKeyPem));
    mkdirSync(join(work, 'deploy'));
    // Releases without images: the review push is about git, not the registry.
    for (const version of ['1.0.0', '1.1.0']) {
      writeFileSync(join(work, 'deploy', 'settings.yaml'), `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings }\ndata: { release: "${version}" }\n`);
      writeFileSync(join(work, 'airlock.yaml'), `name: harness\nversion: ${version}\nmanifests:\n  - path: ./deploy\n`);
      const out = join(work, `harness-${version}.tar`);
      const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', out, '--key', join(work, 'airlock.key')], {
        env: { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined },
      });
      assert.equal(packed.code, 0, packed.stderr);
      bundles.push(out);
    }
  });

  after(async () => {
    await Promise.all([server?.stop(), sshd?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  /** A repository with release 1.0.0 on dev and prod, and 1.1.0 loaded on dev: ready for review. */
  async function ready(name: string, transport: 'https' | 'ssh') {
    const bare = await server.createRepo(name, { pushOptions: true, files: { 'README.md': 'apps\n' } });
    await server.recordPushes(name);
    const remote =
      transport === 'https'
        ? ['--git', server.url(name), '--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', 'GIT_PW']
        : ['--git', sshd.url(bare), '--ssh-key', sshd.clientKey, '--known-hosts', sshd.knownHosts];
    const env = { GIT_PW: server.password };
    const cli = (args: string[]): Promise<CliResult> => airlock([...args, ...remote], { env });
    const load = (bundle: string) => cli(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', '127.0.0.1:9', '--plain-http', '--skip-images']);
    for (const step of [() => load(bundles[0]!), () => cli(['promote', '--to', 'prod']), () => load(bundles[1]!)]) {
      const r = await step();
      assert.equal(r.code, 0, r.stderr);
    }
    const rev = async (ref: string) => (await server.git(name, ['rev-parse', ref])).trim();
    return { cli, rev, prod: await rev('prod'), dev: await rev('dev'), pushed: (await server.pushes(name)).length };
  }

  for (const transport of ['https', 'ssh'] as const) {
    test(`${transport}: gitlab pushes the review branch with merge request options; agit pushes refs/for/prod with a topic; prod stays`, async () => {
      const name = `review-${transport}`;
      const { cli, rev, prod, dev, pushed } = await ready(name, transport);

      const gitlab = await cli(['promote', '--to', 'prod', '--review', '--review-style', 'gitlab']);
      assert.equal(gitlab.code, 0, gitlab.stderr);
      assert.match(gitlab.stdout, /pushed airlock\/promote-prod-1\.1\.0 .*with merge request options/);
      const review = await rev('airlock/promote-prod-1.1.0');
      let pushes = await server.pushes(name);
      assert.equal(pushes.length, pushed + 1);
      assert.deepEqual(pushes.at(-1)!.refs, [{ old: ZERO, new: review, ref: 'refs/heads/airlock/promote-prod-1.1.0' }]);
      const options = pushes.at(-1)!.options;
      assert.deepEqual(options.slice(0, 3), ['merge_request.create', 'merge_request.target=prod', `merge_request.title=${TITLE}`]);
      assert.match(options[3]!, /^merge_request\.description=\S.*harness 1\.1\.0/);
      // One line; GitLab turns the literal \n back into line breaks. The text names what changed, when the bundle was made and by which key.
      assert.ok(options[3]!.includes('\\nVendor files under harness/base: 0 added, 1 changed, 0 removed.\\n- changed deploy/settings.yaml'), options[3]);
      assert.ok(options[3]!.includes(`with the key ${fingerprint} (SHA-256 of the public key's DER)`), options[3]);
      assert.match(options[3]!, /\\nBundle created \d{4}-\d\d-\d\dT/);
      assert.deepEqual(options.slice(4), ['merge_request.remove_source_branch']);
      // The review is dev merged into prod: both parents, prod's overlay kept; the objects arrived whole.
      assert.equal(await rev(`${review}^1`), prod);
      assert.equal(await rev(`${review}^2`), dev);
      await server.git(name, ['cat-file', '-e', `${review}:harness/overlays/prod/kustomization.yaml`]);
      assert.match(await server.git(name, ['show', `${review}:harness/base/deploy/settings.yaml`]), /release: "1\.1\.0"/);
      await server.git(name, ['fsck', '--no-dangling']);
      assert.equal(await rev('prod'), prod, 'prod did not move');

      const agit = await cli(['promote', '--to', 'prod', '--review', '--review-style', 'agit', '--json']);
      assert.equal(agit.code, 0, agit.stderr);
      const event = resultOf<{ outcome: string; review: { style: string; ref: string; title: string } }>(agit.stdout, 'promote');
      assert.deepEqual([event.outcome, event.review], ['review pushed', { style: 'agit', ref: 'refs/for/prod', title: TITLE }]);
      pushes = await server.pushes(name);
      assert.equal(pushes.length, pushed + 2);
      assert.deepEqual(
        pushes.at(-1)!.refs.map((r) => [r.old, r.ref]),
        [[ZERO, 'refs/for/prod']],
      );
      const [topic, title, description, ...rest] = pushes.at(-1)!.options;
      assert.deepEqual([topic, title, rest], ['topic=airlock-promote-prod-1.1.0', `title=${TITLE}`, []]);
      assert.match(description!, /^description=\S.* \| Images: 0 added, 0 removed, 0 changed\. \| .* \| - changed deploy\/settings\.yaml$/);
      assert.equal(await rev('prod'), prod, 'prod did not move');

      // Again: the review branch is updated in place (the server's old tip named), which updates the merge request.
      const again = await cli(['promote', '--to', 'prod', '--review', '--review-style', 'gitlab']);
      assert.equal(again.code, 0, again.stderr);
      pushes = await server.pushes(name);
      assert.deepEqual(pushes.at(-1)!.refs, [{ old: review, new: await rev('airlock/promote-prod-1.1.0'), ref: 'refs/heads/airlock/promote-prod-1.1.0' }]);
      assert.equal(await rev('prod'), prod);

      // A direct promote: the merge commit's message is the review text, and --json carries it.
      const direct = await cli(['promote', '--to', 'prod', '--json']);
      assert.equal(direct.code, 0, direct.stderr);
      const merged = resultOf<{ outcome: string; title: string; description: string; changes: { vendorFiles: unknown; from: unknown } }>(direct.stdout, 'promote');
      assert.equal(merged.outcome, 'merged');
      assert.deepEqual(merged.changes.vendorFiles, { added: [], changed: ['deploy/settings.yaml'], removed: [] });
      assert.deepEqual(merged.changes.from, { name: 'harness', version: '1.0.0' });
      assert.equal(await server.git(name, ['log', '-1', '--format=%B', 'prod']), `${TITLE}\n\n${merged.description}\n\n`);
    });
  }

  test('a server without push options is exit 2 naming it and the setting; a hook that refuses is exit 5 with its message; --review-style needs --review', async () => {
    const name = 'review-refusals';
    const { cli, rev, prod, pushed } = await ready(name, 'https');
    await server.git(name, ['config', 'receive.advertisePushOptions', 'false']);
    for (const style of ['gitlab', 'agit']) {
      const res = await cli(['promote', '--to', 'prod', '--review', '--review-style', style]);
      assert.equal(res.code, 2, res.stderr);
      assert.ok(res.stderr.includes(`git server ${server.url(name)} does not accept push options`), res.stderr);
      assert.match(res.stderr, /receive\.advertisePushOptions true/);
    }
    assert.equal((await server.pushes(name)).length, pushed, 'nothing was pushed');

    await server.git(name, ['config', 'receive.advertisePushOptions', 'true']);
    await server.protect(name, ['airlock/promote-prod-1.1.0']);
    const refused = await cli(['promote', '--to', 'prod', '--review', '--review-style', 'gitlab']);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /refused the push to refs\/heads\/airlock\/promote-prod-1\.1\.0: .*branch airlock\/promote-prod-1\.1\.0 is protected/);
    await assert.rejects(rev('airlock/promote-prod-1.1.0'));

    const alone = await cli(['promote', '--to', 'prod', '--review-style', 'agit']);
    assert.equal(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /--review-style agit goes with --review/);
    assert.equal(await rev('prod'), prod);
  });
});
