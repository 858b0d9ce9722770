/**
 * The demo, on local services it starts (nothing leaves this machine):
 *
 *   1. a "public" source registry holding synthetic images under the real names
 *      of Harness SMP 0.44.1's official image list (201 references);
 *   2. airlock's copy engine pulls all of them through a registry mirror
 *      (docker.io=..., registry.k8s.io=...) into one OCI image layout, every
 *      blob once, each image named by its full source reference;
 *   3. from that layout into an "enclave" registry that speaks HTTPS with its
 *      own CA and token auth, mapped as DESIGN.md §6 says
 *      (docker.io/harnesssecure/x:1 -> ENCLAVE/harnesssecure/x:1);
 *   4. skopeo, a client we did not write, checks digests on the far side.
 *
 * This grows into pack -> verify -> load -> git as the later issues land.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { copyGraph, CopySession } from '../shared/copy.ts';
import { Progress, formatBytes, progressListener } from '../shared/cli/progress.ts';
import { formatReference } from '../shared/oci/reference.ts';
import { mergeImages, readImageList } from '../packer/images.ts';
import { RegistryClient } from '../shared/registry/client.ts';
import { HttpTransport } from '../shared/registry/transport.ts';
import { LayoutStore } from '../shared/store/layout.ts';
import { RemoteStore } from '../shared/store/remote.ts';
import { generateImages, pushImages } from '../test/services/fixtures.ts';
import { startRegistry } from '../test/services/registry.ts';
import { runBytes } from '../test/services/exec.ts';
import { skopeoFlags } from '../test/services/skopeo.ts';

const root = join(import.meta.dirname, '..');
const work = join(root, '.tmp', 'demo');
const say = (s: string) => process.stdout.write(`${s}\n`);

const harnessList = join(root, '..', 'shared', 'fixtures', 'harness', 'images.txt');
const refs = mergeImages(await readImageList(harnessList)).map((image) => image.reference);
say(`Harness SMP 0.44.1 image list: ${refs.length} distinct references`);

await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const source = await startRegistry();
const enclave = await startRegistry({ auth: 'token', tls: true });
say(`source registry (stands in for docker.io and registry.k8s.io): ${source.url}`);
say(`enclave registry (HTTPS, own CA, token auth): ${enclave.url}`);

try {
  say('\n1. publishing synthetic images under the real names (shared base layers, like real images)...');
  const images = await generateImages({
    seed: 44,
    baseLayerSize: 512 * 1024,
    images: refs.map((r) => ({
      repository: r.repository,
      tag: r.tag!,
      layers: 3,
      layerSize: 96 * 1024,
      sharedBaseLayers: 2,
    })),
  });
  await pushImages(source.url, images, { concurrency: 8 });

  say('\n2. pulling all of them through the mirror into one OCI layout...');
  const mirrors = { 'docker.io': source.url, 'registry.k8s.io': source.url };
  const transport = new HttpTransport({ caFile: enclave.caFile });
  const layoutDir = join(work, 'layout');
  const layout = await LayoutStore.open(layoutDir);
  let started = performance.now();
  let progress = new Progress({});
  progress.phase('pull', { items: refs.length });
  const pullSession = new CopySession({ concurrency: 16, onEvent: progressListener(progress) });
  const clients = new Map<string, RegistryClient>();
  const clientFor = (registry: string) => {
    let c = clients.get(registry);
    if (!c) clients.set(registry, (c = new RegistryClient(registry, transport, { mirrors })));
    return c;
  };
  await Promise.all(
    refs.map(async (ref) => {
      const from = new RemoteStore(clientFor(ref.registry), ref.repository);
      const copied = await copyGraph(from, layout, await from.resolve(ref.tag!), { session: pullSession });
      await layout.tag(copied, formatReference(ref));
      progress.advance(0, 1);
    }),
  );
  progress.done({});
  const pullSeconds = (performance.now() - started) / 1000;
  const index = await layout.readIndex();
  say(`   ${index.manifests.length} images in ${layoutDir} in ${pullSeconds.toFixed(1)} s`);

  say('\n3. pushing the layout into the enclave registry (HTTPS with its CA, token auth)...');
  const target = new RegistryClient(enclave.host, transport, {
    credentials: () => ({ username: enclave.username!, password: enclave.password! }),
  });
  started = performance.now();
  let bytes = 0;
  progress = new Progress({});
  progress.phase('push', { items: refs.length });
  const listener = progressListener(progress);
  const pushSession = new CopySession({
    concurrency: 16,
    onEvent: (e) => {
      listener(e);
      if (e.type === 'blob-done') bytes += e.bytes;
    },
  });
  await Promise.all(
    refs.map(async (ref) => {
      const to = new RemoteStore(target, ref.repository);
      const copied = await copyGraph(layout, to, await layout.resolve(formatReference(ref)), { session: pushSession });
      await to.tag(copied, ref.tag!);
      progress.advance(0, 1);
    }),
  );
  progress.done({});
  say(`   uploaded ${formatBytes(bytes)} once each; shared layers were mounted across repositories`);
  say(`   in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  say('\n4. skopeo (not airlock) checks digests in the enclave:');
  for (const ref of refs.slice(0, 3).concat(refs.slice(-2))) {
    const raw = await runBytes('skopeo', [
      'inspect',
      '--raw',
      ...skopeoFlags(enclave),
      `docker://${enclave.host}/${ref.repository}:${ref.tag}`,
    ]);
    const digest = 'sha256:' + createHash('sha256').update(raw).digest('hex');
    const expected = images.find((i) => i.repository === ref.repository && i.tag === ref.tag)!.digest;
    say(`   ${digest === expected ? 'ok  ' : 'FAIL'} ${formatReference(ref)} -> ${enclave.host}/${ref.repository}:${ref.tag} ${digest.slice(0, 19)}`);
    if (digest !== expected) process.exitCode = 1;
  }
  await transport.close();
  say(`\nThe OCI layout stays in ${layoutDir} (try: skopeo inspect oci:${layoutDir}:${formatReference(refs[0]!)}).`);
} finally {
  await source.stop();
  await enclave.stop();
}
