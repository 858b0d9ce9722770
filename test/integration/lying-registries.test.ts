import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { LIE_CASES, lieFinding, tellLie, type LieWorld } from '../helpers/lies.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * pack and load against registries that lie (test/helpers/lies.ts): blobs
 * longer or shorter than their descriptors, bodies short of their own
 * Content-Length, a manifest GET that never ends, a redirect loop, a token
 * endpoint answering garbage, a target claiming a blob of another size.
 * Each ends with its exit code and a message naming the lie, in
 * --timeout-bounded time; pack writes no bundle; a one-off lie is retried past.
 */
const PASSWORD = 'lying registries';

describe('registries that lie', () => {
  let source: RegistryService;
  let world: LieWorld;

  before(async () => {
    const work = mkdtempSync(join(tmpdir(), 'airlock-lies-'));
    source = await startRegistry();
    const images = await generateImages({ seed: 7, images: [{ repository: 'harness/app', tag: '1.0', layers: 2, layerSize: 300_000 }] });
    await pushImages(source.url, images);
    const pair = generateKeyPair(PASSWORD);
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'airlock.pub'), pair.publicKeyPem);
    writeFileSync(join(work, 'airlock.yaml'), 'name: lies\nversion: 1.0.0\nimages:\n  - harness/app:1.0\n');
    const bigLayer = images[0]!.blobs.slice().sort((a, b) => b.size - a.size)[0]!.digest;
    world = { work, source, spec: join(work, 'airlock.yaml'), bundle: join(work, 'honest.tar'), key: join(work, 'airlock.key'), pub: join(work, 'airlock.pub'), password: PASSWORD, bigLayer };
    const packed = await airlock(['pack', '-f', world.spec, '-o', world.bundle, '--key', world.key, '--registry-mirror', `docker.io=${source.url}`], { env: { AIRLOCK_PASSWORD: PASSWORD } });
    assert.equal(packed.code, 0, packed.stderr);
  });

  after(async () => {
    await source?.stop();
    if (world) rmSync(world.work, { recursive: true, force: true });
  });

  test('each lie ends with its exit code and names what was wrong', async () => {
    const limit = pLimit(2);
    const findings = await Promise.all(LIE_CASES.map((c, i) => limit(async () => lieFinding(c, await tellLie(world, c, i)))));
    assert.deepEqual(findings.filter((f) => f !== undefined), []);
  });
});
