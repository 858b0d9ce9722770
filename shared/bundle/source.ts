import type { Readable } from 'node:stream';
import { VerificationError } from '../cli/errors.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { parseDigest, VerifyingStream } from '../oci/digest.ts';
import type { ContentSource } from '../store/store.ts';
import type { BundleFileScan, LocatedEntry } from './file.ts';
import type { BundleBytes } from './volumes.ts';

/**
 * The OCI content of a scanned bundle file as a ContentSource: each blob is
 * read by offset (no extraction, no temp copy) and checked against the
 * signed index's size and sha256 while it streams, the last chunk held back
 * until it matches.
 */
export class BundleFileSource implements ContentSource {
  private readonly blobs = new Map<string, LocatedEntry>();
  /** Paths of the entries read to their end through this source: their content matched the signed index. */
  readonly verified = new Set<string>();
  private readonly entries: Map<string, LocatedEntry>;

  constructor(
    private readonly bytes: BundleBytes,
    scan: BundleFileScan,
    /** For messages: the bundle's file name. */
    private readonly source: string,
  ) {
    this.entries = new Map(scan.entries.map((e) => [e.path, e]));
    for (const e of scan.entries) {
      const m = /^oci\/blobs\/sha256\/([a-f0-9]{64})$/.exec(e.path);
      if (!m) continue;
      if (m[1] !== e.sha256) {
        throw new VerificationError(`${source}: entry ${e.path} is listed with sha256 ${e.sha256}: a blob's name must be its digest`);
      }
      this.blobs.set(`sha256:${m[1]}`, e);
    }
  }

  exists(desc: Descriptor): Promise<boolean> {
    return Promise.resolve(this.blobs.get(desc.digest)?.size === desc.size);
  }

  fetch(desc: Descriptor): Promise<Readable> {
    return this.open(desc);
  }

  private open(desc: Descriptor, located?: LocatedEntry): Promise<Readable> {
    const entry = located ?? this.blobs.get(desc.digest);
    if (!entry || entry.size !== desc.size) {
      return Promise.reject(
        new VerificationError(`${this.source}: ${desc.digest} (${desc.size} bytes) is referenced but not in the bundle`, {
          hint: 'the bundle is incomplete: pack it again',
        }),
      );
    }
    parseDigest(desc.digest);
    const verifier = new VerifyingStream(desc, `${this.source}: entry ${entry.path}`);
    verifier.once('end', () => this.verified.add(entry.path));
    if (entry.size === 0) {
      verifier.end();
      return Promise.resolve(verifier);
    }
    const file = this.bytes.stream(entry.offset, entry.offset + entry.size, 256 * 1024);
    file.on('error', (err) => verifier.destroy(err));
    return Promise.resolve(file.pipe(verifier));
  }

  /** Every entry whose path starts with `prefix` ("manifests/"), in bundle order. */
  entriesUnder(prefix: string): LocatedEntry[] {
    return [...this.entries.values()].filter((e) => e.path.startsWith(prefix));
  }

  /** A small entry (a manifest file), read whole and checked against the signed index. */
  async readEntry(path: string): Promise<Buffer> {
    const entry = this.entries.get(path);
    if (!entry) throw new VerificationError(`${this.source}: no entry ${path}`);
    return this.read({ mediaType: 'application/octet-stream', digest: `sha256:${entry.sha256}`, size: entry.size }, entry);
  }

  /** A manifest or index, read whole (they are small) and verified. */
  async read(desc: Descriptor, entry?: LocatedEntry): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of (await this.open(desc, entry)) as AsyncIterable<Buffer>) parts.push(chunk);
    return Buffer.concat(parts);
  }
}
