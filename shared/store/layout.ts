import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError, VerificationError } from '../cli/errors.ts';
import { ANNOTATION_REF_NAME, type Descriptor, type ImageIndex } from '../oci/descriptor.ts';
import { parseDigest, VerifyingStream } from '../oci/digest.ts';
import type { ContentStore, ReferenceResolver } from './store.ts';

/**
 * An OCI image layout directory (image-spec image-layout.md): blobs under
 * blobs/<alg>/<hex>, an index.json whose descriptors are named by the
 * org.opencontainers.image.ref.name annotation. Blobs land under a temporary
 * name and are renamed into place only once their bytes checked out.
 */
export class LayoutStore implements ContentStore, ReferenceResolver {
  readonly name: string;
  private indexWrite: Promise<void> = Promise.resolve();

  private constructor(readonly dir: string) {
    this.name = `oci:${dir}`;
  }

  /** Open a layout, creating oci-layout, blobs/ and an empty index.json when missing. */
  static async open(dir: string): Promise<LayoutStore> {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    const layoutFile = join(dir, 'oci-layout');
    const existing = await readFile(layoutFile, 'utf8').catch(() => undefined);
    if (existing === undefined) {
      await writeFile(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    } else if ((JSON.parse(existing) as { imageLayoutVersion?: string }).imageLayoutVersion !== '1.0.0') {
      throw new UsageError(`${layoutFile}: not an OCI image layout version 1.0.0`);
    }
    const store = new LayoutStore(dir);
    if ((await readFile(join(dir, 'index.json')).catch(() => undefined)) === undefined) {
      await store.writeIndex({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
    }
    return store;
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    try {
      return (await stat(this.blobPath(desc.digest))).size === desc.size;
    } catch {
      return false;
    }
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const path = this.blobPath(desc.digest);
    const st = await stat(path).catch(() => undefined);
    if (!st) throw new VerificationError(`${this.name}: blob ${desc.digest} is missing`);
    const verifier = new VerifyingStream(desc, `${this.name} blob ${desc.digest}`);
    const file = createReadStream(path);
    file.on('error', (err) => verifier.destroy(err));
    return file.pipe(verifier);
  }

  async push(desc: Descriptor, body: Readable): Promise<void> {
    const final = this.blobPath(desc.digest);
    await mkdir(join(final, '..'), { recursive: true });
    const temp = `${final}.${randomBytes(6).toString('hex')}.partial`;
    try {
      await pipeline(body, createWriteStream(temp));
      await rename(temp, final);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** Name a manifest or index in index.json; an existing entry with the same name is replaced. */
  async tag(desc: Descriptor, reference: string): Promise<void> {
    await this.updateIndex((index) => {
      const entry: Descriptor = {
        mediaType: desc.mediaType,
        digest: desc.digest,
        size: desc.size,
        ...(desc.platform ? { platform: desc.platform } : {}),
        annotations: { ...desc.annotations, [ANNOTATION_REF_NAME]: reference },
      };
      index.manifests = index.manifests.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] !== reference);
      index.manifests.push(entry);
    });
  }

  async resolve(reference: string): Promise<Descriptor> {
    const index = await this.readIndex();
    const found = index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === reference);
    if (!found) throw new UsageError(`${this.name}: no image named ${reference} in index.json`);
    return found;
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, 'index.json');
    const text = await readFile(path, 'utf8');
    try {
      const index = JSON.parse(text) as ImageIndex;
      if (!Array.isArray(index.manifests)) throw new Error('no manifests array');
      return index;
    } catch (err) {
      throw new VerificationError(`${path}: not a valid OCI index: ${(err as Error).message}`);
    }
  }

  /** index.json updates are serialized and each one lands atomically (temp file + rename). */
  private updateIndex(change: (index: ImageIndex) => void): Promise<void> {
    const next = this.indexWrite.then(async () => {
      const index = await this.readIndex();
      change(index);
      await this.writeIndex(index);
    });
    this.indexWrite = next.catch(() => undefined);
    return next;
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    const path = join(this.dir, 'index.json');
    const temp = `${path}.${randomBytes(6).toString('hex')}.partial`;
    await writeFile(temp, JSON.stringify(index, null, 2) + '\n');
    await rename(temp, path);
  }
}
