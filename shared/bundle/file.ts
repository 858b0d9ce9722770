import type { KeyObject } from 'node:crypto';
import { Header, Pax } from 'tar';
import { verifyBlob } from '../sign/keys.ts';
import type { BundleBytes } from './volumes.ts';
import { INDEX_PATH, MAX_INDEX_BYTES, MAX_SIGNATURE_BYTES, parseBundleIndex, SIGNATURE_PATH, type BundleEntry, type BundleIndex } from './format.ts';

/**
 * A bundle file read by offset: the signed index checked against the key,
 * then one pass over the tar headers alone (a 512-byte read per entry)
 * confirming that every entry is the next one the index lists, a regular
 * file of the listed size, and that nothing but the end-of-archive zeros
 * follows. The result says where each entry's bytes lie; they are NOT hashed
 * here (the caller hashes them as it reads them).
 *
 * Returns undefined for anything unexpected: the streaming BundleReader is
 * the reference for what is wrong with a bundle, and names it.
 */
export interface LocatedEntry extends BundleEntry {
  /** Where the entry's data starts in the file. */
  offset: number;
}

export interface BundleFileScan {
  index: BundleIndex;
  indexBytes: Buffer;
  signature: string;
  /** In index order. */
  entries: LocatedEntry[];
}

export async function scanBundleFile(bytes: BundleBytes, publicKey: KeyObject, source: string): Promise<BundleFileScan | undefined> {
  {
    const headers = new HeaderWalk(bytes);
    const indexEntry = await headers.next();
    if (indexEntry?.path !== INDEX_PATH || indexEntry.size > MAX_INDEX_BYTES) return undefined;
    const indexBytes = await headers.readData(indexEntry.start, indexEntry.size);
    const sigEntry = await headers.next();
    if (sigEntry?.path !== SIGNATURE_PATH || sigEntry.size > MAX_SIGNATURE_BYTES) return undefined;
    const signature = (await headers.readData(sigEntry.start, sigEntry.size)).toString('utf8');
    // A bad signature is final either way; the sequential reader would say the same.
    verifyBlob(indexBytes, signature, publicKey, `${source}: ${INDEX_PATH}`);
    const index = parseBundleIndex(indexBytes);
    const entries: LocatedEntry[] = [];
    for (const expected of index.entries) {
      const h = await headers.next();
      if (!h || h.path !== expected.path || h.size !== expected.size) return undefined;
      entries.push({ ...expected, offset: h.start });
    }
    if (!(await headers.atCleanEnd())) return undefined;
    return { index, indexBytes, signature, entries };
  }
}

const BLOCK = 512;

/** The tar's headers one by one: regular files only, PAX path/size honoured, everything else refused. */
class HeaderWalk {
  private offset = 0;
  private readonly fileSize: number;
  constructor(private readonly bytes: BundleBytes) {
    this.fileSize = bytes.size;
  }

  readData(start: number, size: number): Promise<Buffer> {
    return this.bytes.read(start, size);
  }

  /** The next file entry, or undefined for anything that is not a plain regular file. */
  async next(): Promise<{ path: string; size: number; start: number } | undefined> {
    let extended: Pax | undefined;
    for (;;) {
      if (this.offset + BLOCK > this.fileSize) return undefined;
      const block = await this.readData(this.offset, BLOCK);
      const h = new Header(block, 0, extended);
      if (!h.cksumValid || h.nullBlock) return undefined;
      const size = h.size ?? -1;
      const start = this.offset + BLOCK;
      if (size < 0 || start + size > this.fileSize) return undefined;
      this.offset = start + size + ((BLOCK - (size % BLOCK)) % BLOCK);
      if (h.type === 'ExtendedHeader' && extended === undefined && size <= 64 * 1024) {
        extended = Pax.parse((await this.readData(start, size)).toString('utf8'));
        continue;
      }
      if ((h.type !== 'File' && h.type !== 'OldFile') || !h.path) return undefined;
      return { path: h.path, size, start };
    }
  }

  /** Two zero blocks, then nothing but zeros to the end of the file. */
  async atCleanEnd(): Promise<boolean> {
    const rest = this.fileSize - this.offset;
    if (rest < 2 * BLOCK || rest > 64 * BLOCK) return false;
    return (await this.readData(this.offset, rest)).every((b) => b === 0);
  }
}

