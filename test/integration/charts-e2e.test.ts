import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { create as createTar } from 'tar';
import { parse, parseAllDocuments } from 'yaml';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { discoverImages } from '../../shared/manifests/discover.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { createTestCA } from '../services/ca.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startChartRepository, type ChartRepository } from '../services/chartRepository.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { httpRequest } from '../services/http.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { helm4, kubectl } from '../services/tools.ts';
import { resultOf } from '../json-lines.ts';

/**
 * Charts end to end, the way an operator runs it, through the real CLI only:
 * `airlock pack` -> `airlock verify` / `inspect` -> `airlock load --git`.
 *
 * Connected side: an nginx HTTPS chart repository (its own test CA, given
 * only as --ca-file) serving the real Harness delegate chart 1.0.32 and a
 * small `cache` chart; a docker-registry holding the `shop` chart (pushed by
 * the real `helm push`), whose dependency on `cache` is not vendored, and
 * synthetic images under every name the charts render, reached through
 * --registry-mirror; a git repository (the HTTPS git server) holding a `tools`
 * chart folder. The delegate is packed with enclave values in
 * `gitops: helmrelease`, shop and tools in `gitops: rendered`.
 *
 * Enclave side: an empty docker-registry and an empty repository on the HTTPS
 * git server (git-http-backend behind nginx, Basic auth). The checks are the
 * ones an operator would make: helm pulls each chart from the enclave registry
 * and renders it offline; kubectl kustomize of the committed base renders only
 * internal, digest-pinned images.
 */
