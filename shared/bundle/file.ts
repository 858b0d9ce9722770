import type { KeyObject } from 'node:crypto';
import { VerificationError } from '../cli/errors.ts';
import { verifyBlob } from '../sign/keys.ts';
import {
  BLOCK,
  firstNonZero,
  headerMismatch,
  layoutBundle,
  mtimeOf,
  NOT_CANONICAL,
  padding,
  readFirstHeader,
  readSignatureHeader,
  type BundleLayout,
  type PlacedEntry,
} from './canonical.ts';
import { INDEX_PATH, MAX_INDEX_BYTES, MAX_SIGNATURE_BYTES, parseBundleIndex, SIGNATURE_PATH, type BundleEntry, type BundleIndex } from './format.ts';
import type { BundleBytes } from './volumes.ts';

/**
 * A bundle read by offset (a local file, volumes, an S3 object): the signed
 * index checked against the key, then every byte outside the entries'
 * contents compared with the canonical layout the index implies (headers,
 * padding, end of archive, the file's exact size). The result says where each
 * entry's content lies; it is NOT hashed here (the caller hashes it as it
 * reads it). Any difference is a VerificationError naming the offset, the
 * entry and the field: the same checks, with the same messages, as the
 * sequential reader's.
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
  layout: BundleLayout;
}

export async function scanBundleFile(bytes: BundleBytes, publicKey: KeyObject, source: string): Promise<BundleFileScan> {
  const read = (at: number, length: number, short: () => VerificationError): Promise<Buffer> =>
    at + length > bytes.size ? Promise.reject(short()) : bytes.read(at, length);
  const cut = (what: string) => () => new VerificationError(`${source}: truncated: it ends inside ${what}`, { hint: 'copy or download the bundle again' });

  // 1. The index and its signature, each header compared once its size is known.
  const first = await bytes.read(0, Math.min(BLOCK, bytes.size));
  const { size: indexSize, mtime } = readFirstHeader(source, first, MAX_INDEX_BYTES);
  const indexBytes = await read(BLOCK, indexSize, cut(INDEX_PATH));
  const indexPad = padding(indexSize);
  checkZeros(source, await read(BLOCK + indexSize, indexPad, cut(INDEX_PATH)), BLOCK + indexSize, `the padding after ${INDEX_PATH}`);
  const sigAt = BLOCK + indexSize + indexPad;
  const sigSize = readSignatureHeader(source, await read(sigAt, BLOCK, cut(SIGNATURE_PATH)), sigAt, mtime, MAX_SIGNATURE_BYTES);
  const signature = (await read(sigAt + BLOCK, sigSize, cut(SIGNATURE_PATH))).toString('utf8');
  verifyBlob(indexBytes, signature, publicKey, `${source}: ${INDEX_PATH}`);
  const index = parseBundleIndex(indexBytes);
  checkMtime(source, index, mtime);

  // 2. Everything else follows from the index: every header and padding in order, the end, the file's exact size.
  const layout = layoutBundle(indexSize, sigSize, index.entries, mtime);
  const placed = layout.entries;
  const short = () => truncated(source, placed, bytes.size, layout.size);
  for (let i = 2; i <= placed.length; i++) {
    const prev = placed[i - 1]!;
    const gapStart = prev.offset + prev.size;
    const pad = padding(prev.size);
    const e = placed[i];
    const gap = await read(gapStart, (e ? e.offset : layout.size) - gapStart, short);
    checkZeros(source, gap.subarray(0, pad), gapStart, `the padding after ${prev.path}`);
    if (!e) {
      checkZeros(source, gap.subarray(pad), gapStart + pad, 'the end of the archive');
      break;
    }
    const mismatch = headerMismatch(source, e, gap.subarray(pad));
    if (mismatch) throw mismatch;
  }
  if (bytes.size > layout.size) throw afterEnd(source, layout.size);

  const entries = placed.slice(2).map((e) => ({ path: e.path, size: e.size, sha256: e.sha256, offset: e.offset }));
  return { index, indexBytes, signature, entries, layout };
}

export function afterEnd(source: string, size: number): VerificationError {
  return new VerificationError(`${source}: data after the end of the bundle (it ends at offset ${size})`, {
    hint: 'data was appended to the bundle: do not use it, fetch it again from its source',
  });
}

/** The index's time is every header's mtime: a bundle whose headers say otherwise was not written from this index. */
export function checkMtime(source: string, index: BundleIndex, mtime: number): void {
  if (mtimeOf(index.created) !== mtime) {
    throw new VerificationError(`${source}: the tar headers' mtime (${mtime}) is not the signed index's created time (${index.created})`, { hint: NOT_CANONICAL });
  }
}

/** A VerificationError for a bundle that ends at `at` instead of `size`, naming the entry cut. */
export function truncated(source: string, placed: readonly PlacedEntry[], at: number, size: number): VerificationError {
  const cut = placed.find((e) => at < e.offset + e.size + padding(e.size));
  const where = cut ? `inside ${cut.path} (offset ${cut.headerOffset})` : 'in the end-of-archive blocks';
  return new VerificationError(`${source}: truncated: it ends at byte ${at} ${where}; the signed index makes it ${size} bytes`, {
    hint: 'copy or download the bundle again',
  });
}

export function checkZeros(source: string, bytes: Buffer, at: number, what: string): void {
  const i = firstNonZero(bytes);
  if (i >= 0) {
    throw new VerificationError(`${source}: non-zero byte at offset ${at + i}, in ${what}`, { hint: NOT_CANONICAL });
  }
}
