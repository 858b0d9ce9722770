import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startRegistry } from '../services/registry.ts';
import { run, runBytes } from '../services/exec.ts';
import { skopeoFlags } from '../services/skopeo.ts';

const LAYER = 300 * 1000 * 1000;

test('a 300 MB layer streams registry -> layout -> registry under a 64 MB heap', { timeout: 300_000 }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'airlock-big-'));
  const src = await startRegistry();
  const dst = await startRegistry();
  t.after(async () => {
    await src.stop();
    await dst.stop();
    await rm(work, { recursive: true, force: true });
  });
  const [img] = await pushImages(
    src.url,
    await generateImages({ seed: 300, images: [{ repository: 'big/layer', tag: 'v1', layers: 1, layerSize: LAYER }] }),
  );
  const layer = img!.blobs.find((b) => b.size > LAYER)!;
  assert.ok(layer, 'the image has the big layer');

  const child = await run(
    process.execPath,
    [
      '--max-old-space-size=64',
      '--import',
      'tsx',
      join(import.meta.dirname, 'helpers/copy-image.ts'),
      src.host,
      dst.host,
      'big/layer',
      'v1',
      join(work, 'layout'),
    ],
    { timeoutMs: 240_000, allowFail: true },
  );
  assert.equal(child.code, 0, child.stderr);
  const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as { digest: string; peakRss: number; heapUsed: number };
  assert.equal(result.digest, img!.digest);
  assert.ok(result.heapUsed < 64 * 1024 * 1024);
  t.diagnostic(`peak RSS ${(result.peakRss / 1048576).toFixed(0)} MiB for a ${(layer.size / 1e6).toFixed(0)} MB layer`);
  // RSS stays far below the layer: nothing held whole (Node + tsx alone is ~100 MB).
  assert.ok(result.peakRss < 220 * 1024 * 1024, `peak RSS ${result.peakRss}`);

  assert.equal((await stat(join(work, 'layout/blobs/sha256', layer.digest.slice(7)))).size, layer.size);
  const raw = await runBytes('skopeo', ['inspect', '--raw', ...skopeoFlags(dst), `docker://${dst.host}/big/layer:v1`]);
  assert.equal('sha256:' + createHash('sha256').update(raw).digest('hex'), img!.digest);
  // One streaming PATCH for the big layer, as docker pushes it (still bounded memory, above), then the closing PUT.
  const patches = await dst.requests(/^PATCH \/v2\/big\/layer\/blobs\/uploads\//);
  assert.equal(patches.length, 1, `the upload used ${patches.length} PATCH requests`);
});
