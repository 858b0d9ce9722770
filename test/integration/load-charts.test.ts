import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { BundleChart, BundleImage } from '../../shared/bundle/format.ts';
import { discoverImages } from '../../shared/manifests/discover.ts';
import { generateKeyPair, readPrivateKey, signBlob } from '../../shared/sign/keys.ts';
import { findHelm } from '../../packer/helm/helm.ts';
import { imageName } from '../../loader/gitops/pins.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { run } from '../services/exec.ts';
import { generateImages } from '../services/fixtures.ts';
import { startGitServer, type GitServer } from '../services/gitServer.ts';
import { httpRequest } from '../services/http.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { helm3, helm4, kubectl } from '../services/tools.ts';
import { writeChartBundle, type ChartBundle } from './helpers/chart-bundle.ts';
import { resultOf } from '../json-lines.ts';

/**
 * load with Helm charts, against a real docker-registry and a real git server
 * (git-http-backend behind nginx, HTTPS, Basic auth): one chart in
 * `gitops: rendered` (a small chart made here, with a "+" in its version) and
 * the real Harness delegate chart 1.0.32 in `gitops: helmrelease`. The charts
 * are pushed to REGISTRY/PREFIX/charts/NAME:VERSION, the real helm pulls and
 * renders them offline from there, and the real kubectl kustomize renders the
 * committed base (and an overlay patching the HelmRelease's values).
 */
const DELEGATE = join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures', 'harness', 'delegate', 'harness-delegate-ng-1.0.32.tgz');
const DELEGATE_IMAGE = 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404';
const UPGRADER_IMAGE = 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest';
const PREFIX = 'enclave';

const WEB_CHART: Record<string, string> = {
  'Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0+build.1\nappVersion: "1.25"\n',
  'values.yaml': 'image: nginx:1.25\nreplicas: 1\n',
  'templates/deployment.yaml': [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: {{ .Release.Name }}',
    'spec:',
    '  replicas: {{ .Values.replicas }}',
    '  selector: { matchLabels: { app: web } }',
    '  template:',
    '    metadata: { labels: { app: web } }',
    '    spec:',
    '      containers:',
    '        - name: web',
    '          image: {{ .Values.image | quote }}',
    '',
  ].join('\n'),
  'templates/service.yaml': 'apiVersion: v1\nkind: Service\nmetadata: { name: {{ .Release.Name }} }\nspec: { selector: { app: web }, ports: [{ port: 80 }] }\n',
};
const DELEGATE_VALUES = 'managerEndpoint: https://harness.enclave.test\naccountId: abcdEFGH1234\ndelegateToken: dG9rZW4=\ndelegateName: enclave-delegate\nreplicas: 2\nupgrader:\n  enabled: true\n';

