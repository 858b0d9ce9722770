import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { skopeoFlags } from '../services/skopeo.ts';

/**
 * airlock approve against docker-registry and git behind nginx: a scan
 * command that rejects one image; the others get cosign signatures that
 * openssl verifies over the payload blob, with payloads as cosign's spec
 * writes them; the outcome is one commit on dev.
 */
const PASSWORD = 'approve test';
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';

describe('airlock approve', () => {
  let source: RegistryService;
  let enclave: RegistryService;
  let server: GitServer;
  let work: string;
  let index: BundleIndex;
  const digestOf = (ref: string) => index.images.find((i) => i.ref === ref)!.digest;
  const env = () => ({ GIT_PW: server.password, AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined });
  const gitArgs = () => ['--git', server.url('apps'), '--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', 'GIT_PW'];
  const approve = (extra: string[]) =>
    airlock(['approve', '--registry', enclave.host, '--plain-http', '--key', join(work, 'approver.key'), ...gitArgs(), ...extra], { env: env() });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-approve-'));
    [source, enclave, server] = await Promise.all([startRegistry(), startRegistry(), startGitServer()]);
    const images = await generateImages({
      seed: 13,
      images: [
        { repository: 'library/nginx', tag: '1.25', layers: 1, layerSize: 10_000 },
        { repository: 'harness/ng-manager', tag: '1.0', layers: 1, layerSize: 10_000 },
        { repository: 'harness/bad', tag: '1.0', layers: 1, layerSize: 10_000 },
      ],
    });
    await pushImages(source.url, images);
    for (const [name, pair] of [['airlock', generateKeyPair(PASSWORD)], ['approver', generateKeyPair(PASSWORD)]] as const) {
      writeFileSync(join(work, `${name}.key`), pair.privateKeyPem);
      writeFileSync(join(work, `${name}.pub`), pair.publicKeyPem);
    }
    mkdirSync(join(work, 'deploy'));
    for (const [name, image] of [['web', 'nginx:1.25'], ['manager', 'docker.io/harness/ng-manager:1.0'], ['bad', 'harness/bad:1.0']]) {
      writeFileSync(join(work, 'deploy', `${name}.yaml`), deployment(name!, image!));
    }
    writeFileSync(join(work, 'airlock.yaml'), 'name: harness\nversion: 1.0.0\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n');
    const bundle = join(work, 'harness.tar');
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], { env: env() });
    assert.equal(packed.code, 0, packed.stderr);
    await run('tar', ['-xf', bundle, '-C', work, 'airlock.json']);
    index = JSON.parse((await run('cat', [join(work, 'airlock.json')])).stdout) as BundleIndex;
    await server.createRepo('apps', { files: { 'README.md': 'apps\n' } });
    const loaded = await airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', enclave.host, '--plain-http', ...gitArgs()], { env: env() });
    assert.equal(loaded.code, 0, loaded.stderr);
    writeFileSync(join(work, 'scan.sh'), 'echo "scanning $1 ($AIRLOCK_IMAGE)"\necho "password: ${AIRLOCK_PASSWORD:-none}"\ncase "$1" in *harness/bad@*) echo "CVE-2099-0001 critical" >&2; exit 3;; esac\necho clean\n');
  });

  after(async () => {
    await Promise.all([source?.stop(), enclave?.stop(), server?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  /** The .sig manifest of repo@digest as skopeo reads it, or undefined when there is none. */
  async function signatureManifest(repo: string, digest: string): Promise<{ layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[] } | undefined> {
    const r = await run('skopeo', ['inspect', '--raw', ...skopeoFlags(enclave), `docker://${enclave.host}/${repo}:${digest.replace(':', '-')}.sig`], { allowFail: true });
    if (r.code !== 0) {
      assert.match(r.stderr, /manifest unknown|not found/i);
      return undefined;
    }
    return JSON.parse(r.stdout) as never;
  }

  /** Every layer's signature checked by openssl over the payload blob's bytes (fetched by plain HTTP GET); the payloads parsed. */
  async function verifiedPayloads(repo: string, digest: string): Promise<unknown[]> {
    const manifest = await signatureManifest(repo, digest);
    assert.ok(manifest, `${repo}@${digest} has a .sig manifest`);
    const out: unknown[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      assert.equal(layer.mediaType, SIMPLE_SIGNING);
      const res = await fetch(`${enclave.url}/v2/${repo}/blobs/${layer.digest}`);
      assert.equal(res.status, 200);
      const payload = Buffer.from(await res.arrayBuffer());
      assert.equal(`sha256:${createHash('sha256').update(payload).digest('hex')}`, layer.digest);
      const dir = mkdtempSync(join(work, 'sig-'));
      writeFileSync(join(dir, 'payload'), payload);
      writeFileSync(join(dir, 'sig'), Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64'));
      const v = await run('openssl', ['dgst', '-sha256', '-verify', join(work, 'approver.pub'), '-signature', join(dir, 'sig'), join(dir, 'payload')], { allowFail: true });
      assert.equal(v.stdout.trim(), 'Verified OK', `layer ${i} of ${repo}: ${v.stdout}${v.stderr}`);
      out.push(JSON.parse(payload.toString('utf8')));
    }
    return out;
  }

  test('a scan command that rejects one image: exit 5 naming it, that image unsigned, the others signed as cosign signs; one commit records all three', async () => {
    const res = await approve(['--scan-command', `sh ${join(work, 'scan.sh')}`]);
    const bad = `${enclave.host}/harness/bad@${digestOf('docker.io/harness/bad:1.0')}`;
    assert.equal(res.code, 5, res.stderr);
    assert.ok(res.stderr.includes(`1 of 3 images rejected by the scan command`) && res.stderr.includes(bad), res.stderr);

    assert.equal(await signatureManifest('harness/bad', digestOf('docker.io/harness/bad:1.0')), undefined, 'the rejected image is unsigned');
    for (const [repo, ref] of [['library/nginx', 'docker.io/library/nginx:1.25'], ['harness/ng-manager', 'docker.io/harness/ng-manager:1.0']]) {
      const payloads = await verifiedPayloads(repo!, digestOf(ref!));
      assert.deepEqual(payloads, [
        {
          critical: { identity: { 'docker-reference': `${enclave.host}/${repo}` }, image: { 'docker-manifest-digest': digestOf(ref!) }, type: 'cosign container image signature' },
          optional: null,
        },
      ]);
    }

    assert.equal((await server.git('apps', ['log', '-1', '--format=%s', 'dev'])).trim(), 'airlock: approve harness 1.0.0');
    const files = (await server.git('apps', ['ls-tree', '-r', '--name-only', 'dev', 'harness/airlock/approvals/1.0.0'])).trim().split('\n');
    const recordFile = files.find((f) => f.endsWith('/approvals.json'))!;
    const record = JSON.parse(await server.git('apps', ['show', `dev:${recordFile}`])) as {
      approver: string;
      approvals: { image: string; outcome: string; scan: { exit: number; output: string; outputDigest: string }; signature?: { tag: string } }[];
    };
    assert.match(record.approver, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(
      record.approvals.map((a) => [a.image.split('@')[0], a.outcome, a.scan.exit]),
      [
        [`${enclave.host}/harness/bad`, 'rejected', 3],
        [`${enclave.host}/harness/ng-manager`, 'accepted', 0],
        [`${enclave.host}/library/nginx`, 'accepted', 0],
      ],
    );
    const rejected = record.approvals[0]!;
    assert.equal(rejected.signature, undefined);
    const output = await server.git('apps', ['show', `dev:${recordFile.replace(/approvals\.json$/, rejected.scan.output)}`]);
    assert.ok(output.includes(`scanning ${bad} (${bad})`) && output.includes('CVE-2099-0001 critical'), output);
    assert.ok(output.includes('password: none'), 'the key password is not passed to the scanner');
    assert.equal(rejected.scan.outputDigest, `sha256:${createHash('sha256').update(output).digest('hex')}`);
  });

  test('approving again appends a signature layer; an image the base does not pin is exit 2', async () => {
    const digest = digestOf('docker.io/harness/ng-manager:1.0');
    const res = await approve(['--image', 'harness/ng-manager', '--json']);
    assert.equal(res.code, 0, res.stderr);
    const payloads = await verifiedPayloads('harness/ng-manager', digest);
    assert.equal(payloads.length, 2, 'two approvals, two layers');
    assert.deepEqual(payloads[0], payloads[1]);
    assert.equal(await signatureManifest('harness/bad', digestOf('docker.io/harness/bad:1.0')), undefined);

    const tip = await server.git('apps', ['rev-parse', 'dev']);
    const unknown = await approve(['--image', 'harness/nothing']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /--image harness\/nothing: not pinned by the base/);
    assert.equal(await server.git('apps', ['rev-parse', 'dev']), tip, 'nothing committed');
  });

  test('promote --require-approval refuses while an image lacks a signature by that key, naming it; proceeds once it is approved', async () => {
    const promote = (pub: string) =>
      airlock(['promote', '--to', 'prod', '--require-approval', join(work, pub), '--plain-http', ...gitArgs()], { env: env() });
    const bad = `${enclave.host}/harness/bad@${digestOf('docker.io/harness/bad:1.0')}`;
    const refused = await promote('approver.pub');
    assert.equal(refused.code, 5, refused.stderr);
    assert.ok(refused.stderr.includes(`1 of 3 images have no valid signature by the approver key`) && refused.stderr.includes(bad), refused.stderr);
    await assert.rejects(server.git('apps', ['rev-parse', '--verify', 'prod']), 'prod was not created');

    // Signatures by another key do not count.
    const otherKey = await promote('airlock.pub');
    assert.equal(otherKey.code, 5, otherKey.stderr);
    assert.match(otherKey.stderr, /3 of 3 images have no valid signature/);

    const approved = await approve(['--image', `${enclave.host}/harness/bad`]);
    assert.equal(approved.code, 0, approved.stderr);
    const promoted = await promote('approver.pub');
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /created prod from dev/);
  });
});

function deployment(name: string, image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  selector: { matchLabels: { app: ${name} } }\n  template:\n    metadata: { labels: { app: ${name} } }\n    spec:\n      containers:\n        - name: app\n          image: ${image}\n`;
}
