import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.ts';
import { childrenOf, isManifestOrIndex, parseManifest } from '../oci/mediatype.ts';
import type { ContentSink } from './store.ts';

/**
 * A sink that pushes each manifest by digest as soon as copyGraph has its
 * children in, but only once every blob it references has been verified
 * from the bundle (`verifyBlobs`: a blob the registry already had, and so
 * was never streamed, is hashed first). An untagged manifest is invisible to
 * users, and it keeps its blobs referenced: Quay expires uploads nothing
 * references after about an hour, and Harbor's garbage collection may run
 * during a long load. Tags are not this sink's business: the load sets
 * them on the underlying store once the whole bundle checked out.
 */
export class ManifestGate implements ContentSink {
  readonly name: string;

  constructor(
    private readonly sink: ContentSink,
    private readonly verifyBlobs: (blobs: readonly Descriptor[]) => Promise<void>,
  ) {
    this.name = sink.name;
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.sink.exists(desc);
  }

  async push(desc: Descriptor, body: Readable): Promise<void> {
    if (!isManifestOrIndex(desc.mediaType)) return this.sink.push(desc, body);
    const parts: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Buffer>) parts.push(chunk);
    const bytes = Buffer.concat(parts);
    const children = childrenOf(parseManifest(bytes, desc.mediaType, `manifest ${desc.digest}`));
    await this.verifyBlobs(children.filter((c) => !isManifestOrIndex(c.mediaType)));
    await this.sink.push(desc, Readable.from([bytes]));
  }

  mount(desc: Descriptor): Promise<boolean> {
    return this.sink.mount ? this.sink.mount(desc) : Promise.resolve(false);
  }

  tag(): Promise<void> {
    return Promise.reject(new Error('internal: tags go on the underlying store, after the whole bundle checked out'));
  }
}
