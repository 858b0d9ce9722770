import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.ts';
import type { ContentSource } from './store.ts';

/**
 * A source some of whose content was already read while planning (manifests,
 * image configs: small, and verified when first read): that is served from
 * memory, everything else comes from the underlying source.
 */
export class PreloadedContent implements ContentSource {
  constructor(
    private readonly source: ContentSource,
    private readonly manifests: ReadonlyMap<string, Buffer>,
  ) {}

  exists(desc: Descriptor): Promise<boolean> {
    return this.manifests.has(desc.digest) ? Promise.resolve(true) : this.source.exists(desc);
  }

  fetch(desc: Descriptor): Promise<Readable> {
    const bytes = this.manifests.get(desc.digest);
    return bytes ? Promise.resolve(Readable.from([bytes])) : this.source.fetch(desc);
  }
}
