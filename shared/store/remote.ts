import { Readable } from 'node:stream';
import { RemoteError } from '../cli/errors.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { isManifestOrIndex } from '../oci/mediatype.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { ContentStore, ReferenceResolver } from './store.ts';

/** One repository of a registry as a content store. */
export class RemoteStore implements ContentStore, ReferenceResolver {
  readonly name: string;
  /** Manifests this store pushed, by digest, so tagging needs no round trip. */
  private readonly pushedManifests = new Map<string, Buffer>();

  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
  ) {
    this.name = client.display(repository);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const desc = await this.client.resolve(this.repository, reference);
    if (!desc) {
      throw new RemoteError(`${this.name}${reference.includes(':') ? '@' : ':'}${reference} not found`, {
        hint: 'check the image reference and that the credentials can see this repository',
      });
    }
    return desc;
  }

  /** Resolve and read a tag or digest in one request: the manifest's descriptor and exact bytes. */
  async fetchReference(reference: string): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    const found = await this.client.getManifest(this.repository, reference);
    if (!found) {
      throw new RemoteError(`${this.name}${reference.includes(':') ? '@' : ':'}${reference} not found`, {
        hint: 'check the image reference and that the credentials can see this repository',
      });
    }
    return found;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    if (isManifestOrIndex(desc.mediaType)) return (await this.client.resolve(this.repository, desc.digest)) !== undefined;
    return this.client.blobExists(this.repository, desc);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    if (isManifestOrIndex(desc.mediaType)) {
      const m = await this.client.getManifest(this.repository, desc.digest);
      if (!m) throw new RemoteError(`${this.name}@${desc.digest} not found`);
      return Readable.from([m.bytes]);
    }
    return this.client.fetchBlob(this.repository, desc);
  }

  async push(desc: Descriptor, body: Readable): Promise<void> {
    if (isManifestOrIndex(desc.mediaType)) {
      const bytes = await collect(body);
      await this.client.putManifest(this.repository, desc.digest, desc.mediaType, bytes);
      this.pushedManifests.set(desc.digest, bytes);
      return;
    }
    await this.client.pushBlob(this.repository, desc, body);
  }

  async mount(desc: Descriptor): Promise<boolean> {
    for (const from of this.client.mountSources(desc.digest, this.repository)) {
      if (await this.client.mountBlob(this.repository, desc, from)) return true;
    }
    return false;
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    const bytes = this.pushedManifests.get(desc.digest) ?? (await this.client.getManifest(this.repository, desc.digest))?.bytes;
    if (!bytes) throw new RemoteError(`cannot tag ${this.name}:${tag}: manifest ${desc.digest} is not in the repository`);
    await this.client.putManifest(this.repository, tag, desc.mediaType, bytes);
  }
}

async function collect(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}
