import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.ts';
import type { ContentSource } from './store.ts';

/**
 * A source whose manifests were already read (by planGraph): they are served
 * from memory, everything else comes from the underlying source. Manifests
 * are small and were verified when first read; a filtered index exists only
 * here, since no registry has it.
 */
export class PreloadedManifests implements ContentSource {
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
