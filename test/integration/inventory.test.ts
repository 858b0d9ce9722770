import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readInventory, type Inventory } from '../../shared/inventory/format.ts';
import { resultOf } from '../json-lines.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages, type SyntheticImage } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { httpRequest } from '../services/http.ts';
import { startQuirkProxy, type QuirkProxy } from '../services/quirkProxy.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { skopeoFlags } from '../services/skopeo.ts';

/**
 * airlock inventory against real registries: the catalog walk lists exactly
 * what was pushed (several repositories, tags, a multi-arch index, shared
 * layers), paging with small pages, a registry refusing the catalog, and
 * --from-git after a real load --git into a registry whose token server
 * grants no catalog access.
 */

/** What an inventory must say about these images (all of them under the prefix). */
function expected(images: SyntheticImage[], extraTags: Record<string, Record<string, string>> = {}) {
  const repositories = [...new Set(images.map((i) => i.repository))].sort();
  const tags: Record<string, Record<string, string>> = {};
  const manifests = new Set<string>();
  const blobs: Record<string, number> = {};
  for (const image of images) {
    (tags[image.repository] ??= {})[image.tag] = image.digest;
    manifests.add(image.digest);
    for (const child of image.children ?? []) manifests.add(child.digest);
    for (const blob of image.blobs) blobs[blob.digest] = blob.size;
  }
  for (const [repository, more] of Object.entries(extraTags)) Object.assign((tags[repository] ??= {}), more);
  return { repositories, tags, manifests: [...manifests].sort(), blobs };
}

/** The inventory reduced to what can be compared, with each holder checked against the images it names. */
function actual(inv: Inventory, images: SyntheticImage[]) {
  for (const [digest, [, holder]] of Object.entries(inv.blobs)) {
    const repository = inv.repositories[holder]!;
    assert.ok(
      images.some((i) => i.repository === repository && i.blobs.some((b) => b.digest === digest)),
      `blob ${digest} is held by ${repository}`,
    );
  }
  for (const [digest, holder] of Object.entries(inv.manifests)) {
    const repository = inv.repositories[holder]!;
    assert.ok(
      images.some((i) => i.repository === repository && (i.digest === digest || (i.children ?? []).some((c) => c.digest === digest))),
      `manifest ${digest} is held by ${repository}`,
    );
  }
  return {
    repositories: inv.repositories,
    tags: inv.tags,
    manifests: Object.keys(inv.manifests).sort(),
    blobs: Object.fromEntries(Object.entries(inv.blobs).map(([d, [size]]) => [d, size])),
  };
}

