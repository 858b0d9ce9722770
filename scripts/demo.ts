/**
 * The demo, on local services it starts (nothing leaves this machine), through
 * the real airlock CLI:
 *
 *   1. a "public" source registry holding synthetic images under the real names
 *      of Harness SMP 0.44.1's official image list (201 references), and an
 *      "enclave" registry that speaks HTTPS with its own CA and token auth;
 *   2. airlock keygen, then airlock pack of a spec naming that image list, a
 *      small manifest tree (whose images are discovered) and the real Harness
 *      delegate chart 1.0.32 from a local HTTPS chart repository (nginx with the
 *      demo's own CA) with enclave values, rendered by the real helm, whose
 *      images are found in the render; images pulled through --registry-mirror,
 *      all into one signed bundle;
 *   3. airlock inspect and airlock verify of the bundle;
 *   4. airlock load into the enclave registry (verifying while it uploads),
 *      images and the chart (at charts/harness-delegate-ng:1.0.32), then the
 *      same load again, which finds everything present;
 *   5. skopeo, a client we did not write, checks digests in the enclave;
 *   6. airlock load --git commits the manifests to the enclave's git server
 *      (git-http-backend behind nginx, HTTPS with its own CA, Basic auth) as a
 *      kustomize base pinned by digest on `dev`, the delegate as a Flux
 *      OCIRepository (the chart by digest) and HelmRelease (the enclave values,
 *      post-renderer pins of its images by digest) with its render beside it
 *      for review, and airlock promote creates `prod` from it with a starter
 *      overlay; kubectl kustomize (the project's own kubectl, .tools/bin/)
 *      renders prod with internal, digest-pinned images only.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { formatReference } from '../shared/oci/reference.ts';
import { mergeImages, readImageList } from '../packer/images.ts';
import { generateImages, pushImages } from '../test/services/fixtures.ts';
import { startRegistry } from '../test/services/registry.ts';
import { createTestCA } from '../test/services/ca.ts';
import { startChartRepository } from '../test/services/chartRepository.ts';
import { startGitServer } from '../test/services/gitServer.ts';
import { run as exec, runBytes } from '../test/services/exec.ts';
import { checkoutBranch } from './demo-checkout.ts';
import { skopeoFlags } from '../test/services/skopeo.ts';
import { helm4, kubectl } from '../test/services/tools.ts';

const root = join(import.meta.dirname, '..');
const work = join(root, '.tmp', 'demo');
const say = (s: string) => process.stdout.write(`${s}\n`);
const PASSWORD = 'demo password';

/**
 * Run the airlock CLI (asynchronously: the token issuer of the enclave
 * registry runs in this process and must keep answering) and collect its
 * output; stop the demo when it fails.
 */
function run(args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'airlock.ts'), ...args], {
      cwd: work,
      env: { ...process.env, AIRLOCK_PASSWORD: PASSWORD, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ stdout, stderr: '' }) : reject(new Error(`airlock ${args[0]} exited ${code}`))));
  });
}

/** Show the command and its output (the last `tail` lines, when given). */
async function airlock(args: string[], env: Record<string, string> = {}, tail?: number): Promise<void> {
  say(`\n$ airlock ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}${tail ? ` | tail -${tail}` : ''}`);
  const { stdout } = await run(args, env);
  const lines = stdout.trimEnd().split('\n');
  say((tail ? lines.slice(-tail) : lines).join('\n'));
}

const harnessFixtures = join(root, '..', 'shared', 'fixtures', 'harness');
const harnessList = join(harnessFixtures, 'images.txt');
/** The real Harness delegate chart and the images it renders (synthetic here, under their real names). */
const DELEGATE_CHART = join(harnessFixtures, 'delegate', 'harness-delegate-ng-1.0.32.tgz');
const DELEGATE_IMAGES = [
  { repository: 'gar-prod-setup/harness-public/harness/delegate', tag: '26.02.88404' },
  { repository: 'gar-prod-setup/harness-public/harness/upgrader', tag: 'latest' },
];
const refs = mergeImages(await readImageList(harnessList)).map((image) => image.reference);
say(`Harness SMP 0.44.1 image list: ${refs.length} distinct references`);

