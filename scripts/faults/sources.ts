import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { HOSTILE_SOURCES, packHostile } from '../../test/helpers/hostile-sources.ts';
import { LIE_CASES, lieFinding, tellLie, type LieWorld } from '../../test/helpers/lies.ts';
import { generateImages, pushImages } from '../../test/services/fixtures.ts';
import { airlock, said } from './cli.ts';
import { tally, violation, type Tally } from './tally.ts';
import { PASSWORD, type World } from './world.ts';

/**
 * Hostile input beside bundles: sources that try to exhaust pack (YAML bombs,
 * deep nesting, a 500 MB document, a chart gzip bomb, links in chart
 * archives) and registries that lie to pack and to load. Each trial must end
 * with its own exit code and message, nothing written, no crash, no hang;
 * anything else is a violation (data lost when a lie was accepted as content).
 */
export async function hostileSources(world: World, jobs: number): Promise<Tally> {
  const t = tally('hostile sources (YAML bombs, 100k-deep nesting, 500 MB document, chart gzip bomb, links)');
  const started = performance.now();
  const limit = pLimit(jobs);
  const findings = await Promise.all(HOSTILE_SOURCES.map((c, i) => limit(() => packHostile(c, join(world.work, `hostile-source-${i}`), world.key, PASSWORD))));
  for (const f of findings) {
    t.trials++;
    if (f === undefined) t.completed++;
    else violation(t, f);
  }
  t.seconds = (performance.now() - started) / 1000;
  return t;
}

export async function lyingRegistries(world: World, jobs: number): Promise<Tally> {
  const t = tally('registries that lie (to pack and to load)');
  const started = performance.now();
  const images = await generateImages({ seed: 7, images: [{ repository: 'harness/liar', tag: '1.0', layers: 2, layerSize: 300_000 }] });
  await pushImages(world.source.url, images);
  const spec = join(world.work, 'lies.yaml');
  writeFileSync(spec, 'name: lies\nversion: 1.0.0\nimages:\n  - harness/liar:1.0\n');
  const bundle = join(world.work, 'lies.tar');
  const packed = await airlock(world.packArgs(spec, bundle), { env: { AIRLOCK_PASSWORD: PASSWORD } });
  if (packed.code !== 0) throw new Error(`the honest pack for the lies failed: ${said(packed)}`);
  const bigLayer = images[0]!.blobs.slice().sort((a, b) => b.size - a.size)[0]!.digest;
  const lw: LieWorld = { work: world.work, source: world.source, spec, bundle, key: world.key, pub: world.pub, password: PASSWORD, bigLayer };
  const limit = pLimit(jobs);
  const outcomes = await Promise.all(LIE_CASES.map((c, i) => limit(async () => ({ c, o: await tellLie(lw, c, i) }))));
  for (const { c, o } of outcomes) {
    t.trials++;
    const f = lieFinding(c, o);
    if (f === undefined) t.completed++;
    else violation(t, f, c.code !== 0 && o.res.code === 0);
  }
  t.seconds = (performance.now() - started) / 1000;
  return t;
}
