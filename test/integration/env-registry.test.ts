import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { createTestCA } from '../services/ca.ts';
import { startMutualTlsFront } from '../services/nginx.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { skopeoFlags } from '../services/skopeo.ts';
import { kubectl } from '../services/tools.ts';

/**
 * promote --env-registry: dev pins the enclave registry (plain HTTP); the
 * environments pull from a second docker-registry (TLS, Basic auth). The
 * images (and the approver's signature) are copied there by digest, the
 * airlock component maps the names, and kubectl kustomize of the overlay
 * renders only the environment registry's names with the customer's patch.
 */
const PASSWORD = 'env registry test';

describe('promote --env-registry', () => {
  let source: RegistryService;
  let enclave: RegistryService;
  let envRegistry: RegistryService;
  let server: GitServer;
  let work: string;
  let caFile: string;
  const indexes: BundleIndex[] = [];
  const env = () => ({ GIT_PW: server.password, ENV_PW: envRegistry.password, AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined });
  const gitArgs = () => ['--git', server.url('apps'), '--ca-file', caFile, '--git-username', server.username, '--git-password-env', 'GIT_PW'];
  const promote = (to: string, extra: string[] = []): Promise<CliResult> =>
    airlock(['promote', '--to', to, '--plain-http', ...gitArgs(), ...extra], { env: env() });
  const promoteToOwnRegistry = (to: string, prefix: string, extra: string[] = []): Promise<CliResult> =>
    promote(to, ['--env-registry', `${envRegistry.host}${prefix}`, '--env-registry-username', envRegistry.username!, '--env-registry-password-env', 'ENV_PW', '--jobs', '3', ...extra]);

  /** Pack release `version` (web on nginx:`nginxTag`, the manager on ng-manager:1.0) and load it to dev. */
  async function release(version: string, nginxTag: string): Promise<BundleIndex> {
    writeFileSync(join(work, 'deploy', 'web.yaml'), deployment('web', `nginx:${nginxTag}`));
    writeFileSync(join(work, 'airlock.yaml'), `name: harness\nversion: ${version}\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n`);
    const bundle = join(work, `harness-${version}.tar`);
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], { env: env() });
    assert.equal(packed.code, 0, packed.stderr);
    const loaded = await airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', ...gitArgs()], { env: env() });
    assert.equal(loaded.code, 0, loaded.stderr);
    const dir = mkdtempSync(join(work, 'index-'));
    await run('tar', ['-xf', bundle, '-C', dir, 'airlock.json']);
    return JSON.parse(readFileSync(join(dir, 'airlock.json'), 'utf8')) as BundleIndex;
  }

  async function checkout(branch: string): Promise<{ dir: string; git: (args: string[]) => Promise<unknown> }> {
    const dir = mkdtempSync(join(work, 'co-'));
    const url = new URL(server.url('apps'));
    url.username = server.username;
    url.password = server.password;
    await run('git', ['clone', '--quiet', '--branch', branch, url.toString(), dir], { env: { GIT_SSL_CAINFO: server.caFile } });
    return { dir, git: (args) => run('git', ['-C', dir, '-c', 'user.name=ops', '-c', 'user.email=ops@enclave.test', ...args], { env: { GIT_SSL_CAINFO: server.caFile } }) };
  }

  /** The digest `name` resolves to in the environment registry, as skopeo (TLS, Basic auth) reads it. */
  async function envDigest(name: string): Promise<string | undefined> {
    const r = await run('skopeo', ['inspect', '--format', '{{.Digest}}', ...skopeoFlags(envRegistry), `docker://${envRegistry.host}/${name}`], { allowFail: true });
    if (r.code !== 0) {
      assert.match(r.stderr, /manifest unknown|not found/i);
      return undefined;
    }
    return r.stdout.trim();
  }

  const digestIn = (index: BundleIndex, ref: string) => index.images.find((i) => i.ref === ref)!.digest;
  const hostPattern = (host: string) => host.replace(/\./g, '\\.');

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-envreg-'));
    [source, enclave, envRegistry, server] = await Promise.all([startRegistry(), startRegistry(), startRegistry({ tls: true, auth: 'basic' }), startGitServer()]);
    caFile = join(work, 'ca.pem');
    writeFileSync(caFile, readFileSync(server.caFile, 'utf8') + readFileSync(envRegistry.caFile!, 'utf8'));
    // Two images sharing a base layer (mounted, not uploaded twice, in the environment registry), and nginx 1.26 for release 2.
    await pushImages(
      source.url,
      await generateImages({
        seed: 31,
        images: [
          { repository: 'library/nginx', tag: '1.25', layers: 2, sharedBaseLayers: 1, layerSize: 20_000 },
          { repository: 'harness/ng-manager', tag: '1.0', layers: 2, sharedBaseLayers: 1, layerSize: 20_000 },
          { repository: 'library/nginx', tag: '1.26', layers: 2, sharedBaseLayers: 1, layerSize: 30_000 },
        ],
      }),
    );
    for (const [name, pair] of [['airlock', generateKeyPair(PASSWORD)], ['approver', generateKeyPair(PASSWORD)]] as const) {
      writeFileSync(join(work, `${name}.key`), pair.privateKeyPem);
      writeFileSync(join(work, `${name}.pub`), pair.publicKeyPem);
    }
    mkdirSync(join(work, 'deploy'));
    writeFileSync(join(work, 'deploy', 'manager.yaml'), deployment('ng-manager', 'docker.io/harness/ng-manager:1.0'));
    await server.createRepo('apps', { files: { 'README.md': 'apps\n' } });
    indexes.push(await release('1.0.0', '1.25'));
    // The approver signs ng-manager in the enclave registry: the signature must follow it.
    const approved = await airlock(['approve', '--registry', enclave.host, '--plain-http', '--key', join(work, 'approver.key'), ...gitArgs(), '--image', 'harness/ng-manager'], { env: env() });
    assert.equal(approved.code, 0, approved.stderr);
  });

  after(async () => {
    await Promise.all([source?.stop(), enclave?.stop(), envRegistry?.stop(), server?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  test('a new environment: every image copied by digest (shared layer mounted, signature tag along), the starter overlay lists the component, kustomize renders only the environment registry', async () => {
    const res = await promoteToOwnRegistry('staging', '/staging', ['--json']);
    assert.equal(res.code, 0, res.stderr);
    const result = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { outcome: string; envRegistry: Record<string, number | string> };
    assert.equal(result.outcome, 'created');
    assert.equal(result.envRegistry.copied, 2);
    assert.equal(result.envRegistry.signatures, 1, 'the approver signature of ng-manager');
    assert.equal(result.envRegistry.blobsMounted, 1, 'the shared base layer is mounted into the second repository');

    const index = indexes[0]!;
    for (const [repo, ref] of [['library/nginx:1.25', 'docker.io/library/nginx:1.25'], ['harness/ng-manager:1.0', 'docker.io/harness/ng-manager:1.0']] as const) {
      assert.equal(await envDigest(`staging/${repo}`), digestIn(index, ref), `${repo} in the environment registry has the same digest`);
    }
    const managerDigest = digestIn(index, 'docker.io/harness/ng-manager:1.0');
    const sigTag = `${managerDigest.replace(':', '-')}.sig`;
    const sigInEnclave = await run('skopeo', ['inspect', '--format', '{{.Digest}}', '--tls-verify=false', `docker://${enclave.host}/harness/ng-manager:${sigTag}`]);
    assert.equal(await envDigest(`staging/harness/ng-manager:${sigTag}`), sigInEnclave.stdout.trim(), 'the signature manifest, byte for byte');

    const { dir } = await checkout('staging');
    const overlay = readFileSync(join(dir, 'harness/overlays/staging/kustomization.yaml'), 'utf8');
    assert.match(overlay, /\ncomponents:\n {2}- airlock\n/);
    const component = readFileSync(join(dir, 'harness/overlays/staging/airlock/kustomization.yaml'), 'utf8');
    assert.match(component, /apiVersion: kustomize\.config\.k8s\.io\/v1alpha1\nkind: Component\n/);
    const rendered = (await run(kubectl(), ['kustomize', join(dir, 'harness/overlays/staging')])).stdout;
    const images = [...rendered.matchAll(/image: (\S+)/g)].map((m) => m[1]!).sort();
    assert.deepEqual(images, [
      `${envRegistry.host}/staging/harness/ng-manager@${managerDigest}`,
      `${envRegistry.host}/staging/library/nginx@${digestIn(index, 'docker.io/library/nginx:1.25')}`,
    ]);
  });

  test('an existing environment whose overlay lacks the component: exit 2 with the line to add, nothing copied; once added, a release is copied, mapped and merged with the customer patch intact; a second promote copies nothing', async () => {
    const created = await promote('prod');
    assert.equal(created.code, 0, created.stderr);
    const prod = await checkout('prod');
    const overlayFile = join(prod.dir, 'harness/overlays/prod/kustomization.yaml');
    writeFileSync(
      overlayFile,
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\npatches:\n  - target: { kind: Deployment, name: web }\n    patch: |-\n      - op: add\n        path: /spec/replicas\n        value: 3\n',
    );
    await prod.git(['commit', '--quiet', '-am', 'prod: three replicas of web']);
    await prod.git(['push', '--quiet', 'origin', 'prod']);
    const prodTip = (await server.git('apps', ['rev-parse', 'prod'])).trim();

    const refused = await promoteToOwnRegistry('prod', '');
    assert.equal(refused.code, 2, refused.stderr);
    assert.ok(refused.stderr.includes('harness/overlays/prod/kustomization.yaml on prod does not list the airlock component') && refused.stderr.includes('\ncomponents: [airlock]'), refused.stderr);
    assert.equal((await server.git('apps', ['rev-parse', 'prod'])).trim(), prodTip, 'prod unchanged');
    assert.equal(await envDigest('library/nginx:1.25'), undefined, 'nothing copied');

    // The customer adds the line; the overlay file stays theirs.
    writeFileSync(overlayFile, readFileSync(overlayFile, 'utf8') + 'components:\n  - airlock\n');
    await prod.git(['commit', '--quiet', '-am', 'prod: pull from its own registry']);
    await prod.git(['push', '--quiet', 'origin', 'prod']);
    const customerOverlay = readFileSync(overlayFile, 'utf8');

    const index = await release('1.1.0', '1.26');
    indexes.push(index);
    // For review first: the images are copied, the review branch carries the component, prod stays.
    const beforeReview = (await server.git('apps', ['rev-parse', 'prod'])).trim();
    const review = await promoteToOwnRegistry('prod', '', ['--review']);
    assert.equal(review.code, 0, review.stderr);
    assert.match(review.stdout, new RegExp(`env registry ${hostPattern(envRegistry.host)}: 2 images: 2 copied, 0 already there; 1 signature tag set \\(`));
    assert.equal((await server.git('apps', ['rev-parse', 'prod'])).trim(), beforeReview, '--review leaves prod alone');
    assert.match(await server.git('apps', ['show', 'airlock/promote-prod-1.1.0:harness/overlays/prod/airlock/kustomization.yaml']), new RegExp(`newName: ${hostPattern(envRegistry.host)}/library/nginx`));
    assert.equal(await server.git('apps', ['show', 'airlock/promote-prod-1.1.0:harness/overlays/prod/kustomization.yaml']), customerOverlay);

    const promoted = await promoteToOwnRegistry('prod', '');
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, new RegExp(`env registry ${hostPattern(envRegistry.host)}: 2 images, all already there; nothing copied`));
    assert.match(promoted.stdout, /promote harness 1\.1\.0: merged dev into prod/);
    const nginx = digestIn(index, 'docker.io/library/nginx:1.26');
    const manager = digestIn(index, 'docker.io/harness/ng-manager:1.0');
    assert.equal(await envDigest('library/nginx:1.26'), nginx);
    assert.equal(await envDigest('harness/ng-manager:1.0'), manager);

    const after = await checkout('prod');
    assert.ok(existsSync(join(after.dir, 'harness/airlock/approvals/1.0.0')), "loading 1.1.0 kept the approvals of 1.0.0 (approve's records), and prod received them");
    assert.equal(readFileSync(join(after.dir, 'harness/overlays/prod/kustomization.yaml'), 'utf8'), customerOverlay, 'the customer overlay, byte for byte');
    assert.equal((await server.git('apps', ['log', '-1', '--format=%s', 'prod'])).trim(), 'airlock: promote harness 1.1.0 to prod', 'one promote commit holds the merge and the component');
    assert.match(await server.git('apps', ['show', '--stat', '--format=', 'prod']), /harness\/overlays\/prod\/airlock\/kustomization\.yaml/);
    const rendered = (await run(kubectl(), ['kustomize', join(after.dir, 'harness/overlays/prod')])).stdout;
    const images = [...rendered.matchAll(/image: (\S+)/g)].map((m) => m[1]!).sort();
    assert.deepEqual(images, [`${envRegistry.host}/harness/ng-manager@${manager}`, `${envRegistry.host}/library/nginx@${nginx}`]);
    assert.match(rendered, /replicas: 3/, 'the customer patch still applies');

    const tip = (await server.git('apps', ['rev-parse', 'prod'])).trim();
    const again = await promoteToOwnRegistry('prod', '', ['--json']);
    assert.equal(again.code, 0, again.stderr);
    const second = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { outcome: string; envRegistry: Record<string, number> };
    assert.equal(second.outcome, 'up to date');
    assert.deepEqual([second.envRegistry.copied, second.envRegistry.present, second.envRegistry.signatures, second.envRegistry.blobsUploaded], [0, 2, 0, 0], 'a second promote copies nothing');
    assert.equal((await server.git('apps', ['rev-parse', 'prod'])).trim(), tip);

    // Another registry for the same release: only the component changes, in a commit of its own.
    const moved = await promoteToOwnRegistry('prod', '/mirror2');
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, new RegExp(`prod already has dev; its airlock component now maps the images to ${hostPattern(envRegistry.host)}/mirror2`));
    assert.deepEqual((await server.git('apps', ['diff', '--name-only', tip, 'prod'])).trim().split('\n'), ['harness/overlays/prod/airlock/kustomization.yaml']);
    const remapped = await checkout('prod');
    const images2 = [...(await run(kubectl(), ['kustomize', join(remapped.dir, 'harness/overlays/prod')])).stdout.matchAll(/image: (\S+)/g)].map((m) => m[1]!).sort();
    assert.deepEqual(images2, [`${envRegistry.host}/mirror2/harness/ng-manager@${manager}`, `${envRegistry.host}/mirror2/library/nginx@${nginx}`]);
  });

  test('a copy that fails commits nothing: wrong environment registry credentials are exit 4', async () => {
    const tip = (await server.git('apps', ['rev-parse', 'prod'])).trim();
    const res = await airlock(
      ['promote', '--to', 'prod', '--plain-http', ...gitArgs(), '--env-registry', `${envRegistry.host}/other`, '--env-registry-username', envRegistry.username!, '--env-registry-password-env', 'ENV_PW'],
      { env: { ...env(), ENV_PW: 'not the password' } },
    );
    assert.equal(res.code, 4, res.stderr);
    assert.ok(!res.stderr.includes('not the password'), 'no secret printed');
    assert.equal((await server.git('apps', ['rev-parse', 'prod'])).trim(), tip, 'nothing committed');
  });

  test('an environment registry behind mutual TLS: refused without a client certificate (exit 4, nothing committed), copied with --env-registry-client-cert / --env-registry-client-key', async () => {
    const pki = await createTestCA(join(work, 'mtls-pki'));
    const certificate = await pki.issue('promote', [], { client: true });
    const behind = await startRegistry();
    mkdirSync(join(work, 'mtls-www'));
    const front = await startMutualTlsFront({ root: join(work, 'mtls-www'), ca: pki, upstreamPort: behind.port });
    const cas = join(work, 'mtls-ca.pem');
    writeFileSync(cas, readFileSync(caFile, 'utf8') + readFileSync(pki.caCert, 'utf8'));
    const toFront = (extra: string[]) =>
      airlock(
        ['promote', '--to', 'secured', '--plain-http', '--git', server.url('apps'), '--ca-file', cas, '--git-username', server.username, '--git-password-env', 'GIT_PW', '--env-registry', front.host, ...extra],
        { env: { ...env(), AIRLOCK_CERTS_D: join(work, 'no-certs.d') } },
      );
    try {
      const refused = await toFront([]);
      assert.equal(refused.code, 4, refused.stderr);
      assert.match(refused.stderr, /client certificate/);
      assert.equal((await server.git('apps', ['branch', '--list', 'secured'])).trim(), '', 'nothing committed');

      const half = await toFront(['--env-registry-client-cert', certificate.cert]);
      assert.equal(half.code, 2, half.stderr);
      assert.match(half.stderr, /--env-registry-client-cert and --env-registry-client-key go together/);

      const copied = await toFront(['--env-registry-client-cert', certificate.cert, '--env-registry-client-key', certificate.key, '--json']);
      assert.equal(copied.code, 0, copied.stderr);
      const result = JSON.parse(copied.stdout.trim().split('\n').at(-1)!) as { outcome: string; envRegistry: Record<string, number> };
      assert.equal(result.outcome, 'created');
      assert.equal(result.envRegistry.copied, 2);
      const tags = await fetch(`${behind.url}/v2/library/nginx/tags/list`).then((r) => r.json() as Promise<{ tags: string[] }>);
      assert.ok(tags.tags.length > 0, 'nginx is in the registry behind the front');
    } finally {
      await front.stop();
      await behind.stop();
    }
  });
});

function deployment(name: string, image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  selector: { matchLabels: { app: ${name} } }\n  template:\n    metadata: { labels: { app: ${name} } }\n    spec:\n      containers:\n        - name: app\n          image: ${image}\n`;
}