await rm(work, { recursive: true, force: true });
await mkdir(join(work, 'deploy'), { recursive: true });
const source = await startRegistry();
const enclave = await startRegistry({ auth: 'token', tls: true });
const gitServer = await startGitServer();
// The chart repository's CA and server keys live outside .tmp/demo and go when the demo ends: it leaves no secret behind.
const chartPki = await mkdtemp(join(tmpdir(), 'airlock-demo-pki-'));
const chartCA = await createTestCA(chartPki);
const chartRepo = await startChartRepository({ dir: join(work, 'chart-repo'), tls: chartCA, charts: [{ archive: DELEGATE_CHART, name: 'harness-delegate-ng', version: '1.0.32' }] });
say(`source registry (stands in for docker.io, registry.k8s.io and us-docker.pkg.dev): ${source.url}`);
say(`Helm chart repository (nginx, HTTPS, the demo's own CA) with the real harness-delegate-ng 1.0.32: ${chartRepo.url}`);
say(`enclave registry (HTTPS, own CA, token auth): ${enclave.url}`);
say(`enclave git server (git-http-backend behind nginx, HTTPS, own CA, Basic auth): ${gitServer.url('enclave-apps')}`);

try {
  say('\n1. publishing synthetic images under the real names (shared base layers, like real images)...');
  const images = await generateImages({
    seed: 44,
    baseLayerSize: 512 * 1024,
    images: [...refs, ...DELEGATE_IMAGES].map((r) => ({ repository: r.repository, tag: r.tag!, layers: 3, layerSize: 96 * 1024, sharedBaseLayers: 2 })),
  });
  await pushImages(source.url, images, { concurrency: 8 });

  say('\n2. the connected side: a key pair, a spec, one signed bundle');
  await copyFile(harnessList, join(work, 'images.txt'));
  const [a, b] = [refs[0]!, refs[1]!];
  await writeFile(
    join(work, 'deploy', 'platform.yaml'),
    [a, b]
      .map((r, i) =>
        [
          'apiVersion: apps/v1',
          'kind: Deployment',
          `metadata: { name: service-${i} }`,
          'spec:',
          '  template:',
          '    spec:',
          '      containers:',
          `        - { name: app, image: "${formatReference(r)}" }`,
        ].join('\n'),
      )
      .join('\n---\n') + '\n',
  );
  // The enclave's delegate values: no token in git (the cluster holds it in a Secret).
  await writeFile(
    join(work, 'delegate-enclave.yaml'),
    'managerEndpoint: https://harness.enclave.example\naccountId: ENCLAVEacct0001\nreplicas: 2\nexistingDelegateToken: delegate-token   # a Secret created in the cluster\n',
  );
  await writeFile(
    join(work, 'airlock.yaml'),
    [
      'name: harness',
      'version: 0.44.1',
      'platforms: [linux/amd64]',
      'imageLists: [images.txt]',
      'discoverImages: true',
      'manifests:',
      '  - path: ./deploy',
      'charts:',
      `  - repo: ${chartRepo.url}`,
      '    name: harness-delegate-ng',
      '    version: 1.0.32',
      '    releaseName: delegate',
      '    namespace: harness-delegate-ng',
      '    values: [delegate-enclave.yaml]',
      '    gitops: helmrelease',
      '',
    ].join('\n'),
  );
  await copyFile(chartCA.caCert, join(work, 'chart-repo-ca.pem'));
  say(`\n$ cat airlock.yaml delegate-enclave.yaml\n${(await readFile(join(work, 'airlock.yaml'), 'utf8')).trimEnd()}\n${(await readFile(join(work, 'delegate-enclave.yaml'), 'utf8')).trimEnd()}`);
  await airlock(['keygen', '--out-dir', 'keys']);
  say(`   (keys/airlock.key is encrypted with the demo's password "${PASSWORD}", given to every command here in AIRLOCK_PASSWORD)`);
  const mirrors = ['docker.io', 'registry.k8s.io', 'us-docker.pkg.dev'].flatMap((r) => ['--registry-mirror', `${r}=${source.url}`]);
  const packStarted = performance.now();
  await airlock(['pack', '-f', 'airlock.yaml', '-o', 'harness-0.44.1.tar', '--key', 'keys/airlock.key', ...mirrors, '--ca-file', 'chart-repo-ca.pem', '--helm', helm4()]);
  say(`   (pack: ${((performance.now() - packStarted) / 1000).toFixed(1)} s wall, bundle ${(statSync(join(work, 'harness-0.44.1.tar')).size / 2 ** 20).toFixed(1)} MiB)`);

  say('\n3. anyone can look; only the public key says it is genuine');
  const inspect = await run(['inspect', 'harness-0.44.1.tar']);
  const inspectLines = inspect.stdout.split('\n');
  const chartsAt = inspectLines.findIndex((l) => l.startsWith('charts ('));
  say(`\n$ airlock inspect harness-0.44.1.tar | head -8\n${inspectLines.slice(0, 8).join('\n')}\n   ...`);
  say(`\n$ airlock inspect harness-0.44.1.tar | grep -A1 '^charts'\n${inspectLines.slice(chartsAt, chartsAt + 2).join('\n')}`);
  if (chartsAt < 0) process.exitCode = 1;
  say(`\n$ airlock inspect harness-0.44.1.tar | grep 'charts: delegate'\n${inspectLines.filter((l) => l.endsWith('charts: delegate')).join('\n')}`);
  await airlock(['verify', 'harness-0.44.1.tar', '--key', 'keys/airlock.pub']);

  say('\n4. the enclave side: load into the enclave registry (HTTPS with its CA, token auth), twice');
  const loadArgs = ['load', 'harness-0.44.1.tar', '--key', 'keys/airlock.pub', '--registry', enclave.host, '--ca-file', enclave.caFile!, '--registry-username', enclave.username!, '--registry-password-env', 'ENCLAVE_PASSWORD'];
  const loadEnv = { ENCLAVE_PASSWORD: enclave.password! };
  await airlock(loadArgs, loadEnv, 3);
  await airlock(loadArgs, loadEnv, 3);

  say('\n5. skopeo (not airlock) checks digests in the enclave:');
  for (const ref of refs.slice(0, 3).concat(refs.slice(-2))) {
    const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(enclave), `docker://${enclave.host}/${ref.repository}:${ref.tag}`]);
    const digest = 'sha256:' + createHash('sha256').update(raw).digest('hex');
    const expected = images.find((i) => i.repository === ref.repository && i.tag === ref.tag)!.digest;
    say(`   ${digest === expected ? 'ok  ' : 'FAIL'} ${formatReference(ref)} -> ${enclave.host}/${ref.repository}:${ref.tag} ${digest.slice(0, 19)}`);
    if (digest !== expected) process.exitCode = 1;
  }
  say('\n6. GitOps: the manifests as a kustomize base pinned by digest, on dev; then promote to prod');
  await gitServer.createRepo('enclave-apps', { files: { 'README.md': 'Applications of the enclave, deployed by Flux / Argo CD from the environment branches.\n' } });
  const enclaveCA = join(work, 'enclave-ca.pem');
  await writeFile(enclaveCA, (await readFile(enclave.caFile!, 'utf8')) + (await readFile(gitServer.caFile, 'utf8')));
  const gitArgs = ['--git', gitServer.url('enclave-apps'), '--git-username', gitServer.username, '--git-password-env', 'GIT_PASSWORD', '--ca-file', enclaveCA];
  const gitEnv = { ...loadEnv, GIT_PASSWORD: gitServer.password };
  await airlock([...loadArgs.filter((a, i, all) => a !== '--ca-file' && all[i - 1] !== '--ca-file'), ...gitArgs], gitEnv, 2);
  await airlock(['promote', '--to', 'prod', ...gitArgs], gitEnv);
  const checkout = join(work, 'enclave-apps');
  await checkoutBranch({ url: gitServer.url('enclave-apps'), branch: 'prod', dir: checkout, username: gitServer.username, password: gitServer.password, caFile: gitServer.caFile });
  say(`\n$ git log --oneline prod\n${(await exec('git', ['-C', checkout, 'log', '--oneline'])).stdout.trimEnd()}`);
  const kustomization = await readFile(join(checkout, 'harness', 'base', 'kustomization.yaml'), 'utf8');
  say(`\n$ head -12 harness/base/kustomization.yaml\n${kustomization.split('\n').slice(0, 12).join('\n')}\n   ...`);
  const rendered = await runBytes(kubectl(), ['kustomize', join(checkout, 'harness', 'overlays', 'prod')]);
  const used = [...rendered.toString().matchAll(/image: (\S+)/g)].map((m) => m[1]!);
  say(`\n$ kubectl kustomize harness/overlays/prod | grep image:\n${used.map((i) => `   image: ${i}`).join('\n')}`);
  if (used.length === 0 || used.some((i) => !i.startsWith(`${enclave.host}/`) || !/@sha256:[0-9a-f]{64}$/.test(i))) process.exitCode = 1;

  say('\n7. the delegate chart in git: Flux installs it from the enclave registry, its images pinned by digest');
  const docs = parseAllDocuments(rendered.toString()).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> });
  const ociRepository = docs.find((d) => d.kind === 'OCIRepository' && d.metadata.name === 'delegate');
  const helmRelease = docs.find((d) => d.kind === 'HelmRelease' && d.metadata.name === 'delegate');
  const chartRef = ociRepository?.spec.ref as { digest?: string } | undefined;
  const pins = (helmRelease?.spec.postRenderers as { kustomize: { images: { name: string; newName: string; digest: string }[] } }[] | undefined)?.[0]?.kustomize.images ?? [];
  say(`\n$ kubectl kustomize harness/overlays/prod | (OCIRepository delegate).spec`);
  say(`   url: ${String(ociRepository?.spec.url)}\n   ref: { digest: ${chartRef?.digest} }`);
  const chartRaw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(enclave), `docker://${enclave.host}/charts/harness-delegate-ng:1.0.32`]);
  const chartDigest = 'sha256:' + createHash('sha256').update(chartRaw).digest('hex');
  say(`   ${chartDigest === chartRef?.digest ? 'ok  ' : 'FAIL'} skopeo: ${enclave.host}/charts/harness-delegate-ng:1.0.32 is ${chartDigest.slice(0, 19)}`);
  if (chartDigest !== chartRef?.digest) process.exitCode = 1;
  say(`\n$ kubectl kustomize harness/overlays/prod | (HelmRelease delegate).spec.values, .postRenderers[0].kustomize.images`);
  say(`   values: ${JSON.stringify(helmRelease?.spec.values)}`);
  for (const p of pins) say(`   - name: ${p.name}\n     newName: ${p.newName}\n     digest: ${p.digest}`);
  for (const want of DELEGATE_IMAGES) {
    const synthetic = images.find((i) => i.repository === want.repository && i.tag === want.tag)!;
    const pin = pins.find((p) => p.name === `us-docker.pkg.dev/${want.repository}`);
    if (pin?.newName !== `${enclave.host}/${want.repository}` || pin.digest !== synthetic.digest) {
      say(`   FAIL no pin of us-docker.pkg.dev/${want.repository} to ${enclave.host}/${want.repository}@${synthetic.digest}`);
      process.exitCode = 1;
    }
  }
  const renderedDeployment = await readFile(join(checkout, 'harness', 'rendered', 'delegate', 'harness-delegate-ng', 'templates', 'deployment.yaml'), 'utf8');
  say(`\n$ grep -E 'replicas|image:' harness/rendered/delegate/harness-delegate-ng/templates/deployment.yaml   # the render, for review only\n${renderedDeployment
    .split('\n')
    .filter((l) => /^\s*(replicas|image):/.test(l))
    .join('\n')}`);
  say(`\nThe bundle, keys, spec and a checkout of prod stay in ${work} (try: tar -tvf ${join(work, 'harness-0.44.1.tar')} | head).`);
} finally {
  await source.stop();
  await enclave.stop();
  await gitServer.stop();
  await chartRepo.stop();
  await rm(chartPki, { recursive: true, force: true });
}