const PASSWORD = 'correct horse';
const PREFIX = 'mirror';
const DELEGATE = join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures', 'harness', 'delegate', 'harness-delegate-ng-1.0.32.tgz');
const DELEGATE_IMAGE = 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404';
const UPGRADER_IMAGE = 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest';
const SHOP_IMAGE = 'docker.io/acme/shop:1.4';
const CACHE_IMAGE = 'docker.io/acme/cache:7.2';
const TOOLS_IMAGE = 'docker.io/acme/tools:0.9';
const ENCLAVE_VALUES = {
  managerEndpoint: 'https://harness.enclave.test',
  accountId: 'abcdEFGH1234',
  delegateToken: 'ZW5jbGF2ZS10b2tlbg==',
  replicas: 2,
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const deployment = (name: string, image: string, replicas = '1') =>
  [
    'apiVersion: apps/v1',
    'kind: Deployment',
    `metadata: { name: ${name} }`,
    'spec:',
    `  replicas: ${replicas}`,
    `  selector: { matchLabels: { app: ${name} } }`,
    '  template:',
    `    metadata: { labels: { app: ${name} } }`,
    `    spec: { containers: [{ name: ${name}, image: ${image} }] }`,
    '',
  ].join('\n');

describe('charts end to end: airlock pack, verify, inspect, load --git', () => {
  let work: string;
  let repo: ChartRepository;
  let source: RegistryService;
  let enclave: RegistryService;
  let git: GitServer;
  let caFile: string;
  let toolsCommit: string;
  let helmEnv: Record<string, string>;
  let specFile: string;
  let index: BundleIndex;
  const bundle = () => join(work, 'out', 'a.tar');
  const packEnv = () => ({ AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined, HELM_REPOSITORY_CONFIG: join(work, 'no-repositories.yaml'), TMPDIR: join(work, 'tmp') });
  const helm = (args: string[], env: Record<string, string> = {}) => run(helm4(), args, { env: { ...helmEnv, ...env }, timeoutMs: 120_000 });
  const chart = (release: string) => index.charts.find((c) => c.releaseName === release)!;
  const image = (ref: string) => index.images.find((i) => i.ref === ref)!;

  /** A chart archive as helm packs it (helm package refuses a chart whose dependencies are missing). */
  async function chartArchive(name: string, version: string, files: Record<string, string>): Promise<string> {
    const src = join(work, 'src', `${name}-${version}`);
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(dirname(join(src, name, rel)), { recursive: true });
      writeFileSync(join(src, name, rel), text);
    }
    const out = join(work, 'src', `${name}-${version}.tgz`);
    await createTar({ gzip: true, file: out, cwd: src, portable: true }, [name]);
    return out;
  }

  function pack(out: string): Promise<CliResult> {
    return airlock(
      ['pack', '-f', specFile, '-o', out, '--key', join(work, 'airlock.key'), '--helm', helm4(), '--ca-file', caFile, '--git-username', git.username, '--git-password-env', 'GIT_PW', '--plain-http', '--registry-mirror', `docker.io=${source.url}`, '--registry-mirror', `us-docker.pkg.dev=${source.url}`, '--json'],
      { env: { ...packEnv(), GIT_PW: git.password }, timeoutMs: 120_000 },
    );
  }

  const gitFlags = () => ['--git', git.url('enclave-apps'), '--git-username', git.username, '--git-password-env', 'GIT_PW', '--ca-file', git.caFile];
  const load = (extra: string[] = []) =>
    airlock(['load', bundle(), '--key', join(work, 'airlock.pub'), '--registry', `${enclave.host}/${PREFIX}`, '--plain-http', ...gitFlags(), ...extra], { env: { GIT_PW: git.password }, timeoutMs: 120_000 });

  /** Where a tag of the enclave registry points (Docker-Content-Digest), or undefined. */
  async function tagDigest(repository: string, tag: string): Promise<string | undefined> {
    const r = await httpRequest(`${enclave.url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    return r.status === 200 ? String(r.headers['docker-content-digest']) : undefined;
  }

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-charts-e2e-'));
    for (const d of ['tmp', 'out', 'spec']) mkdirSync(join(work, d), { recursive: true });
    helmEnv = { HELM_REGISTRY_CONFIG: join(work, 'helm', 'registry.json') };
    for (const v of ['HELM_CONFIG_HOME', 'HELM_CACHE_HOME', 'HELM_DATA_HOME']) helmEnv[v] = join(work, 'helm', v);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);

    const ca = await createTestCA(join(work, 'pki'));
    [source, enclave, git] = await Promise.all([startRegistry(), startRegistry(), startGitServer()]);
    await git.createRepo('enclave-apps'); // empty, as a forge creates it
    // pack trusts one CA file: the chart repository's CA and the git server's.
    caFile = join(work, 'connected-ca.pem');
    writeFileSync(caFile, readFileSync(ca.caCert, 'utf8') + readFileSync(git.caFile, 'utf8'));
    // The git chart source: a chart folder in a platform repository (on the same git server, as a test economy).
    await git.createRepo('platform', {
      files: {
        'README.md': 'platform charts\n',
        'charts/tools/Chart.yaml': 'apiVersion: v2\nname: tools\nversion: 0.9.1\nappVersion: "0.9"\n',
        'charts/tools/templates/tools.yaml': deployment('tools', '"docker.io/acme/tools:{{ .Chart.AppVersion }}"'),
      },
    });
    toolsCommit = (await git.git('platform', ['rev-parse', 'main'])).trim();

    // The images, under the names the charts render: none is listed in the spec.
    const images = await generateImages({
      seed: 1132,
      images: [
        { repository: 'gar-prod-setup/harness-public/harness/delegate', tag: '26.02.88404', layers: 2, layerSize: 60_000, sharedBaseLayers: 1 },
        { repository: 'gar-prod-setup/harness-public/harness/upgrader', tag: 'latest', layers: 2, layerSize: 30_000, sharedBaseLayers: 1 },
        { repository: 'acme/shop', tag: '1.4', layers: 2, layerSize: 30_000, sharedBaseLayers: 1 },
        { repository: 'acme/cache', tag: '7.2', layers: 1, layerSize: 20_000 },
        { repository: 'acme/tools', tag: '0.9', layers: 1, layerSize: 10_000 },
      ],
    });
    await pushImages(source.url, images);

    // The HTTPS chart repository: the real delegate chart and cache.
    const cache = await chartArchive('cache', '1.2.0', {
      'Chart.yaml': 'apiVersion: v2\nname: cache\nversion: 1.2.0\nappVersion: "7.2"\n',
      'values.yaml': 'replicas: 1\n',
      'templates/cache.yaml': deployment('cache', '"docker.io/acme/cache:{{ .Chart.AppVersion }}"', '{{ .Values.replicas }}'),
    });
    repo = await startChartRepository({
      dir: join(work, 'www'),
      tls: ca,
      charts: [
        { archive: DELEGATE, name: 'harness-delegate-ng', version: '1.0.32' },
        { archive: cache, name: 'cache', version: '1.2.0' },
      ],
    });

    // shop in the source registry, its dependency on cache left to be fetched.
    const shop = await chartArchive('shop', '0.3.0', {
      'Chart.yaml': ['apiVersion: v2', 'name: shop', 'version: 0.3.0', 'appVersion: "1.4"', 'dependencies:', `  - { name: cache, version: ~1.2.0, repository: "${repo.url}" }`, ''].join('\n'),
      'values.yaml': 'replicas: 1\ncache: { replicas: 1 }\n',
      'templates/shop.yaml': deployment('shop', '"docker.io/acme/shop:{{ .Chart.AppVersion }}"', '{{ .Values.replicas }}'),
      'templates/settings.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: shop-settings, namespace: shared }\ndata: { currency: EUR }\n',
    });
    await helm(['push', shop, `oci://${source.host}/apps`, '--plain-http']);

    const dir = join(work, 'spec');
    writeFileSync(join(dir, 'delegate-enclave.yaml'), Object.entries(ENCLAVE_VALUES).map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`).join('\n') + '\n');
    specFile = join(dir, 'airlock.yaml');
    writeFileSync(
      specFile,
      [
        'name: enclave-apps',
        'version: 1.0.0',
        'platforms: [linux/amd64]',
        'discoverImages: true',
        'charts:',
        `  - repo: ${repo.url}`,
        '    name: harness-delegate-ng',
        '    version: 1.0.32',
        '    releaseName: delegate',
        '    namespace: harness-delegate',
        '    values: [delegate-enclave.yaml]',
        '    gitops: helmrelease',
        `  - oci: oci://${source.host}/apps/shop`,
        '    version: 0.3.0',
        '    releaseName: shop',
        '    set: { replicas: 3, cache.replicas: 2 }',
        '    gitops: rendered',
        `  - git: { url: "${git.url('platform')}", ref: main, path: charts/tools }`,
        '    releaseName: tools',
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    await Promise.all([repo?.stop(), source?.stop(), enclave?.stop(), git?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  test('pack (twice: the same chart digests), verify, and inspect --json lists the charts and each image\'s charts', async (t) => {
    const started = performance.now();
    const a = await pack(bundle());
    const seconds = (performance.now() - started) / 1000;
    assert.equal(a.code, 0, a.stderr + a.stdout);
    t.diagnostic(`pack: ${seconds.toFixed(2)} s wall, bundle ${statSync(bundle()).size} bytes`);
    assert.ok(!`${a.stdout}${a.stderr}`.includes(ENCLAVE_VALUES.delegateToken), 'a values secret never appears in pack output');
    const b = await pack(join(work, 'out', 'b.tar'));
    assert.equal(b.code, 0, b.stderr + b.stdout);

    const verified = await airlock(['verify', bundle(), '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);

    const inspected = await airlock(['inspect', bundle(), '--json']);
    assert.equal(inspected.code, 0, inspected.stderr);
    index = resultOf<BundleIndex>(inspected.stdout, 'inspect');
    assert.deepEqual(
      index.charts.map((c) => [c.releaseName, c.name, c.version, c.namespace, c.gitops, [...c.images].sort()]),
      [
        ['delegate', 'harness-delegate-ng', '1.0.32', 'harness-delegate', 'helmrelease', [DELEGATE_IMAGE, UPGRADER_IMAGE]],
        ['shop', 'shop', '0.3.0', 'shop', 'rendered', [CACHE_IMAGE, SHOP_IMAGE]],
        ['tools', 'tools', '0.9.1', 'tools', 'rendered', [TOOLS_IMAGE]],
      ],
    );
    assert.equal(chart('delegate').source, `harness-delegate-ng 1.0.32 from ${repo.url}/`);
    assert.ok(chart('shop').source.includes(`${source.host}/apps/shop:0.3.0`), chart('shop').source);
    assert.equal(chart('tools').source, `${git.url('platform')}@${toolsCommit}:charts/tools`, 'a git chart names the commit it was packed from');
    assert.deepEqual(
      index.images.map((i) => [i.ref, i.charts]).sort(),
      [
        [CACHE_IMAGE, ['shop']],
        [SHOP_IMAGE, ['shop']],
        [TOOLS_IMAGE, ['tools']],
        [DELEGATE_IMAGE, ['delegate']],
        [UPGRADER_IMAGE, ['delegate']],
      ].sort(),
    );
    const values = parse((await run('tar', ['-xOf', bundle(), chart('delegate').values])).stdout) as Record<string, unknown>;
    assert.deepEqual(values, ENCLAVE_VALUES, 'the enclave values are carried as written');

    const text = await airlock(['inspect', bundle()]);
    assert.ok(
      text.stdout.includes(`  harness-delegate-ng 1.0.32  release delegate  namespace harness-delegate  gitops helmrelease  ${chart('delegate').digest}  (2 images; source: harness-delegate-ng 1.0.32 from ${repo.url}/)\n`),
      text.stdout,
    );
    assert.ok(text.stdout.includes(`  ${UPGRADER_IMAGE}  ${image(UPGRADER_IMAGE).digest}  linux/amd64  charts: delegate\n`), text.stdout);

    const again = resultOf<BundleIndex>((await airlock(['inspect', join(work, 'out', 'b.tar'), '--json'])).stdout, 'inspect');
    assert.deepEqual(
      again.charts.map((c) => [c.releaseName, c.digest]),
      index.charts.map((c) => [c.releaseName, c.digest]),
      'the same spec packed twice gives the same chart digests (shop is repackaged with its dependency)',
    );
  });

  test('load --git: the charts are in the enclave registry, and helm pulls each and renders it offline', async () => {
    assert.ok(index, 'packed');
    const res = await load(['--json']);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const report = resultOf<{ charts: { name: string; target: string; status: string; digest: string }[] }>(res.stdout, 'load');
    assert.deepEqual(
      report.charts.map((c) => [c.name, c.target, c.status, c.digest]).sort(),
      [
        ['harness-delegate-ng', `${enclave.host}/${PREFIX}/charts/harness-delegate-ng:1.0.32`, 'pushed', chart('delegate').digest],
        ['shop', `${enclave.host}/${PREFIX}/charts/shop:0.3.0`, 'pushed', chart('shop').digest],
        ['tools', `${enclave.host}/${PREFIX}/charts/tools:0.9.1`, 'pushed', chart('tools').digest],
      ],
    );

    const offline = { HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: '' };
    const pullAndRender = async (name: string, version: string, setArgs: string[]) => {
      const dest = mkdtempSync(join(work, 'pull-'));
      await helm(['pull', `oci://${enclave.host}/${PREFIX}/charts/${name}`, '--version', version, '--plain-http', '--destination', dest]);
      const archive = join(dest, `${name}-${version}.tgz`);
      return { archive, rendered: (await helm(['template', name, archive, ...setArgs], offline)).stdout };
    };
    const delegate = await pullAndRender('harness-delegate-ng', '1.0.32', ['-f', join(work, 'spec', 'delegate-enclave.yaml')]);
    assert.equal(sha256(readFileSync(delegate.archive)), sha256(readFileSync(DELEGATE)), 'the delegate chart keeps its published bytes');
    const delegateDocs = parseAllDocuments(delegate.rendered).map((d) => d.toJS() as { kind: string; spec?: { replicas?: number } } | null);
    assert.equal(delegateDocs.find((d) => d?.kind === 'Deployment')?.spec?.replicas, 2);
    const shop = await pullAndRender('shop', '0.3.0', []);
    assert.match(shop.rendered, /image: "docker\.io\/acme\/cache:7\.2"/, 'the fetched dependency is inside the pushed chart');
    assert.match(shop.rendered, /image: "docker\.io\/acme\/shop:1\.4"/);
  });

  test('git: kustomize renders only internal digest-pinned images; the OCIRepository pins the pushed chart; every rendered delegate image has a post-renderer pin; rendered/ is no resource; a reload commits nothing', async () => {
    assert.ok(index, 'packed');
    const dir = mkdtempSync(join(work, 'co-'));
    const url = new URL(git.url('enclave-apps'));
    url.username = git.username;
    url.password = git.password;
    await run('git', ['clone', '--quiet', '--branch', 'dev', url.toString(), dir], { env: { GIT_SSL_CAINFO: git.caFile } });
    const root = join(dir, 'enclave-apps');
    const base = join(root, 'base');

    const kustomization = parse(readFileSync(join(base, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    assert.ok(kustomization.resources.includes('delegate/helmrelease.yaml') && kustomization.resources.includes('delegate/ocirepository.yaml'), kustomization.resources.join(', '));
    assert.ok(!kustomization.resources.some((r) => r.startsWith('../') || r.includes('rendered')), kustomization.resources.join(', '));

    const out = (await run(kubectl(), ['kustomize', base])).stdout;
    const docs = parseAllDocuments(out).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; spec: Record<string, unknown> });
    assert.deepEqual(
      docs.map((d) => `${d.kind}/${d.metadata.name} in ${d.metadata.namespace}`).sort(),
      ['ConfigMap/shop-settings in shared', 'Deployment/cache in shop', 'Deployment/shop in shop', 'Deployment/tools in tools', 'HelmRelease/delegate in harness-delegate', 'OCIRepository/delegate in harness-delegate'],
      'the delegate render is not a resource; the rendered chart goes to its release namespace where its templates name none, as helm install does',
    );
    const used = [...new Set([...out.matchAll(/\bimage: (\S+)/g)].map((m) => m[1]!))].sort();
    assert.deepEqual(used, [
      `${enclave.host}/${PREFIX}/acme/cache@${image(CACHE_IMAGE).digest}`,
      `${enclave.host}/${PREFIX}/acme/shop@${image(SHOP_IMAGE).digest}`,
      `${enclave.host}/${PREFIX}/acme/tools@${image(TOOLS_IMAGE).digest}`,
    ]);
    assert.match(out, /replicas: 3/, "shop's set values rendered");

    const ociRepository = docs.find((d) => d.kind === 'OCIRepository')!;
    const pushed = await tagDigest(`${PREFIX}/charts/harness-delegate-ng`, '1.0.32');
    assert.equal(pushed, chart('delegate').digest);
    assert.equal((ociRepository.spec.ref as { digest: string }).digest, pushed, "the OCIRepository pins the pushed chart's digest");
    assert.equal(ociRepository.spec.url, `oci://${enclave.host}/${PREFIX}/charts/harness-delegate-ng`);

    const release = docs.find((d) => d.kind === 'HelmRelease')!;
    assert.deepEqual(release.spec.values, ENCLAVE_VALUES, 'the enclave values inline');
    assert.equal(release.metadata.namespace, 'harness-delegate');
    const pins = (release.spec.postRenderers as { kustomize: { images: { name: string; newName: string; digest: string }[] } }[])[0]!.kustomize.images;
    const renderedDir = join(root, 'rendered', 'delegate');
    const renderedFiles = listFiles(renderedDir);
    assert.ok(renderedFiles.includes('harness-delegate-ng/templates/deployment.yaml'), renderedFiles.join(', '));
    const renderedImages = [...new Set(renderedFiles.flatMap((f) => discoverImages(readFileSync(join(renderedDir, f), 'utf8'), f).map((x) => x.image)))].sort();
    assert.deepEqual(renderedImages, [DELEGATE_IMAGE, UPGRADER_IMAGE]);
    for (const written of renderedImages) {
      const name = written.slice(0, written.lastIndexOf(':'));
      const pin = pins.find((p) => p.name === name);
      assert.ok(pin, `no post-renderer pin for ${written}`);
      assert.deepEqual(pin, { name, newName: `${enclave.host}/${PREFIX}/${name.replace(/^us-docker\.pkg\.dev\//, '')}`, digest: image(written).digest });
      assert.equal(await tagDigest(pin.newName.slice(enclave.host.length + 1), written.slice(written.lastIndexOf(':') + 1)), pin.digest, `${written} is in the enclave registry at the pinned digest`);
    }

    const tip = (await git.git('enclave-apps', ['rev-parse', 'dev'])).trim();
    const again = await load();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /no commit/);
    assert.equal((await git.git('enclave-apps', ['rev-parse', 'dev'])).trim(), tip, 'an unchanged reload makes no commit');
  });
});

function listFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}