describe('airlock load with Helm charts', () => {
  let enclave: RegistryService;
  let server: GitServer;
  let work: string;
  let bundle: string;
  let built: ChartBundle;
  let helmEnv: Record<string, string>;
  let buildBundle: (out: string, version: string, delegateMode: 'rendered' | 'helmrelease') => Promise<ChartBundle>;
  const gitEnv = () => ({ GIT_PW: server.password, GIT_SSL_CAINFO: server.caFile });
  const helm = (args: string[]) => run(helm4(), args, { env: helmEnv, timeoutMs: 120_000 });
  const chart = (release: string): BundleChart => built.charts.find((c) => c.releaseName === release)!;
  const image = (ref: string): BundleImage => built.images.find((i) => i.ref === ref)!;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-load-charts-'));
    enclave = await startRegistry();
    server = await startGitServer();
    helmEnv = {};
    for (const v of ['HELM_CONFIG_HOME', 'HELM_CACHE_HOME', 'HELM_DATA_HOME']) helmEnv[v] = join(work, 'helm', v);
    helmEnv.HELM_REGISTRY_CONFIG = join(work, 'helm', 'registry.json');

    const webDir = join(work, 'src', 'web');
    for (const [rel, text] of Object.entries(WEB_CHART)) {
      mkdirSync(dirname(join(webDir, rel)), { recursive: true });
      writeFileSync(join(webDir, rel), text);
    }
    await helm(['package', webDir, '--destination', join(work, 'src')]);
    const synthetic = await generateImages({
      seed: 11,
      images: [
        { repository: 'library/nginx', tag: '1.25', layers: 1, layerSize: 10_000 },
        { repository: 'gar-prod-setup/harness-public/harness/delegate', tag: '26.02.88404', layers: 2, layerSize: 10_000 },
        { repository: 'gar-prod-setup/harness-public/harness/upgrader', tag: 'latest', layers: 1, layerSize: 10_000 },
      ],
    });
    const pair = generateKeyPair('pw');
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    const key = readPrivateKey(pair.privateKeyPem, 'pw', 'test key');
    const helmBinary = await findHelm(helm4());
    buildBundle = async (out, version, delegateMode) =>
      writeChartBundle({
        out,
        work: join(work, `build-${version}`),
        name: 'harness',
        version,
        helm: helmBinary,
        sign: (b) => signBlob(b, key),
        charts: [
          { archive: join(work, 'src', 'web-0.1.0+build.1.tgz'), releaseName: 'web', namespace: 'web', gitops: 'rendered', values: 'image: nginx:1.25\nreplicas: 2\n' },
          { archive: DELEGATE, releaseName: 'delegate', namespace: 'harness-delegate-ng', gitops: delegateMode, values: DELEGATE_VALUES },
        ],
        images: [
          { ref: 'docker.io/library/nginx:1.25', image: synthetic[0]! },
          { ref: DELEGATE_IMAGE, image: synthetic[1]! },
          { ref: UPGRADER_IMAGE, image: synthetic[2]! },
        ],
      });
    bundle = join(work, 'harness.tar');
    built = await buildBundle(bundle, '1.0.0', 'helmrelease');
    assert.deepEqual(chart('delegate').images.sort(), [DELEGATE_IMAGE, UPGRADER_IMAGE], 'the delegate chart renders both images');
  });

  after(async () => {
    await enclave?.stop();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const load = (registry: RegistryService, extra: string[] = []): Promise<CliResult> =>
    airlock(['load', bundle, '--key', join(work, 'airlock.pub'), '--registry', `${registry.host}/${PREFIX}`, '--plain-http', ...extra], { env: gitEnv() });
  const withGit = (repo: string) => ['--ca-file', server.caFile, '--git', server.url(repo), '--git-username', server.username, '--git-password-env', 'GIT_PW'];

  async function checkout(repo: string, branch: string): Promise<string> {
    const dir = mkdtempSync(join(work, 'co-'));
    const url = new URL(server.url(repo));
    url.username = server.username;
    url.password = server.password;
    await run('git', ['clone', '--quiet', '--branch', branch, url.toString(), dir], { env: { GIT_SSL_CAINFO: server.caFile } });
    return dir;
  }

  /** Where a tag of the enclave registry points (Docker-Content-Digest), or undefined. */
  async function tagDigest(registry: RegistryService, repository: string, tag: string): Promise<string | undefined> {
    const r = await httpRequest(`${registry.url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    return r.status === 200 ? String(r.headers['docker-content-digest']) : undefined;
  }

  test('charts are pushed to PREFIX/charts/NAME:VERSION; helm pulls them from the enclave registry and renders them offline', async () => {
    await server.createRepo('apps', { files: { 'README.md': 'enclave apps\n' } });
    const res = await load(enclave, [...withGit('apps'), '--json']);
    assert.equal(res.code, 0, res.stderr);
    const report = resultOf<{ charts: { target: string; status: string; digest: string; releases: string[]; name: string; version: string }[]; images: unknown[] }>(res.stdout, 'load');
    assert.deepEqual(
      report.charts.map((c) => [c.name, c.version, c.target, c.status, c.digest, c.releases]),
      [
        ['web', '0.1.0+build.1', `${enclave.host}/${PREFIX}/charts/web:0.1.0_build.1`, 'pushed', chart('web').digest, ['web']],
        ['harness-delegate-ng', '1.0.32', `${enclave.host}/${PREFIX}/charts/harness-delegate-ng:1.0.32`, 'pushed', chart('delegate').digest, ['delegate']],
      ],
    );
    assert.equal(report.images.length, 3);
    assert.equal(await tagDigest(enclave, `${PREFIX}/charts/web`, '0.1.0_build.1'), chart('web').digest);
    assert.equal(await tagDigest(enclave, `${PREFIX}/charts/harness-delegate-ng`, '1.0.32'), chart('delegate').digest);

    for (const [binary, name, version, archive] of [
      [helm4(), 'web', '0.1.0+build.1', join(work, 'src', 'web-0.1.0+build.1.tgz')],
      [helm4(), 'harness-delegate-ng', '1.0.32', DELEGATE],
      [helm3(), 'harness-delegate-ng', '1.0.32', DELEGATE],
    ] as const) {
      const dest = mkdtempSync(join(work, 'pull-'));
      await run(binary, ['pull', `oci://${enclave.host}/${PREFIX}/charts/${name}`, '--version', version, '--plain-http', '--destination', dest], { env: helmEnv, timeoutMs: 120_000 });
      const [pulled] = readdirSync(dest);
      assert.equal(pulled, `${name}-${version}.tgz`);
      assert.equal(sha256(readFileSync(join(dest, pulled))), sha256(readFileSync(archive)), `${name}: helm pull gives the chart's own bytes`);
      // Offline: the proxies point nowhere, and the chart needs nothing else.
      const t = await run(binary, ['template', 'x', join(dest, pulled), '--set', 'accountId=a,delegateToken=t,managerEndpoint=https://m'], {
        env: { ...helmEnv, HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: '' },
      });
      assert.match(t.stdout, /kind: Deployment/);
    }
  });

  test('--git: the rendered chart is in the base pinned by digest; the helmrelease chart is an OCIRepository and a HelmRelease pinning every rendered image; rendered/ is for review only; a reload commits nothing', async () => {
    const dir = await checkout('apps', 'dev');
    const base = join(dir, 'harness', 'base');
    const kustomization = parse(readFileSync(join(base, 'kustomization.yaml'), 'utf8')) as { resources: string[]; images: { name: string; newName: string; digest: string }[] };
    assert.deepEqual(kustomization.resources, ['delegate/helmrelease.yaml', 'delegate/ocirepository.yaml', 'web']);
    assert.deepEqual((parse(readFileSync(join(base, 'web', 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources, ['web/templates/deployment.yaml', 'web/templates/service.yaml']);
    assert.ok(!kustomization.resources.some((r) => r.includes('rendered')));
    // The vendor's rendered YAML, byte for byte: in the base (rendered) or beside it (helmrelease).
    assert.equal(readFileSync(join(base, 'web/web/templates/deployment.yaml'), 'utf8'), await entryText('manifests/web/web/templates/deployment.yaml'));
    const renderedDir = join(dir, 'harness', 'rendered', 'delegate');
    const renderedFiles = listFiles(renderedDir);
    assert.ok(renderedFiles.includes('harness-delegate-ng/templates/deployment.yaml'), renderedFiles.join(', '));
    for (const f of renderedFiles) assert.equal(readFileSync(join(renderedDir, f), 'utf8'), await entryText(`manifests/delegate/${f}`));
    assert.ok(!listFiles(base).some((f) => f.startsWith('delegate/harness-delegate-ng')), "the chart's rendered files are not also in the base");

    // kubectl kustomize: the web chart's workload with an internal, digest-pinned image; the Flux objects; nothing of rendered/.
    const out = (await run(kubectl(), ['kustomize', base])).stdout;
    const docs = parseAllDocuments(out).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> });
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(), ['Deployment/web', 'HelmRelease/delegate', 'OCIRepository/delegate', 'Service/web']);
    const used = [...out.matchAll(/\bimage: (\S+)/g)].map((m) => m[1]!);
    assert.deepEqual(used, [`${enclave.host}/${PREFIX}/library/nginx@${image('docker.io/library/nginx:1.25').digest}`]);

    const source = docs.find((d) => d.kind === 'OCIRepository')!;
    assert.equal((source.spec.ref as { digest: string }).digest, await tagDigest(enclave, `${PREFIX}/charts/harness-delegate-ng`, '1.0.32'), "the OCIRepository pins the pushed chart's digest");
    assert.equal(source.spec.url, `oci://${enclave.host}/${PREFIX}/charts/harness-delegate-ng`);
    assert.deepEqual(source.spec.layerSelector, { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', operation: 'copy' });
    assert.equal(source.spec.insecure, true);
    const release = docs.find((d) => d.kind === 'HelmRelease')!;
    assert.deepEqual(release.spec.chartRef, { kind: 'OCIRepository', name: 'delegate', namespace: 'harness-delegate-ng' });
    assert.equal(release.spec.releaseName, 'delegate');
    assert.equal(release.spec.targetNamespace, 'harness-delegate-ng');
    assert.deepEqual(release.spec.values, parse(DELEGATE_VALUES));
    // Every image the chart renders (found by parsing every rendered file) has a post-renderer pin to its internal name by digest.
    assert.ok(Array.isArray(release.spec.postRenderers), 'the HelmRelease has post-renderers');
    const pins = (release.spec.postRenderers as { kustomize: { images: { name: string; newName: string; digest: string }[] } }[])[0]!.kustomize.images;
    const renderedImages = renderedFiles.flatMap((f) => discoverImages(readFileSync(join(renderedDir, f), 'utf8'), f).map((x) => x.image));
    assert.deepEqual([...new Set(renderedImages)].sort(), [DELEGATE_IMAGE, UPGRADER_IMAGE]);
    for (const written of renderedImages) {
      const pin = pins.find((p) => p.name === imageName(written));
      assert.ok(pin, `no post-renderer pin for ${written}`);
      assert.equal(pin.digest, image(written).digest);
      assert.equal(pin.newName, `${enclave.host}/${PREFIX}/${imageName(written).replace(/^us-docker\.pkg\.dev\//, '')}`);
      assert.equal(await tagDigest(enclave, pin.newName.slice(enclave.host.length + 1), 'latest' === written.split(':').pop() ? 'latest' : '26.02.88404'), pin.digest);
    }

    // An unchanged reload commits nothing.
    const tip = (await server.git('apps', ['rev-parse', 'dev'])).trim();
    const again = await load(enclave, withGit('apps'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already matches this bundle; no commit/);
    assert.match(again.stdout, /2 charts: 2 already present/);
    assert.equal((await server.git('apps', ['rev-parse', 'dev'])).trim(), tip);
  });

  test('an overlay patches the HelmRelease values (as the README shows); the pins and the rest of the values stay', async () => {
    const dir = await checkout('apps', 'dev');
    const overlay = join(dir, 'harness', 'overlays', 'prod');
    mkdirSync(overlay, { recursive: true });
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        '  - ../../base',
        'patches:',
        '  - target: { kind: HelmRelease, name: delegate }',
        '    patch: |-',
        '      apiVersion: helm.toolkit.fluxcd.io/v2',
        '      kind: HelmRelease',
        '      metadata: { name: delegate }',
        '      spec:',
        '        values:',
        '          replicas: 5',
        '          managerEndpoint: https://harness.prod.enclave.test',
        '',
      ].join('\n'),
    );
    const out = (await run(kubectl(), ['kustomize', overlay])).stdout;
    const release = parseAllDocuments(out).map((d) => d.toJS() as { kind: string; spec: { values: Record<string, unknown>; postRenderers: unknown[] } }).find((d) => d.kind === 'HelmRelease')!;
    assert.deepEqual(release.spec.values, { ...(parse(DELEGATE_VALUES) as object), replicas: 5, managerEndpoint: 'https://harness.prod.enclave.test' });
    assert.equal(release.spec.postRenderers.length, 1);
  });

  test('promote --env-registry: the Flux chart and every image are copied by digest with their tags; the prod overlay points the OCIRepository and the post-renderer pins at the environment registry', async () => {
    const prodRegistry = await startRegistry();
    try {
      const res = await airlock(['promote', '--to', 'prod', '--plain-http', ...withGit('apps'), '--env-registry', `${prodRegistry.host}/prod`, '--env-registry-plain-http'], { env: gitEnv() });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, new RegExp(`env registry ${prodRegistry.host}/prod: 3 images and 1 chart: 4 copied, 0 already there \\(`));
      assert.equal(await tagDigest(prodRegistry, 'prod/charts/harness-delegate-ng', '1.0.32'), chart('delegate').digest, 'the chart, same digest, its version tag');
      for (const ref of [DELEGATE_IMAGE, UPGRADER_IMAGE, 'docker.io/library/nginx:1.25']) {
        const [name, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
        const repository = name.replace(/^(us-docker\.pkg\.dev|docker\.io)\//, 'prod/');
        assert.equal(await tagDigest(prodRegistry, repository, tag), image(ref).digest, `${ref} in the environment registry`);
      }
      const dir = await checkout('apps', 'prod');
      const out = (await run(kubectl(), ['kustomize', join(dir, 'harness', 'overlays', 'prod')])).stdout;
      const docs = parseAllDocuments(out).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown> });
      const source = docs.find((d) => d.kind === 'OCIRepository')!;
      assert.equal(source.spec.url, `oci://${prodRegistry.host}/prod/charts/harness-delegate-ng`);
      assert.equal((source.spec.ref as { digest: string }).digest, chart('delegate').digest);
      assert.equal(source.spec.insecure, true, 'the environment registry speaks plain HTTP');
      const pins = (docs.find((d) => d.kind === 'HelmRelease')!.spec.postRenderers as { kustomize: { images: { name: string; newName: string; digest: string }[] } }[])[0]!.kustomize.images;
      assert.deepEqual(
        pins.map((p) => [p.name, p.newName, p.digest]).sort(),
        [DELEGATE_IMAGE, UPGRADER_IMAGE].map((ref) => [imageName(ref), `${prodRegistry.host}/prod/${imageName(ref).replace(/^us-docker\.pkg\.dev\//, '')}`, image(ref).digest]).sort(),
      );
      assert.deepEqual([...out.matchAll(/\bimage: (\S+)/g)].map((m) => m[1]!), [`${prodRegistry.host}/prod/library/nginx@${image('docker.io/library/nginx:1.25').digest}`]);
      assert.ok(!out.includes(enclave.host), "nothing in prod's render points at dev's registry");
    } finally {
      await prodRegistry.stop();
    }
  });

  test('the next release moves the delegate to gitops: rendered: its Flux objects and rendered/ go, its render joins the base, pinned there', async () => {
    const next = join(work, 'harness-1.0.1.tar');
    await buildBundle(next, '1.0.1', 'rendered');
    const res = await airlock(['load', next, '--key', join(work, 'airlock.pub'), '--registry', `${enclave.host}/${PREFIX}`, '--plain-http', ...withGit('apps')], { env: gitEnv() });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /git: committed [0-9a-f]{12} to dev under harness\//);
    const dir = await checkout('apps', 'dev');
    const files = listFiles(join(dir, 'harness'));
    assert.ok(!files.some((f) => f.startsWith('rendered/')), 'rendered/ is gone');
    assert.ok(!files.includes('base/delegate/helmrelease.yaml') && !files.includes('base/delegate/ocirepository.yaml'));
    assert.ok(files.includes('base/delegate/harness-delegate-ng/templates/deployment.yaml'));
    const out = (await run(kubectl(), ['kustomize', join(dir, 'harness', 'base')])).stdout;
    assert.doesNotMatch(out, /kind: (HelmRelease|OCIRepository)/);
    const used = [...new Set([...out.matchAll(/\bimage: (\S+)/g)].map((m) => m[1]!))].sort();
    assert.deepEqual(
      used,
      [
        `${enclave.host}/${PREFIX}/gar-prod-setup/harness-public/harness/delegate@${image(DELEGATE_IMAGE).digest}`,
        `${enclave.host}/${PREFIX}/gar-prod-setup/harness-public/harness/upgrader@${image(UPGRADER_IMAGE).digest}`,
        `${enclave.host}/${PREFIX}/library/nginx@${image('docker.io/library/nginx:1.25').digest}`,
      ].sort(),
    );
  });

  test('chart tags follow the image tag policy: --skip-images needs them, --dry-run writes nothing, a tag at other content is exit 5 unless --overwrite-tags', async () => {
    const other = await startRegistry();
    try {
      await server.createRepo('policy', { files: { 'README.md': 'x\n' } });
      const skip = await load(other, [...withGit('policy'), '--skip-images']);
      assert.equal(skip.code, 4, skip.stderr);
      assert.match(skip.stderr, new RegExp(`--skip-images: 5 images or charts are not in ${other.host.replace(/\./g, '\\.')}`));
      assert.match(skip.stderr, /enclave\/charts\/web:0\.1\.0_build\.1 \(missing/);

      const dry = await load(other, ['--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, new RegExp(`${other.host.replace(/\./g, '\\.')}/enclave/charts/harness-delegate-ng:1\\.0\\.32 +would push +\\d+ .*chart harness-delegate-ng 1\\.0\\.32 \\(release delegate\\)`));
      assert.equal(await tagDigest(other, `${PREFIX}/charts/harness-delegate-ng`, '1.0.32'), undefined, 'a dry run pushes nothing');

      // Someone pushed another web 0.1.0+build.1 to the same tag.
      const changed = join(work, 'changed');
      mkdirSync(join(changed, 'templates'), { recursive: true });
      for (const [rel, text] of Object.entries(WEB_CHART)) writeFileSync(join(changed, rel), rel === 'values.yaml' ? 'image: nginx:1.25\nreplicas: 9\n' : text);
      await helm(['package', changed, '--destination', join(work, 'changed-out')]);
      await helm(['push', join(work, 'changed-out', 'web-0.1.0+build.1.tgz'), `oci://${other.host}/${PREFIX}/charts`, '--plain-http']);
      const theirs = await tagDigest(other, `${PREFIX}/charts/web`, '0.1.0_build.1');
      assert.ok(theirs && theirs !== chart('web').digest);

      const refused = await load(other);
      assert.equal(refused.code, 5, refused.stderr);
      assert.match(refused.stderr, /1 tag in .* already points at other content; nothing was written/);
      assert.match(refused.stderr, new RegExp(`enclave/charts/web:0\\.1\\.0_build\\.1 is ${theirs}, the bundle has ${chart('web').digest} \\(charts/web:0\\.1\\.0\\+build\\.1\\)`));
      assert.equal(await tagDigest(other, `${PREFIX}/charts/harness-delegate-ng`, '1.0.32'), undefined, 'nothing was written');

      const moved = await load(other, ['--overwrite-tags']);
      assert.equal(moved.code, 0, moved.stderr);
      assert.match(moved.stdout, /enclave\/charts\/web:0\.1\.0_build\.1 +retagged/);
      assert.equal(await tagDigest(other, `${PREFIX}/charts/web`, '0.1.0_build.1'), chart('web').digest);
    } finally {
      await other.stop();
    }
  });

  async function entryText(path: string): Promise<string> {
    return (await run('tar', ['-xOf', bundle, path])).stdout;
  }
});

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(root, join(d, e.name)));
    }
  };
  walk(root);
  return out.sort();
}