describe('airlock inventory: the catalog walk', () => {
  let registry: RegistryService;
  let work: string;
  let inside: SyntheticImage[];
  let nginx: SyntheticImage;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-inventory-'));
    registry = await startRegistry();
    const images = await generateImages({
      seed: 14,
      images: [
        { repository: 'apps/harness/ng-manager', tag: '1.0', layers: 3, layerSize: 4000, sharedBaseLayers: 2 },
        { repository: 'apps/harness/ng-manager', tag: '1.1', layers: 3, layerSize: 4000, sharedBaseLayers: 2 },
        { repository: 'apps/harness/ng-manager', tag: '1.2', layers: 3, layerSize: 4000, sharedBaseLayers: 2 },
        { repository: 'apps/harness/pipeline', tag: '2.0', layers: 3, layerSize: 4000, sharedBaseLayers: 2 },
        { repository: 'apps/library/nginx', tag: '1.27', layers: 2, layerSize: 4000, sharedBaseLayers: 1, platforms: ['linux/amd64', 'linux/arm64/v8'] },
        { repository: 'apps/tools/legacy', tag: 'v1', layers: 2, layerSize: 4000, format: 'docker' },
        { repository: 'apps-old/x', tag: '1', layers: 1, layerSize: 1000 },
        { repository: 'other/tool', tag: '1', layers: 2, layerSize: 1000, sharedBaseLayers: 1 },
      ],
    });
    await pushImages(registry.url, images);
    inside = images.filter((i) => i.repository.startsWith('apps/'));
    nginx = inside.find((i) => i.repository === 'apps/library/nginx')!;
    // A second tag on the same index: its manifests are read once.
    const put = await httpRequest(`${registry.url}/v2/apps/library/nginx/manifests/latest`, {
      method: 'PUT',
      headers: { 'content-type': nginx.mediaType },
      body: nginx.manifest,
    });
    assert.equal(put.status, 201);
  });

  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('lists exactly the repositories, tags, manifests and blobs under the prefix, a page of 2 at a time, each manifest read once', async () => {
    const output = join(work, 'inventory.json');
    const before = (await registry.requests()).length;
    const r = await airlock(['inventory', '--registry', `${registry.host}/apps`, '--plain-http', '-o', output, '--page-size', '2', '--jobs', '3']);
    assert.equal(r.code, 0, r.stderr);
    const inv = await readInventory(output);
    assert.equal(inv.source, 'catalog');
    assert.equal(inv.registry, `${registry.host}/apps`);
    assert.deepEqual(actual(inv, inside), expected(inside, { 'apps/library/nginx': { latest: nginx.digest } }));
    assert.deepEqual(readdirSync(work), ['inventory.json'], 'no temporary file left');

    const want = expected(inside);
    const bytes = Object.values(want.blobs).reduce((a, b) => a + b, 0);
    assert.match(r.stdout, new RegExp(`^inventory of ${registry.host}/apps \\(catalog\\): 4 repositories, 7 tags, ${want.manifests.length} manifests, ${Object.keys(want.blobs).length} blobs, .* -> ${output} `, 'm'));
    assert.ok(bytes > 0);

    const requests = (await registry.requests()).slice(before);
    const catalogPages = requests.filter((l) => l.includes('/v2/_catalog'));
    assert.ok(catalogPages.length >= 3, `6 repositories at 2 a page: ${catalogPages.join(' | ')}`);
    assert.ok(catalogPages.every((l) => /[?&]n=2\b/.test(l)), catalogPages.join(' | '));
    // No blob is read, only manifests: one GET per tag, and each manifest reached by digest (the index's children) once,
    // though two tags lead to that index.
    assert.deepEqual(requests.filter((l) => /\/blobs\/|^HEAD /.test(l)), []);
    const byTag = requests.filter((l) => /^GET \/v2\/.+\/manifests\/[^/@:]+ /.test(l));
    assert.equal(byTag.length, 7, byTag.join('\n'));
    const byDigest = requests.filter((l) => /^GET \/v2\/.+\/manifests\/sha256:/.test(l)).map((l) => l.split(' ')[1]).sort();
    assert.deepEqual(byDigest, nginx.children!.map((c) => `/v2/apps/library/nginx/manifests/${c.digest}`).sort());
    assert.ok(!requests.some((l) => /\/v2\/(other|apps-old)\//.test(l)), 'repositories outside the prefix are not read');
  });

  test('--json prints one result line; the whole registry without a prefix', async () => {
    const output = join(work, 'all.json');
    const r = await airlock(['inventory', '--registry', registry.host, '--plain-http', '-o', output, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = resultOf(r.stdout, 'inventory');
    assert.equal(result.repositories, 6);
    assert.equal(result.source, 'catalog');
    assert.equal(result.output, output);
    const inv = await readInventory(output);
    assert.deepEqual(inv.repositories, ['apps-old/x', 'apps/harness/ng-manager', 'apps/harness/pipeline', 'apps/library/nginx', 'apps/tools/legacy', 'other/tool']);
    assert.equal(result.blobs, Object.keys(inv.blobs).length);
    assert.equal(result.bytes, Object.values(inv.blobs).reduce((a, [s]) => a + s, 0));
  });

  test('TLS with --ca-file and Basic auth: the same walk; without the credentials, exit 4', async () => {
    const secured = await startRegistry({ auth: 'basic', tls: true });
    try {
      const few = inside.filter((i) => i.repository !== 'apps/harness/ng-manager');
      await pushImages(secured.url, few, { username: secured.username, password: secured.password, caFile: secured.caFile });
      const output = join(work, 'tls.json');
      const args = ['inventory', '--registry', `${secured.host}/apps`, '--ca-file', secured.caFile!, '-o', output];
      const r = await airlock([...args, '--registry-username', secured.username!, '--registry-password-env', 'REG_PW'], { env: { REG_PW: secured.password } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(actual(await readInventory(output), few), expected(few));
      const anonymous = await airlock([...args.slice(0, -1), join(work, 'anonymous.json')], { env: { DOCKER_CONFIG: work } });
      assert.equal(anonymous.code, 4, anonymous.stderr);
      assert.match(anonymous.stderr, /hint: if the registry needs credentials, give --registry-username/);
    } finally {
      await secured.stop();
    }
  });

  describe('a registry that refuses the catalog', () => {
    let quirk: QuirkProxy;
    before(async () => {
      quirk = await startQuirkProxy({ host: '127.0.0.1', port: registry.port });
    });
    after(async () => {
      await quirk?.stop();
    });

    test('tags listed a page at a time (distribution 3, Harbor page them; 2.8 ignores n): every page followed', async () => {
      quirk.clear();
      const tagsPath = /^\/v2\/apps\/harness\/ng-manager\/tags\/list$/;
      const page = (tags: string[], next?: string) => ({
        status: 200,
        headers: { 'content-type': 'application/json', ...(next ? { link: `<${next}>; rel="next"` } : {}) },
        body: JSON.stringify({ name: 'apps/harness/ng-manager', tags }),
      });
      quirk.add({ name: 'tags page 2', path: tagsPath, query: /(^|&)last=1\.1(&|$)/, answer: () => page(['1.2']) });
      quirk.add({ name: 'tags page 1', path: tagsPath, answer: () => page(['1.0', '1.1'], '/v2/apps/harness/ng-manager/tags/list?last=1.1&n=2') });
      const output = join(work, 'paged-tags.json');
      const r = await airlock(['inventory', '--registry', `${quirk.host}/apps`, '--plain-http', '-o', output, '--page-size', '2']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        quirk.log.filter((l) => l.rule?.startsWith('tags page')).map((l) => l.rule),
        ['tags page 1', 'tags page 2'],
      );
      assert.ok(quirk.log.some((l) => /tags\/list\?n=2$/.test(l.url)), 'the first page asks for n=2');
      const inv = await readInventory(output);
      assert.deepEqual(Object.keys(inv.tags['apps/harness/ng-manager']!).sort(), ['1.0', '1.1', '1.2']);
      assert.deepEqual(actual(inv, inside), expected(inside, { 'apps/library/nginx': { latest: nginx.digest } }));
    });

    for (const status of [401, 403]) {
      test(`HTTP ${status} on /v2/_catalog: exit 4, says so and points at --from-git; no file written`, async () => {
        quirk.clear();
        quirk.add({
          name: 'harbor-like catalog',
          path: /^\/v2\/_catalog$/,
          answer: () => ({
            status,
            headers: { 'content-type': 'application/json', ...(status === 401 ? { 'www-authenticate': 'Basic realm="harbor"' } : {}) },
            body: JSON.stringify({ errors: [{ code: status === 401 ? 'UNAUTHORIZED' : 'DENIED', message: 'not allowed' }] }),
          }),
        });
        const output = join(work, `refused-${status}.json`);
        const r = await airlock(['inventory', '--registry', quirk.host, '--plain-http', '-o', output]);
        assert.equal(r.code, 4, r.stderr);
        assert.match(r.stderr, new RegExp(`airlock: error: registry ${quirk.host} refuses to list its repositories \\(GET /v2/_catalog answered HTTP ${status}\\)`));
        assert.match(r.stderr, /hint: .*--from-git URL \[--git-path PATH\]/);
        assert.ok(!readdirSync(work).some((f) => f.startsWith(`refused-${status}`) || f.includes('partial')));
      });
    }
  });
});

describe('airlock inventory --from-git: after a real load --git into a registry whose tokens grant no catalog', () => {
  const PASSWORD = 'inventory test';
  let source: RegistryService;
  let enclave: RegistryService;
  let server: GitServer;
  let work: string;
  let images: SyntheticImage[];
  const env = () => ({ GIT_PW: server.password, REG_PW: enclave.password, AIRLOCK_PASSWORD: PASSWORD });
  const registryAuth = () => ['--registry-username', enclave.username!, '--registry-password-env', 'REG_PW'];
  const gitFlags = () => ['--ca-file', server.caFile, '--git-username', server.username, '--git-password-env', 'GIT_PW'];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-inventory-git-'));
    source = await startRegistry();
    // Harbor and others: valid users get their repositories, never the catalog.
    enclave = await startRegistry({ auth: 'token', tokenGrant: (user, scope) => (user !== undefined && scope.type === 'repository' ? scope.actions : []) });
    server = await startGitServer();
    images = await generateImages({
      seed: 41,
      images: [
        { repository: 'library/nginx', tag: '1.25', layers: 2, layerSize: 5000, sharedBaseLayers: 1, platforms: ['linux/amd64', 'linux/arm64/v8'] },
        { repository: 'harness/ng-manager', tag: '1.0', layers: 3, layerSize: 5000, sharedBaseLayers: 1 },
      ],
    });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem);
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    mkdirSync(join(work, 'deploy'));
    writeFileSync(join(work, 'deploy', 'web.yaml'), deployment('web', 'nginx:1.25'));
    writeFileSync(join(work, 'deploy', 'manager.yaml'), deployment('ng-manager', 'docker.io/harness/ng-manager:1.0'));
    writeFileSync(join(work, 'airlock.yaml'), 'name: harness\nversion: 1.0.0\ndiscoverImages: true\nmanifests:\n  - path: ./deploy\n');
    const bundle = join(work, 'harness.tar');
    const packed = await airlock(['pack', '-f', join(work, 'airlock.yaml'), '-o', bundle, '--key', join(work, 'airlock.key'), '--registry-mirror', `docker.io=${source.url}`], { env: env() });
    assert.equal(packed.code, 0, packed.stderr);
    await server.createRepo('apps', { files: { 'README.md': 'enclave apps\n' } });
    const loaded = await airlock(
      ['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', `${enclave.host}/enclave`, '--plain-http', ...registryAuth(), '--git', server.url('apps'), ...gitFlags()],
      { env: env() },
    );
    assert.equal(loaded.code, 0, loaded.stderr);
  });

  after(async () => {
    await source?.stop();
    await enclave?.stop();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const inventory = (output: string, extra: string[]) =>
    airlock(['inventory', '--registry', `${enclave.host}/enclave`, '--plain-http', ...registryAuth(), '-o', output, ...extra], { env: env() });

  test('the catalog walk is refused with the pointer to --from-git; --from-git lists the loaded images exactly', async () => {
    const refused = await inventory(join(work, 'refused.json'), []);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /refuses to list its repositories \(GET \/v2\/_catalog answered HTTP 401\)/);
    assert.match(refused.stderr, /--from-git URL/);

    const output = join(work, 'inventory.json');
    const r = await inventory(output, ['--from-git', server.url('apps'), ...gitFlags()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^inventory of .* \(the images of harness 1\.0\.0 loaded into .* dev\): 2 repositories, 2 tags, 4 manifests, /m);
    const inv = await readInventory(output);
    assert.equal(inv.source, 'git');
    const internal = images.map((i) => ({ ...i, repository: `enclave/${i.repository}` }));
    assert.deepEqual(actual(inv, internal), expected(internal));
  });

  test('--from-git: a loaded image the registry no longer holds is left out and named', async () => {
    const manager = images.find((i) => i.repository === 'harness/ng-manager')!;
    await run('skopeo', ['delete', ...skopeoFlags(enclave), `docker://${enclave.host}/enclave/harness/ng-manager@${manager.digest}`]);
    const output = join(work, 'partial.json');
    const r = await inventory(output, ['--from-git', server.url('apps'), '--git-branch', 'dev', '--git-path', 'harness', ...gitFlags(), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = resultOf(r.stdout, 'inventory');
    assert.deepEqual(result.missing, [`enclave/harness/ng-manager@${manager.digest}`]);
    const inv = await readInventory(output);
    const nginx = images.filter((i) => i.repository === 'library/nginx').map((i) => ({ ...i, repository: `enclave/${i.repository}` }));
    assert.deepEqual(actual(inv, nginx), expected(nginx));
    assert.match(readFileSync(output, 'utf8'), /"source": "git"/);
  });
});

function deployment(name: string, image: string): string {
  return `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  selector: { matchLabels: { app: ${name} } }\n  template:\n    metadata: { labels: { app: ${name} } }\n    spec:\n      containers:\n        - name: app\n          image: ${image}\n`;
}
