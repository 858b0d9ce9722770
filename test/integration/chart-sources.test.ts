import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { fetchCharts, type ChartSourceSpec, type FetchedChart } from '../../packer/sources/charts/index.ts';
import { readHelmRepositories, type HelmRepository } from '../../packer/sources/charts/repositories.ts';
import { ExitCode, type AirlockError } from '../../shared/cli/errors.ts';
import { RegistryClient } from '../../shared/registry/client.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { FAST_RETRY } from '../helpers/retry.ts';
import { tarFile, TAR_END } from '../helpers/tar.ts';
import { createTestCA } from '../services/ca.ts';
import { run } from '../services/exec.ts';
import { startNginx, startStaticServer, type NginxService } from '../services/nginx.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * Chart sources against real servers: an HTTPS chart repository (nginx, a
 * test CA passed only as caFile) holding the real Harness delegate chart and
 * small generated charts, and docker-registry holding charts pushed by the
 * real helm. The umbrella chart's dependencies are not vendored: one comes
 * from the HTTPS repository, one from another OCI path, and that one lacks
 * its own dependency too.
 */
const HELM = process.env.AIRLOCK_TEST_HELM ?? join(REPO_ROOT, '.tools/bin/helm');
const DELEGATE = join(REPO_ROOT, '../shared/fixtures/harness/delegate/harness-delegate-ng-1.0.32.tgz');
const DELEGATE_SHA = '9ac1409c36885edf78edab2946dfca81add6d5a099476a6b9808a9b8e0e6e448';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const cm = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}-{{ .Chart.Version }}\ndata:\n  release: {{ .Release.Name }}\n`;

describe('chart sources', () => {
  let web: NginxService;
  let guarded: NginxService; // HTTPS, /private/ behind Basic auth
  let caFile: string;
  const password = 'chart-Pa55word';
  let registry: RegistryService;
  let transport: HttpTransport;
  let work: string;
  let root: string;
  let helmEnv: Record<string, string>;
  const pushed = new Map<string, { digest: string; config: string }>();
  const savedExtraCAs = process.env.NODE_EXTRA_CA_CERTS;
  const clients = new Map<string, RegistryClient>();

  const helm = (args: string[]) => run(HELM, args, { env: helmEnv, timeoutMs: 120_000 });

  /** A chart folder under `work/src`, packed with node-tar the way helm package lays it out (no dependency check). */
  async function chart(name: string, version: string, extra: string, deps?: { yaml: string; lock?: string }): Promise<string> {
    const dir = join(work, 'src', `${name}-${version}`, name);
    mkdirSync(join(dir, 'templates'), { recursive: true });
    writeFileSync(join(dir, 'Chart.yaml'), `apiVersion: v2\nname: ${name}\nversion: ${version}\n${extra}${deps ? `dependencies:\n${deps.yaml}` : ''}`);
    if (deps?.lock) writeFileSync(join(dir, 'Chart.lock'), `dependencies:\n${deps.lock}digest: sha256:0000\ngenerated: "2026-01-01T00:00:00Z"\n`);
    writeFileSync(join(dir, 'values.yaml'), 'replicas: 1\n');
    writeFileSync(join(dir, 'templates', 'cm.yaml'), cm(name));
    const out = join(work, 'built', `${name}-${version}.tgz`);
    mkdirSync(join(work, 'built'), { recursive: true });
    await createTar({ gzip: true, file: out, cwd: join(dir, '..'), portable: true }, [name]);
    return out;
  }

  async function push(file: string, path: string): Promise<void> {
    const r = await helm(['push', file, `oci://${registry.host}/${path}`, '--plain-http']);
    const digest = /Digest: (sha256:[a-f0-9]{64})/.exec(r.stdout + r.stderr)?.[1];
    assert.ok(digest, `helm push printed a digest: ${r.stdout}${r.stderr}`);
    const name = /\/([^/]+)-[0-9][^/]*\.tgz$/.exec(file)![1]!;
    const version = /-([0-9][^/]*)\.tgz$/.exec(file)![1]!;
    const res = await fetch(`${registry.url}/v2/${path}/${name}/manifests/${version}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const manifest = (await res.json()) as { config: { digest: string } };
    pushed.set(`${path}/${name}:${version}`, { digest, config: manifest.config.digest });
  }

  function index(entries: { name: string; version: string; url: string; digest: string }[]): string {
    const by = new Map<string, string[]>();
    for (const e of entries) {
      const list = by.get(e.name) ?? [];
      list.push(`  - name: ${e.name}\n    version: ${e.version}\n    apiVersion: v2\n    digest: ${e.digest}\n    urls:\n      - ${e.url}\n`);
      by.set(e.name, list);
    }
    return `apiVersion: v1\nentries:\n${[...by].map(([n, l]) => `  ${n}:\n${l.join('')}`).join('')}generated: "2026-01-01T00:00:00Z"\n`;
  }

  function fetchWith(
    sources: ChartSourceSpec[],
    workDir = mkdtempSync(join(work, 'pack-')),
    extra: { transport?: HttpTransport; repositories?: HelmRepository[] } = {},
  ): Promise<FetchedChart[]> {
    return fetchCharts(sources, {
      workDir,
      transport: extra.transport ?? transport,
      repositories: extra.repositories ?? [],
      registryClient: (r) => {
        let c = clients.get(r);
        if (!c) clients.set(r, (c = new RegistryClient(r, transport, { plainHttp: true, retry: FAST_RETRY })));
        return c;
      },
    });
  }

  const tgzUnder = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('.tgz'));

  before(async () => {
    assert.ok(existsSync(HELM), `a real helm is needed at ${HELM} (set AIRLOCK_TEST_HELM, or run scripts/install-test-deps.sh)`);
    delete process.env.NODE_EXTRA_CA_CERTS;
    work = mkdtempSync(join(tmpdir(), 'airlock-charts-'));
    root = join(work, 'www');
    mkdirSync(join(root, 'repo', 'charts'), { recursive: true });
    for (const d of ['abs', 'bad', 'evil']) mkdirSync(join(root, d));
    helmEnv = {};
    for (const v of ['HELM_CONFIG_HOME', 'HELM_CACHE_HOME', 'HELM_DATA_HOME']) helmEnv[v] = join(work, 'helm', v);
    helmEnv.HELM_REGISTRY_CONFIG = join(work, 'helm', 'registry.json');

    const ca = await createTestCA(join(work, 'pki'));
    caFile = ca.caCert;
    web = await startStaticServer({ root, tls: ca });
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, (await run('htpasswd', ['-Bbn', 'reader', password])).stdout);
    guarded = await startNginx({
      root,
      tls: ca,
      locations: [`    location /private/ { alias ${root}/repo/; auth_basic "charts"; auth_basic_user_file ${htpasswd}; }`],
    });
    registry = await startRegistry();
    transport = new HttpTransport({ caFile: ca.caCert, retry: FAST_RETRY });

    // The HTTPS repository: the real delegate chart (relative URL), web in three versions, lib.
    const files: Record<string, string> = { 'harness-delegate-ng-1.0.32.tgz': DELEGATE };
    for (const v of ['1.0.0', '1.1.0', '2.0.0']) files[`web-${v}.tgz`] = await chart('web', v, 'description: the web tier\n');
    files['lib-0.1.0.tgz'] = await chart('lib', '0.1.0', '');
    const entries = Object.entries(files).map(([f, src]) => {
      const bytes = readFileSync(src);
      writeFileSync(join(root, 'repo', 'charts', f), bytes);
      const [, name, version] = /^(.*)-(\d.*)\.tgz$/.exec(f)!;
      return { name: name!, version: version!, url: `charts/${f}`, digest: sha(bytes) };
    });
    writeFileSync(join(root, 'repo', 'index.yaml'), index(entries));
    // Absolute URLs, into the other folder.
    writeFileSync(join(root, 'abs', 'index.yaml'), index(entries.map((e) => ({ ...e, url: `${web.url}/repo/${e.url}` }))));
    // An index whose digest disagrees with the archive.
    const web100 = entries.find((e) => e.name === 'web' && e.version === '1.0.0')!;
    writeFileSync(join(root, 'bad', 'index.yaml'), index([{ ...web100, url: `../repo/${web100.url}`, digest: sha(Buffer.from('something else')) }]));
    // A hostile chart whose digest is right.
    const evil = gzipSync(Buffer.concat([tarFile('evil/Chart.yaml', Buffer.from('apiVersion: v2\nname: evil\nversion: 0.1.0\n')), tarFile('evil/../../../escaped.yaml', Buffer.from('kind: Secret\n')), TAR_END]));
    writeFileSync(join(root, 'evil', 'evil-0.1.0.tgz'), evil);
    writeFileSync(join(root, 'evil', 'index.yaml'), index([{ name: 'evil', version: '0.1.0', url: 'evil-0.1.0.tgz', digest: sha(evil) }]));

    // OCI: the delegate as is; db (needs lib from the HTTPS repository, not vendored) under other/;
    // the umbrella (needs web from the HTTPS repository and db from other/) under apps/.
    await push(DELEGATE, 'charts');
    const db = await chart('db', '2.0.0', '', {
      yaml: `  - name: lib\n    version: ^0.1.0\n    repository: ${web.url}/repo\n`,
      lock: `  - name: lib\n    version: 0.1.0\n    repository: ${web.url}/repo\n`,
    });
    await push(db, 'other');
    const umbrella = await chart(
      'umbrella',
      '0.1.0',
      'kubeVersion: ">=1.27.0-0"\ndescription: An umbrella <for> tests & more\nappVersion: "3.2"\nmaintainers:\n  - name: Ops\n    email: ops@example.com\nannotations:\n  example.com/team: platform\n',
      {
        yaml: `  - name: web\n    version: ^1.0.0\n    repository: ${web.url}/repo\n    alias: frontend\n  - name: db\n    version: 2.0.0\n    repository: oci://${registry.host}/other\n    condition: db.enabled\n`,
        lock: `  - name: web\n    version: 1.0.0\n    repository: ${web.url}/repo\n  - name: db\n    version: 2.0.0\n    repository: oci://${registry.host}/other\n`,
      },
    );
    await push(umbrella, 'apps');
  });

  after(async () => {
    await transport?.close();
    await web?.stop();
    await guarded?.stop();
    await registry?.stop();
    if (savedExtraCAs !== undefined) process.env.NODE_EXTRA_CA_CERTS = savedExtraCAs;
    rmSync(work, { recursive: true, force: true });
  });

  test('repo: the real delegate chart, exact version, relative URL: original bytes, and the config helm push writes', async () => {
    const [c] = await fetchWith([{ kind: 'repo', repo: `${web.url}/repo`, name: 'harness-delegate-ng', version: '1.0.32' }]);
    assert.equal(c!.archive.sha256, DELEGATE_SHA);
    assert.deepEqual(readFileSync(c!.archive.file), readFileSync(DELEGATE));
    assert.equal(c!.repackaged, false);
    assert.deepEqual(c!.added, []);
    assert.equal(c!.artifact.layers[0]!.descriptor.digest, `sha256:${DELEGATE_SHA}`);
    assert.equal(c!.artifact.config.descriptor.digest, pushed.get('charts/harness-delegate-ng:1.0.32')!.config, 'same config blob as helm push');
    assert.ok(!('org.opencontainers.image.created' in (JSON.parse(c!.artifact.manifest.bytes.toString()) as { annotations: object }).annotations));
  });

  test('repo: version ranges pick the highest match; the lock-free range and absolute URLs', async () => {
    const want: [string, string][] = [
      ['^1.0.0', '1.1.0'],
      ['>=1.0, <2', '1.1.0'],
      ['~1.0', '1.0.0'],
      ['*', '2.0.0'],
      ['1.x', '1.1.0'],
    ];
    const got = await fetchWith(want.map(([version]) => ({ kind: 'repo', repo: `${web.url}/repo/`, name: 'web', version })));
    assert.deepEqual(
      got.map((c) => c.version),
      want.map(([, v]) => v),
    );
    const [abs] = await fetchWith([{ kind: 'repo', repo: `${web.url}/abs`, name: 'web', version: '>=1.1.0 <2' }]);
    assert.equal(abs!.version, '1.1.0');
    assert.equal(abs!.archive.sha256, sha(readFileSync(join(root, 'repo', 'charts', 'web-1.1.0.tgz'))));
    await assert.rejects(fetchWith([{ kind: 'repo', repo: `${web.url}/repo`, name: 'web', version: '>=3' }]), (err: AirlockError) => err.exitCode === ExitCode.Remote && /no version of web/.test(err.message));
  });

  test('repo: an archive that disagrees with the index digest is exit 3, and nothing is left behind', async () => {
    const workDir = mkdtempSync(join(work, 'bad-'));
    await assert.rejects(fetchWith([{ kind: 'repo', repo: `${web.url}/bad`, name: 'web', version: '1.0.0' }], workDir), (err: AirlockError) => {
      assert.equal(err.exitCode, ExitCode.Verification);
      assert.match(err.message, /sha256 .* the repository index says/);
      return true;
    });
    assert.deepEqual(tgzUnder(workDir), []);
  });

  test('a chart archive with ../ entries is exit 3 with nothing written outside, from a repository or a path', async () => {
    for (const source of [
      { kind: 'repo', repo: `${web.url}/evil`, name: 'evil', version: '0.1.0' },
      { kind: 'path', path: join(root, 'evil', 'evil-0.1.0.tgz') },
    ] as ChartSourceSpec[]) {
      const workDir = mkdtempSync(join(work, 'evil-'));
      await assert.rejects(fetchWith([source], workDir), (err: AirlockError) => err.exitCode === ExitCode.Verification && /climbs out/.test(err.message));
      const found = readdirSync(work, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('escaped.yaml'));
      assert.deepEqual(found, []);
      assert.ok(!existsSync(join(tmpdir(), 'escaped.yaml')));
    }
  });

  test('oci: a chart pushed by helm is pulled with the same manifest, config and layer digests', async () => {
    const [c] = await fetchWith([{ kind: 'oci', oci: `oci://${registry.host}/charts/harness-delegate-ng`, version: '1.0.32' }]);
    assert.equal(c!.repackaged, false);
    assert.equal(c!.artifact.manifest.descriptor.digest, pushed.get('charts/harness-delegate-ng:1.0.32')!.digest);
    assert.equal(c!.artifact.config.descriptor.digest, pushed.get('charts/harness-delegate-ng:1.0.32')!.config);
    assert.equal(c!.artifact.layers[0]!.descriptor.digest, `sha256:${DELEGATE_SHA}`);
    assert.equal(sha(readFileSync(c!.artifact.layers[0]!.file)), DELEGATE_SHA);
    // A range resolves against the repository's tags.
    const [r] = await fetchWith([{ kind: 'oci', oci: `oci://${registry.host}/charts/harness-delegate-ng`, version: '^1.0' }]);
    assert.equal(r!.version, '1.0.32');
  });

  test('an umbrella in OCI with unvendored dependencies (https repo, another OCI path, nested) is completed, renders, and packs the same bytes twice', async () => {
    const source: ChartSourceSpec = { kind: 'oci', oci: `oci://${registry.host}/apps/umbrella`, version: '0.1.0' };
    const [a] = await fetchWith([source]);
    const [b] = await fetchWith([source]);
    assert.equal(a!.repackaged, true);
    assert.deepEqual(a!.added.map((l) => l.split(':')[0]), ['charts/web-1.0.0.tgz', 'charts/db-2.0.0.tgz', 'charts/db-2.0.0.tgz > charts/lib-0.1.0.tgz']);
    assert.deepEqual(readdirSync(join(a!.dir, 'charts')).sort(), ['db-2.0.0.tgz', 'web-1.0.0.tgz'], 'Chart.lock wins over the highest match (1.1.0)');
    // Deterministic: the same bytes, the same artifact.
    assert.equal(a!.archive.sha256, b!.archive.sha256);
    assert.equal(a!.artifact.manifest.descriptor.digest, b!.artifact.manifest.descriptor.digest);
    assert.notEqual(a!.artifact.manifest.descriptor.digest, pushed.get('apps/umbrella:0.1.0')!.digest);
    // Chart.yaml is unchanged, so the config blob is the one helm push wrote (Go's escaping, field order, maintainers).
    assert.equal(a!.artifact.config.descriptor.digest, pushed.get('apps/umbrella:0.1.0')!.config);
    // The real helm renders the completed archive: every subchart, the nested one included.
    const out = (await helm(['template', 'rel', a!.archive.file])).stdout;
    for (const name of ['umbrella-0.1.0', 'web-1.0.0', 'db-2.0.0', 'lib-0.1.0']) assert.match(out, new RegExp(`name: ${name}\\b`));
    // The artifact's files hold what the descriptors say.
    for (const blob of [a!.artifact.config, ...a!.artifact.layers]) {
      assert.equal(`sha256:${sha(readFileSync(blob.file))}`, blob.descriptor.digest);
      assert.equal(statSync(blob.file).size, blob.descriptor.size);
    }
    // A chart that lacks nothing keeps its bytes: the completed archive as a path source.
    const [c] = await fetchWith([{ kind: 'path', path: a!.archive.file }]);
    assert.equal(c!.repackaged, false);
    assert.equal(c!.archive.sha256, a!.archive.sha256);
    assert.equal(c!.artifact.manifest.descriptor.digest, a!.artifact.manifest.descriptor.digest);
  });

  test('path: a chart folder is packed deterministically; a missing unvendored dependency with no repository is exit 2', async () => {
    const dir = join(work, 'src', 'web-1.0.0', 'web');
    const [a] = await fetchWith([{ kind: 'path', path: dir }]);
    const [b] = await fetchWith([{ kind: 'path', path: dir }]);
    assert.equal(a!.repackaged, true);
    assert.equal(a!.archive.sha256, b!.archive.sha256);
    const broken = join(work, 'src', 'broken', 'broken');
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, 'Chart.yaml'), 'apiVersion: v2\nname: broken\nversion: 0.1.0\ndependencies:\n  - name: gone\n    version: 1.0.0\n');
    await assert.rejects(fetchWith([{ kind: 'path', path: broken }]), (err: AirlockError) => err.exitCode === ExitCode.Usage && /gone.*not in charts/.test(err.message));
  });

  test("repositories.yaml: Basic credentials and the repository's own caFile, for that repository only", async () => {
    const repo = `${guarded.url}/private`;
    const config = join(work, 'repositories.yaml');
    writeFileSync(
      config,
      `apiVersion: ""\nrepositories:\n- name: private\n  url: ${repo}/\n  username: reader\n  password: ${password}\n  caFile: ${caFile}\n- name: other\n  url: https://charts.example.com\n`,
    );
    const repositories = readHelmRepositories(config);
    // A transport that does not trust the test CA: only the repository's caFile makes TLS work.
    const untrusting = new HttpTransport({ retry: FAST_RETRY });
    try {
      const [c] = await fetchWith([{ kind: 'repo', repo, name: 'harness-delegate-ng', version: '1.0.32' }], undefined, { transport: untrusting, repositories });
      assert.equal(c!.archive.sha256, DELEGATE_SHA);
      // Without the entry: refused (exit 4), and the password appears in no message.
      await assert.rejects(fetchWith([{ kind: 'repo', repo, name: 'web', version: '1.0.0' }], undefined, { repositories: [] }), (err: AirlockError) => {
        assert.equal(err.exitCode, ExitCode.Remote);
        assert.match(err.message, /HTTP 401/);
        assert.ok(!`${err.message} ${err.hint}`.includes(password));
        return true;
      });
    } finally {
      await untrusting.close();
    }
  });
});
