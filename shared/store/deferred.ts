import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.ts';
import { isManifestOrIndex } from '../oci/mediatype.ts';
import type { ContentSink } from './store.ts';

/**
 * A sink that takes blobs at once but holds manifests back until flush():
 * copyGraph runs over every image, and only when all of it succeeded do the
 * manifests go out, in the order copyGraph produced them (children before
 * parents). A load that fails part way so leaves no manifest and no tag
 * behind, only blobs, which nothing references.
 */
export class DeferredManifests implements ContentSink {
  readonly name: string;
  private readonly pending: { desc: Descriptor; bytes: Buffer }[] = [];
  private readonly held = new Set<string>();

  constructor(private readonly sink: ContentSink) {
    this.name = sink.name;
  }

  exists(desc: Descriptor): Promise<boolean> {
    if (this.held.has(desc.digest)) return Promise.resolve(true);
    return this.sink.exists(desc);
  }

  async push(desc: Descriptor, body: Readable): Promise<void> {
    if (!isManifestOrIndex(desc.mediaType)) return this.sink.push(desc, body);
    const parts: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Buffer>) parts.push(chunk);
    this.pending.push({ desc, bytes: Buffer.concat(parts) });
    this.held.add(desc.digest);
  }

  mount(desc: Descriptor): Promise<boolean> {
    return this.sink.mount ? this.sink.mount(desc) : Promise.resolve(false);
  }

  tag(): Promise<void> {
    return Promise.reject(new Error('internal: tag after flush(), on the underlying sink'));
  }

  /** The manifests held back, children first. */
  get manifests(): readonly Descriptor[] {
    return this.pending.map((p) => p.desc);
  }

  /** Push the held manifests, in order. */
  async flush(): Promise<void> {
    for (const { desc, bytes } of this.pending) await this.sink.push(desc, Readable.from([bytes]));
    this.pending.length = 0;
    this.held.clear();
  }
}
