import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { generateImages, pushImages, type GenerateOptions, type SyntheticImage } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';
import { airlock, type CliResult } from './cli.ts';

/**
 * The world most end-to-end tests start from: synthetic images in a real
 * source registry (standing in for Docker Hub through --registry-mirror), a
 * signing key pair, a spec (airlock.yaml) with a deploy/ folder of manifests,
 * and, unless told otherwise, the bundle packed from it by the real CLI.
 */
export interface WorldSpec {
  /** Names the work folder (airlock-NAME-XXXXXX in TMPDIR). */
  name: string;
  /** The signing key's password (AIRLOCK_PASSWORD of every pack). */
  password: string;
  /** The images generated and pushed to the source registry. */
  images: GenerateOptions;
  /** The spec: airlock.yaml, written as given (manifests are in ./deploy). */
  spec: string;
  /** Files of deploy/: name -> content (none: no deploy/ folder). */
  manifests?: Record<string, string>;
  /** The bundle file's name in the work folder. Default bundle.tar. */
  bundleName?: string;
  /** Pack the bundle now (default true). */
  pack?: boolean;
}

export interface PackedWorld {
  work: string;
  source: RegistryService;
  images: SyntheticImage[];
  /** airlock.key (private, encrypted with the password) and airlock.pub. */
  key: string;
  pub: string;
  /** airlock.yaml */
  spec: string;
  /** The bundle: packed unless `pack: false` was given. */
  bundle: string;
  /** --registry-mirror docker.io=SOURCE */
  mirrors: string[];
  /** The environment a pack needs (the key's password, no COSIGN_PASSWORD). */
  env: Record<string, string | undefined>;
  /** `airlock pack` of the spec into `out`, with `extra` flags. */
  pack(out: string, extra?: string[]): Promise<CliResult>;
  /** Stop the registry, remove the work folder. */
  stop(): Promise<void>;
}

export async function packedWorld(spec: WorldSpec): Promise<PackedWorld> {
  const work = mkdtempSync(join(tmpdir(), `airlock-${spec.name}-`));
  const source = await startRegistry();
  const images = await generateImages(spec.images);
  await pushImages(source.url, images);

  const key = join(work, 'airlock.key');
  const pub = join(work, 'airlock.pub');
  const pair = generateKeyPair(spec.password);
  writeFileSync(key, pair.privateKeyPem, { mode: 0o600 });
  writeFileSync(pub, pair.publicKeyPem);
  if (spec.manifests) {
    mkdirSync(join(work, 'deploy'));
    for (const [name, content] of Object.entries(spec.manifests)) writeFileSync(join(work, 'deploy', name), content);
  }
  const specFile = join(work, 'airlock.yaml');
  writeFileSync(specFile, spec.spec);

  const mirrors = ['--registry-mirror', `docker.io=${source.url}`];
  const env = { AIRLOCK_PASSWORD: spec.password, COSIGN_PASSWORD: undefined };
  const pack = (out: string, extra: string[] = []) => airlock(['pack', '-f', specFile, '-o', out, '--key', key, ...mirrors, ...extra], { env });
  const bundle = join(work, spec.bundleName ?? 'bundle.tar');
  if (spec.pack ?? true) {
    const packed = await pack(bundle);
    assert.equal(packed.code, 0, packed.stderr);
  }
  return {
    work,
    source,
    images,
    key,
    pub,
    spec: specFile,
    bundle,
    mirrors,
    env,
    pack,
    stop: async () => {
      await source.stop();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
