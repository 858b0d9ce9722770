import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock, type CliResult } from '../helpers/cli.ts';
import { tarFile, TAR_END } from '../helpers/tar.ts';
import { createTestCA } from '../services/ca.ts';
import { run } from '../services/exec.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startStaticServer, type NginxService } from '../services/nginx.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { helm3, helm4 } from '../services/tools.ts';
import { resultOf } from '../json-lines.ts';

/**
 * airlock pack with charts, through the real CLI against real servers: an
 * HTTPS chart repository (nginx, a test CA given only as --ca-file),
 * docker-registry holding charts pushed by the real `helm push` and synthetic
 * images, and the real helm 4 and helm 3 rendering.
 *
 * The umbrella chart (OCI, apps/) does not vendor its dependencies: `web`
 * comes from the HTTPS repository (aliased frontend), `db` from another OCI
 * path. Every image is found in the render (or the charts' image
 * annotations), none is listed; `web`'s image tag comes from the spec's values
 * (the chart's default tag is not in the registry), the umbrella's replicas
 * from `set`.
 */
const PASSWORD = 'correct horse';
const DELEGATE = join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures', 'harness', 'delegate', 'harness-delegate-ng-1.0.32.tgz');
const DELEGATE_IMAGES = ['us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404', 'us-docker.pkg.dev/gar-prod-setup/harness-public/harness/upgrader:latest'];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function writeTree(root: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

const deployment = (name: string, image: string, replicas = '1') =>
  [
    'apiVersion: apps/v1',
    'kind: Deployment',
    `metadata: { name: ${name}, namespace: {{ .Release.Namespace }} }`,
    'spec:',
    `  replicas: ${replicas}`,
    `  selector: { matchLabels: { app: ${name} } }`,
    '  template:',
    `    metadata: { labels: { app: ${name} } }`,
    `    spec: { containers: [{ name: ${name}, image: ${image} }] }`,
    '',
  ].join('\n');

describe('airlock pack with charts', () => {
  let work: string;
  let web: NginxService;
  let registry: RegistryService;
  let caFile: string;
  let helmEnv: Record<string, string>;
  let pushedUmbrella: string;
  // Pack's work folders go under work/tmp, so a test can see that none is left behind.
  const env = () => ({ AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined, HELM_REPOSITORY_CONFIG: join(work, 'no-repositories.yaml'), TMPDIR: join(work, 'tmp') });

  const helm = (args: string[], extraEnv: Record<string, string> = {}) => run(helm4(), args, { env: { ...helmEnv, ...extraEnv }, timeoutMs: 120_000 });

  /** A chart packed with node-tar as helm lays it out (helm package refuses missing dependencies). */
  async function packChart(name: string, version: string, files: Record<string, string>): Promise<string> {
    const src = writeTree(join(work, 'src', `${name}-${version}`, name), files);
    const out = join(work, 'built', `${name}-${version}.tgz`);
    mkdirSync(dirname(out), { recursive: true });
    await createTar({ gzip: true, file: out, cwd: dirname(src), portable: true }, [name]);
    return out;
  }

  function repoIndex(entries: { name: string; version: string; url: string; digest: string }[]): string {
    return (
      'apiVersion: v1\nentries:\n' +
      entries.map((e) => `  ${e.name}:\n  - name: ${e.name}\n    version: ${e.version}\n    apiVersion: v2\n    digest: ${e.digest}\n    urls: [${e.url}]\n`).join('') +
      'generated: "2026-01-01T00:00:00Z"\n'
    );
  }

  function spec(dir: string, lines: string[]): string {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'airlock.yaml');
    writeFileSync(file, ['name: charts-demo', 'version: 1.0.0', 'platforms: [linux/amd64]', ...lines, ''].join('\n'));
    return file;
  }

  function pack(specFile: string, out: string, extra: string[] = []): Promise<CliResult> {
    return airlock(
      ['pack', '-f', specFile, '-o', out, '--key', join(work, 'airlock.key'), '--ca-file', caFile, '--plain-http', '--registry-mirror', `docker.io=${registry.url}`, '--registry-mirror', `us-docker.pkg.dev=${registry.url}`, '--json', ...(extra.includes('--helm') ? [] : ['--helm', helm4()]), ...extra],
      { env: env(), timeoutMs: 300_000 },
    );
  }

  /** Pack's work folders left in TMPDIR (tsx keeps its own cache there too). */
  const leftovers = () => readdirSync(join(work, 'tmp')).filter((f) => f.startsWith('airlock-'));
  const summaryOf = (r: CliResult) => JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | string>;
  const indexOf = async (bundle: string) => resultOf<BundleIndex>((await airlock(['inspect', bundle, '--json'])).stdout, 'inspect');

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-pack-charts-'));
    helmEnv = {};
    for (const v of ['HELM_CONFIG_HOME', 'HELM_CACHE_HOME', 'HELM_DATA_HOME']) helmEnv[v] = join(work, 'helm', v);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    mkdirSync(join(work, 'tmp'));

    const ca = await createTestCA(join(work, 'pki'));
    caFile = ca.caCert;
    const root = join(work, 'www');
    for (const d of ['repo', 'bad', 'evil']) mkdirSync(join(root, d), { recursive: true });
    web = await startStaticServer({ root, tls: ca });
    registry = await startRegistry();

    // Images: found by the charts, never listed. acme/web:1.0 (the chart's default) is NOT pushed.
    const images = await generateImages({
      seed: 11,
      images: [
        { repository: 'acme/umbrella', tag: '3.2', layers: 2, layerSize: 40_000, sharedBaseLayers: 1 },
        { repository: 'acme/web', tag: '2.0', layers: 2, layerSize: 40_000, sharedBaseLayers: 1 },
        { repository: 'acme/db', tag: '16', layers: 2, layerSize: 40_000, sharedBaseLayers: 1 },
        { repository: 'acme/db-migrate', tag: '1.0', layers: 1, layerSize: 20_000 },
        { repository: 'gar-prod-setup/harness-public/harness/delegate', tag: '26.02.88404', layers: 3, layerSize: 200_000, sharedBaseLayers: 1 },
        { repository: 'gar-prod-setup/harness-public/harness/upgrader', tag: 'latest', layers: 2, layerSize: 100_000, sharedBaseLayers: 1 },
      ],
    });
    await pushImages(registry.url, images);

    // The HTTPS chart repository: web 1.0.0 and the real delegate chart.
    const webTgz = await packChart('web', '1.0.0', {
      'Chart.yaml': 'apiVersion: v2\nname: web\nversion: 1.0.0\n',
      'values.yaml': 'image: { repository: docker.io/acme/web, tag: "1.0" }\n',
      'templates/web.yaml': deployment('web', '"{{ .Values.image.repository }}:{{ .Values.image.tag }}"'),
    });
    const repoFiles = { 'web-1.0.0.tgz': webTgz, 'harness-delegate-ng-1.0.32.tgz': DELEGATE };
    const entries = Object.entries(repoFiles).map(([f, src]) => {
      const bytes = readFileSync(src);
      writeFileSync(join(root, 'repo', f), bytes);
      const [, name, version] = /^(.*)-(\d.*)\.tgz$/.exec(f)!;
      return { name: name!, version: version!, url: f, digest: sha(bytes) };
    });
    writeFileSync(join(root, 'repo', 'index.yaml'), repoIndex(entries));
    // A repository whose index disagrees with the archive, and one serving a ../ archive.
    writeFileSync(join(root, 'bad', 'index.yaml'), repoIndex([{ ...entries[0]!, url: '../repo/web-1.0.0.tgz', digest: sha(Buffer.from('not this')) }]));
    const evil = gzipSync(Buffer.concat([tarFile('evil/Chart.yaml', Buffer.from('apiVersion: v2\nname: evil\nversion: 0.1.0\n')), tarFile('evil/../../../escaped.yaml', Buffer.from('kind: Secret\n')), TAR_END]));
    writeFileSync(join(root, 'evil', 'evil-0.1.0.tgz'), evil);
    writeFileSync(join(root, 'evil', 'index.yaml'), repoIndex([{ name: 'evil', version: '0.1.0', url: 'evil-0.1.0.tgz', digest: sha(evil) }]));

    // OCI: db under other/ (image annotation for its migration job), the umbrella under apps/.
    const db = await packChart('db', '2.0.0', {
      'Chart.yaml': 'apiVersion: v2\nname: db\nversion: 2.0.0\nannotations:\n  helm.sh/images: |\n    - name: migrate\n      image: docker.io/acme/db-migrate:1.0\n',
      'values.yaml': 'tag: "16"\n',
      'templates/db.yaml': deployment('db', '"docker.io/acme/db:{{ .Values.tag }}"'),
    });
    const umbrella = await packChart('umbrella', '0.1.0', {
      'Chart.yaml': [
        'apiVersion: v2',
        'name: umbrella',
        'version: 0.1.0',
        'appVersion: "3.2"',
        'dependencies:',
        `  - { name: web, version: ^1.0.0, repository: "${web.url}/repo", alias: frontend }`,
        `  - { name: db, version: 2.0.0, repository: "oci://${registry.host}/other" }`,
        '',
      ].join('\n'),
      'values.yaml': 'replicas: 1\ntoken: ""\n',
      'templates/app.yaml': deployment('umbrella', '"docker.io/acme/umbrella:{{ .Chart.AppVersion }}"', '{{ .Values.replicas }}'),
      'templates/secret.yaml': 'apiVersion: v1\nkind: Secret\nmetadata: { name: token }\nstringData: { token: {{ .Values.token | quote }} }\n',
    });
    for (const [file, path] of [
      [db, 'other'],
      [umbrella, 'apps'],
    ] as const) {
      const r = await helm(['push', file, `oci://${registry.host}/${path}`, '--plain-http']);
      if (path === 'apps') pushedUmbrella = /Digest: (sha256:[a-f0-9]{64})/.exec(r.stdout + r.stderr)![1]!;
    }
  });

  after(async () => {
    await web?.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function umbrellaSpec(dir: string, extra: string[] = []): string {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'web.yaml'), 'frontend:\n  image:\n    tag: "1.0"\nreplicas: 2\n');
    writeFileSync(join(dir, 'enclave.yaml'), 'frontend:\n  image:\n    tag: "2.0"\n');
    return spec(dir, [
      'discoverImages: true',
      'charts:',
      `  - oci: oci://${registry.host}/apps/umbrella`,
      '    version: 0.1.0',
      '    releaseName: shop',
      '    namespace: shop-ns',
      '    values: [web.yaml, enclave.yaml]',
      '    set: { replicas: 3, token: "s3cret-T0ken" }',
      ...extra,
    ]);
  }

  test('an umbrella chart from OCI with unvendored dependencies packs with helm 4: images found, values carried, chart renders offline from the layout', async () => {
    const dir = join(work, 'umbrella');
    const bundle = join(dir, 'shop.tar');
    const r = await pack(umbrellaSpec(dir), bundle);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const summary = summaryOf(r);
    assert.equal(summary.charts, 1);
    assert.equal(summary.images, 4);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('s3cret-T0ken'), 'a set value never appears in the output');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('partial')), []);
    assert.deepEqual(leftovers(), [], 'the work folder is removed');

    const verified = await airlock(['verify', bundle, '--key', join(work, 'airlock.pub')]);
    assert.equal(verified.code, 0, verified.stderr);

    // inspect --json: the chart, and each image's chart.
    const index = await indexOf(bundle);
    assert.equal(index.charts.length, 1);
    const chart = index.charts[0]!;
    assert.deepEqual(
      { name: chart.name, version: chart.version, releaseName: chart.releaseName, namespace: chart.namespace, gitops: chart.gitops, values: chart.values, manifests: chart.manifests },
      { name: 'umbrella', version: '0.1.0', releaseName: 'shop', namespace: 'shop-ns', gitops: 'rendered', values: 'charts/shop/values.yaml', manifests: 'manifests/shop/' },
    );
    assert.notEqual(chart.digest, pushedUmbrella, 'completed with its dependencies: packed again');
    assert.match(chart.source, new RegExp(`${registry.host}/apps/umbrella:0.1.0`));
    assert.deepEqual(chart.images.sort(), ['docker.io/acme/db-migrate:1.0', 'docker.io/acme/db:16', 'docker.io/acme/umbrella:3.2', 'docker.io/acme/web:2.0']);
    assert.deepEqual(
      index.images.map((i) => [i.ref, i.charts]).sort(),
      [
        ['docker.io/acme/db-migrate:1.0', ['shop']],
        ['docker.io/acme/db:16', ['shop']],
        ['docker.io/acme/umbrella:3.2', ['shop']],
        ['docker.io/acme/web:2.0', ['shop']],
      ],
    );
    const text = await airlock(['inspect', bundle]);
    assert.match(text.stdout, /charts \(1\):\n {2}umbrella 0\.1\.0 {2}release shop {2}namespace shop-ns {2}gitops rendered {2}sha256:[a-f0-9]{64}/);
    assert.match(text.stdout, /docker\.io\/acme\/web:2\.0 {2}sha256:\S+ {2}linux\/amd64 {2}charts: shop/);

    // The layout: the chart by name, its blob a chart archive helm renders offline with the carried values.
    const out = join(dir, 'x');
    mkdirSync(out);
    await run('tar', ['-xf', bundle, '-C', out]);
    const layout = JSON.parse(readFileSync(join(out, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    const named = layout.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === 'charts/umbrella:0.1.0');
    assert.equal(named?.digest, chart.digest);
    const manifest = JSON.parse(readFileSync(join(out, 'oci', 'blobs', 'sha256', chart.digest.slice(7)), 'utf8')) as { config: { mediaType: string }; layers: { mediaType: string; digest: string }[] };
    assert.equal(manifest.config.mediaType, 'application/vnd.cncf.helm.config.v1+json');
    assert.equal(manifest.layers[0]!.mediaType, 'application/vnd.cncf.helm.chart.content.v1.tar+gzip');
    const chartDir = join(dir, 'chart');
    mkdirSync(chartDir);
    await run('tar', ['-xzf', join(out, 'oci', 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7)), '-C', chartDir]);
    const values = readFileSync(join(out, 'charts', 'shop', 'values.yaml'), 'utf8');
    assert.match(values, /tag: "2\.0"/, 'values files merged in order');
    assert.match(values, /replicas: 3/, 'set wins over the values files');
    const offline = { HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' };
    const rendered = (await helm(['template', 'shop', join(chartDir, 'umbrella'), '--namespace', 'shop-ns', '--include-crds', '--skip-tests', '-f', join(out, 'charts', 'shop', 'values.yaml')], offline)).stdout;
    // What the bundle carries under manifests/shop/ is exactly what helm renders from the carried chart and values.
    const files = index.entries.filter((e) => e.path.startsWith('manifests/shop/')).map((e) => e.path);
    assert.deepEqual(files.sort(), [
      'manifests/shop/umbrella/charts/db/templates/db.yaml',
      'manifests/shop/umbrella/charts/frontend/templates/web.yaml',
      'manifests/shop/umbrella/templates/app.yaml',
      'manifests/shop/umbrella/templates/secret.yaml',
    ]);
    for (const f of files) assert.ok(rendered.includes(readFileSync(join(out, f), 'utf8').trim()), `${f} is in helm's render`);
    assert.match(readFileSync(join(out, 'manifests/shop/umbrella/templates/app.yaml'), 'utf8'), /replicas: 3\n[\s\S]*namespace: shop-ns|namespace: shop-ns[\s\S]*replicas: 3/);
  });

  test('the same spec packed again, with helm 3: the same chart digest and the same rendered bytes', async () => {
    const dir = join(work, 'twice');
    const file = umbrellaSpec(dir);
    const a = await pack(file, join(dir, 'a.tar'));
    const b = await pack(file, join(dir, 'b.tar'), ['--helm', helm3()]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const [ia, ib] = [await indexOf(join(dir, 'a.tar')), await indexOf(join(dir, 'b.tar'))];
    assert.equal(ia.charts[0]!.digest, ib.charts[0]!.digest);
    const rendered = (i: BundleIndex) => i.entries.filter((e) => !e.path.startsWith('oci/index.json')).map((e) => `${e.path} ${e.sha256}`);
    assert.deepEqual(rendered(ib), rendered(ia), 'helm 3.17.2 and helm 4.1.4 render these charts to the same bytes');
  });

  test('the real delegate chart 1.0.32 from an HTTPS chart repository: its delegate and upgrader images are packed', async (t) => {
    const dir = join(work, 'delegate');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'enclave.yaml'), 'managerEndpoint: https://harness.enclave.test\naccountId: abcdEFGH1234\ndelegateToken: dG9rZW4=\nreplicas: 2\ndelegateName: enclave-delegate\n');
    const file = spec(dir, ['discoverImages: true', 'charts:', `  - { repo: "${web.url}/repo", name: harness-delegate-ng, version: 1.0.32, releaseName: delegate, values: [enclave.yaml], set: { upgrader.enabled: true } }`]);
    const bundle = join(dir, 'delegate.tar');
    const started = performance.now();
    const r = await pack(file, bundle);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(r.code, 0, r.stderr + r.stdout);
    t.diagnostic(`delegate pack: ${seconds.toFixed(2)} s wall (CLI start included; airlock says ${summaryOf(r).seconds} s), bundle ${statSync(bundle).size} bytes`);
    const index = await indexOf(bundle);
    assert.deepEqual(index.images.map((i) => [i.ref, i.charts]).sort(), DELEGATE_IMAGES.map((i) => [i, ['delegate']]));
    assert.equal(index.charts[0]!.name, 'harness-delegate-ng');
    assert.equal(index.charts[0]!.namespace, 'delegate');
    const delegateSha = sha(readFileSync(DELEGATE));
    assert.ok(index.entries.some((e) => e.sha256 === delegateSha), 'the chart archive is carried with its original bytes');
    assert.equal((await airlock(['verify', bundle, '--key', join(work, 'airlock.pub')])).code, 0);
  });

  test('discoverImages off: chart images are not packed, and the warning names them; listed ones still record their chart', async () => {
    const dir = join(work, 'nodiscover');
    mkdirSync(dir, { recursive: true });
    const file = spec(dir, ['images: [us-docker.pkg.dev/gar-prod-setup/harness-public/harness/delegate:26.02.88404]', 'charts:', `  - { repo: "${web.url}/repo", name: harness-delegate-ng, version: 1.0.32, set: { upgrader.enabled: true, accountId: x, managerEndpoint: https://h.test, delegateToken: dA== } }`]);
    const r = await pack(file, join(dir, 'b.tar'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /1 image\(s\) the charts deploy are not in images or imageLists.*harness\/upgrader:latest \(harness-delegate-ng\)/);
    const index = await indexOf(join(dir, 'b.tar'));
    assert.deepEqual(index.images.map((i) => [i.ref, i.charts]), [[DELEGATE_IMAGES[0], ['harness-delegate-ng']]]);
  });

  test('refused before anything is written: a digest mismatch and a ../ archive (exit 3), no helm and a release name clash (exit 2), an unreachable git chart source (exit 4)', async () => {
    const dir = join(work, 'refused');
    mkdirSync(join(dir, 'deploy', 'shop'), { recursive: true });
    writeFileSync(join(dir, 'deploy', 'shop', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n');
    const cases: [string, string[], number, RegExp, string[]?][] = [
      ['bad', ['charts:', `  - { repo: "${web.url}/bad", name: web, version: 1.0.0 }`], 3, /sha256 .* the repository index says/],
      ['evil', ['charts:', `  - { repo: "${web.url}/evil", name: evil, version: 0.1.0 }`], 3, /climbs out/],
      ['nohelm', ['charts:', `  - { repo: "${web.url}/repo", name: web, version: 1.0.0 }`], 2, /the spec has charts: --helm \/nonexistent\/helm: not an executable file/, ['--helm', '/nonexistent/helm']],
      ['git', ['charts:', '  - { git: { url: "https://127.0.0.1:9/c.git", ref: v1 } }'], 4, /chart git \(.*airlock\.yaml:\d+\) https:\/\/127\.0\.0\.1:9\/c\.git: connection refused/],
      ['clash', ['manifests: [{ path: ./deploy/shop }]', 'charts:', `  - { repo: "${web.url}/repo", name: web, version: 1.0.0, releaseName: shop }`], 2, /release name \\?"shop\\?" is also the name of a manifests source/],
    ];
    for (const [name, lines, code, message, extra] of cases) {
      const sub = join(dir, name);
      const file = spec(sub, lines.map((l) => l.replace('./deploy', '../deploy')));
      const r = await pack(file, join(sub, 'out.tar'), extra);
      assert.equal(r.code, code, `${name}: ${r.stderr}`);
      assert.match(r.stdout + r.stderr, message, name);
      assert.deepEqual(readdirSync(sub), ['airlock.yaml'], `${name}: no bundle, no partial file`);
      assert.deepEqual(leftovers(), [], `${name}: the work folder is removed`);
    }
    assert.deepEqual(
      readdirSync(work, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('escaped.yaml')),
      [],
    );
    assert.ok(!existsSync(join(tmpdir(), 'escaped.yaml')));
  });

  test('no helm on PATH: exit 2 saying how to get one', async () => {
    const dir = join(work, 'nopath');
    const file = spec(dir, ['charts:', `  - { repo: "${web.url}/repo", name: web, version: 1.0.0 }`]);
    const r = await airlock(['pack', '-f', file, '-o', join(dir, 'b.tar'), '--key', join(work, 'airlock.key')], { env: { ...env(), PATH: '/nonexistent' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /helm not found on PATH/);
    assert.match(r.stderr, /--helm PATH/);
  });

  test('a merged values file renders exactly as helm renders the separate files and --set (helm 4 and helm 3)', async () => {
    const dir = join(work, 'merge');
    const chart = writeTree(join(dir, 'echo'), {
      'Chart.yaml': 'apiVersion: v2\nname: echo\nversion: 0.1.0\n',
      'values.yaml': 'keep: chart\nlist: [1, 2]\nmap: { a: 1, b: 2 }\n',
      'templates/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\ndata: { v: {{ .Values | toJson | quote }} }\n',
    });
    writeTree(dir, {
      'a.yaml': 'yes: on\nquoted: "yes"\noctal: 0755\nwhen: 2001-12-14\nmap: { a: 10, c: { d: 1 } }\nlist: [9]\nbig: 1000000\nfloat: 1.10\nanchor: &x { k: v }\nalias: *x\n',
      'b.yaml': 'map: { c: { e: 2 }, b: null }\nlist: []\n',
    });
    const set = { 'map.c.f': '1.10', s: 'no', t: '0x10', 'n.deep[1]': true };
    const e = join(dir, 'airlock.yaml');
    writeFileSync(e, `name: m\nversion: 1\ndiscoverImages: true\ncharts:\n  - path: ./echo\n    values: [a.yaml, b.yaml]\n    set: ${JSON.stringify(set)}\n`);
    for (const binary of [helm4(), helm3()]) {
      const r = await pack(e, join(dir, 'm.tar'), ['--helm', binary]);
      assert.equal(r.code, 0, r.stderr);
      const x = join(dir, 'x');
      rmSync(x, { recursive: true, force: true });
      mkdirSync(x);
      await run('tar', ['-xf', join(dir, 'm.tar'), '-C', x]);
      rmSync(join(dir, 'm.tar'));
      const carried = readFileSync(join(x, 'manifests', 'echo', 'echo', 'templates', 'cm.yaml'), 'utf8');
      const direct = (await run(binary, ['template', 'echo', chart, '-f', join(dir, 'a.yaml'), '-f', join(dir, 'b.yaml'), '--set-string', 'map.c.f=1.10,s=no,t=0x10', '--set', 'n.deep[1]=true'], { env: helmEnv })).stdout;
      assert.ok(direct.includes(carried.trim()), `${binary}: the carried render is what helm makes of the separate files:\n${carried}\n---\n${direct}`);
      assert.match(carried, /\\"quoted\\":\\"yes\\"/);
    }
  });
});
