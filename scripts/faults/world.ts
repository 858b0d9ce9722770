import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { generateImages, pushImages, type ImageSpec } from '../../test/services/fixtures.ts';
import { startRegistry, type RegistryService } from '../../test/services/registry.ts';
import { airlock, said } from './cli.ts';

export const PASSWORD = 'faults campaign';
export const KEY_ENV = { AIRLOCK_PASSWORD: PASSWORD, COSIGN_PASSWORD: undefined };

/** The connected side: a source registry holding synthetic images, a signing key and airlock.yaml files. */
export interface World {
  work: string;
  source: RegistryService;
  key: string;
  pub: string;
  /** Write airlock.yaml for these images and pack it; returns the spec and the bundle paths. */
  packArgs(spec: string, output: string): string[];
  spec(name: string, images: ImageSpec[]): Promise<string>;
}

export async function startWorld(): Promise<World> {
  const work = mkdtempSync(join(tmpdir(), 'airlock-faults-'));
  const source = await startRegistry();
  const pair = generateKeyPair(PASSWORD);
  const key = join(work, 'airlock.key');
  const pub = join(work, 'airlock.pub');
  writeFileSync(key, pair.privateKeyPem, { mode: 0o600 });
  writeFileSync(pub, pair.publicKeyPem);
  let seed = 16;
  return {
    work,
    source,
    key,
    pub,
    packArgs: (spec, output) => ['pack', '-f', spec, '-o', output, '--key', key, '--registry-mirror', `docker.io=${source.url}`],
    async spec(name, images) {
      await pushImages(source.url, await generateImages({ seed: seed++, baseLayerSize: images[0]!.layerSize, images }));
      const file = join(work, `${name}.yaml`);
      const list = images.map((i) => `  - ${i.repository}:${i.tag}`).join('\n');
      // A Deployment per image, so that a load --git pins each (what approve signs).
      mkdirSync(join(work, `deploy-${name}`));
      writeFileSync(join(work, `deploy-${name}`, 'app.yaml'), [NAMESPACE, ...images.map(deployment)].join('---\n'));
      writeFileSync(file, `name: ${name}\nversion: 1.0.0\nimages:\n${list}\nmanifests:\n  - path: deploy-${name}\n`);
      return file;
    },
  };
}

const NAMESPACE = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n';

function deployment(image: ImageSpec): string {
  const name = image.repository.split('/').pop()!;
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    `metadata: {name: ${name}, namespace: demo}`,
    'spec:',
    `  selector: {matchLabels: {app: ${name}}}`,
    '  template:',
    `    metadata: {labels: {app: ${name}}}`,
    `    spec: {containers: [{name: ${name}, image: "${image.repository}:${image.tag}"}]}`,
    '',
  ].join('\n');
}

/** Pack a bundle once (the reference every trial is compared with). */
export async function packReference(world: World, spec: string, output: string): Promise<Buffer> {
  const packed = await airlock(world.packArgs(spec, output), { env: KEY_ENV });
  if (packed.code !== 0) throw new Error(`pack of the reference bundle failed: ${said(packed)}`);
  return readFileSync(output);
}
