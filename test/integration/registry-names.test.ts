import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { packedWorld, type PackedWorld } from '../helpers/packed-world.ts';
import type { SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { RegistryClient } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';

/**
 * Enclave names a registry refuses, checked before load writes anything.
 * Each registry is a real Docker distribution behind the test token issuer,
 * whose grant policy answers as the registry's own token service does:
 * - Harbor grants nothing in a project that does not exist, so a push there
 *   is answered 401 "authentication required" (goharbor/harbor#890, #966:
 *   "you need to create the project first before pushing").
 * - GitLab grants nothing for an image path deeper than group/project plus
 *   two levels (GitLab docs, "Naming convention for your container images":
 *   up to three levels of image repository names).
 */
describe('enclave names registries refuse', () => {
  let world: PackedWorld;
  let bundle: string;
  let images: SyntheticImage[];

  before(async () => {
    world = await packedWorld({
      name: 'names',
      password: 'names test',
      images: {
        seed: 41,
        images: [
          { repository: 'library/nginx', tag: '1.25', layers: 1, layerSize: 5_000 },
          { repository: 'harness/gateway', tag: '2.0', layers: 1, layerSize: 5_000 },
          { repository: 'harness/tools/upgrader', tag: '1.0', layers: 1, layerSize: 5_000 },
        ],
      },
      manifests: {
        'upgrader.yaml':
          'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: upgrader\nspec:\n  template:\n    spec:\n      containers:\n        - name: upgrader\n          image: harness/tools/upgrader:1.0\n',
      },
      spec: 'name: harness\nversion: 1.0.0\nimages:\n  - nginx:1.25\n  - harness/gateway:2.0\n  - harness/tools/upgrader:1.0\nmanifests:\n  - path: ./deploy\n',
      bundleName: 'harness.tar',
    });
    ({ bundle, images } = world);
  });

  after(async () => {
    await world?.stop();
  });

  const load = (target: RegistryService, registry: string, extra: string[] = []): Promise<CliResult> =>
    airlock(
      ['load', bundle, '--key', world.pub, '--registry', registry, '--plain-http', '--registry-username', target.username!, '--registry-password-env', 'ENCLAVE_PW', ...extra],
      { env: { ENCLAVE_PW: target.password, GIT_PW: undefined } },
    );

  async function digestIn(target: RegistryService, repository: string, tag: string): Promise<string | undefined> {
    const transport = new HttpTransport({ proxy: {} });
    try {
      const client = new RegistryClient(target.host, transport, { plainHttp: true, credentials: () => ({ username: target.username!, password: target.password! }) });
      return (await client.resolve(repository, tag))?.digest;
    } finally {
      await transport.close();
    }
  }

  test('Harbor without the project: exit 4 before anything is written, naming the project to create', async () => {
    const projects = new Set(['library']);
    const target = await startRegistry({
      auth: 'token',
      tokenGrant: (user, scope) => (user !== undefined && projects.has(scope.name.split('/')[0]!) ? scope.actions : []),
    });
    try {
      const res = await load(target, target.host);
      assert.equal(res.code, 4, res.stderr);
      assert.match(res.stderr, /refuses pushes to 2 of 3 repositories; nothing was written/);
      assert.match(res.stderr, new RegExp(`${target.host}/harness/gateway: HTTP 401`));
      assert.match(res.stderr, /create the namespace harness in the registry \(a Harbor project/);
      // The probe asked for push scope (Quay creates repositories only then), and stored nothing.
      assert.ok(target.tokenRequests.some((r) => r.scopes.includes('repository:harness/gateway:pull,push')));
      assert.deepEqual(await target.requests(/^(PUT|PATCH) /), [], 'no blob, manifest or tag written');
      // The accepted repository's probe session, kept for its first blob, is cancelled when the load stops.
      assert.equal((await target.requests(/^DELETE \/v2\/library\/nginx\/blobs\/uploads\//)).length, 1, 'the kept upload session cancelled');
      assert.equal(await digestIn(target, 'library/nginx', '1.25'), undefined);

      projects.add('harness');
      const created = await load(target, target.host);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(await digestIn(target, 'harness/tools/upgrader', '1.0'), images[2]!.digest);
    } finally {
      await target.stop();
    }
  });

  test('GitLab depth: paths past group/project plus two levels are refused with --map-depth suggested; with it the push, the report and the git base agree', async () => {
    const target = await startRegistry({
      auth: 'token',
      tokenGrant: (user, scope) => (user !== undefined && scope.name.startsWith('group/project/') && scope.name.split('/').length <= 4 ? scope.actions : []),
    });
    const git: GitServer = await startGitServer();
    try {
      const refused = await load(target, `${target.host}/group/project`);
      assert.equal(refused.code, 4, refused.stderr);
      assert.match(refused.stderr, new RegExp(`${target.host}/group/project/harness/tools/upgrader: HTTP 401`));
      assert.match(refused.stderr, /only repository paths of more than 4 segments were refused/);
      assert.match(refused.stderr, /--map-depth 2/);
      assert.deepEqual(await target.requests(/^(PUT|PATCH) /), [], 'nothing written');

      await git.createRepo('apps', { files: { 'README.md': 'apps\n' } });
      const res = await airlock(
        [
          'load', bundle, '--key', world.pub, '--registry', `${target.host}/group/project`, '--plain-http', '--map-depth', '2',
          '--registry-username', target.username!, '--registry-password-env', 'ENCLAVE_PW',
          '--git', git.url('apps'), '--ca-file', git.caFile, '--git-username', git.username, '--git-password-env', 'GIT_PW', '--json',
        ],
        { env: { ENCLAVE_PW: target.password, GIT_PW: git.password } },
      );
      assert.equal(res.code, 0, res.stderr);
      const report = JSON.parse(res.stdout.trim().split('\n').pop()!) as { images: { target: string; status: string }[] };
      assert.deepEqual(report.images.map((i) => i.target).sort(), [
        `${target.host}/group/project/harness/gateway:2.0`,
        `${target.host}/group/project/harness/tools-upgrader:1.0`,
        `${target.host}/group/project/library/nginx:1.25`,
      ]);
      assert.equal(await digestIn(target, 'group/project/harness/tools-upgrader', '1.0'), images[2]!.digest);
      const kustomization = await git.git('apps', ['show', 'dev:harness/base/kustomization.yaml']);
      assert.match(kustomization, new RegExp(`newName: "?${target.host}/group/project/harness/tools-upgrader"?`));
      assert.match(kustomization, new RegExp(`digest: "?${images[2]!.digest}"?`));
    } finally {
      await git.stop();
      await target.stop();
    }
  });
});
