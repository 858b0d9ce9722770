import { VerificationError } from '../cli/errors.ts';
import { INDEX_PATH, SIGNATURE_PATH, type BundleEntry } from './format.ts';

/**
 * The canonical layout of a bundle tar (docs/bundle-format.md): every byte
 * outside the entries' contents follows from the signed index, so a reader
 * never parses an untrusted tar header. It rebuilds each expected header and
 * compares bytes; whatever differs is refused, naming the offset, the entry
 * and the field. Every tar implementation then sees exactly the entries that
 * were verified.
 *
 * Each entry is one ustar header block: type '0', mode 0644, uid/gid 0, empty
 * uname/gname/linkname, device numbers 0, the one mtime all headers share,
 * numbers in zero-padded octal ending in NUL. A path of more than 100 bytes
 * goes in the ustar prefix/name split (the longest prefix that fits). Only a
 * path that split cannot hold (or that is not printable ASCII), or a size of
 * 8 GiB or more, gets a PAX 'x' header before it, holding exactly the needed
 * `path` and `size` records; the ustar header then holds the path's first 100
 * bytes and, for such a size, its GNU base-256 form. The content follows,
 * padded with zeros to 512 bytes. After the last entry: two zero blocks, then
 * zeros up to a multiple of 10240 bytes, then the end of the file.
 */

export const BLOCK = 512;
export const RECORD = 10240;
const OCTAL_SIZE_LIMIT = 8 ** 11; // 8 GiB: the most 11 octal digits hold
const PAX_NAME = '././@PaxHeader';

/** Field offsets of a ustar header, for encoding and for naming a difference. */
const FIELDS: [name: string, start: number, length: number][] = [
  ['name', 0, 100],
  ['mode', 100, 8],
  ['uid', 108, 8],
  ['gid', 116, 8],
  ['size', 124, 12],
  ['mtime', 136, 12],
  ['checksum', 148, 8],
  ['type', 156, 1],
  ['linkname', 157, 100],
  ['magic', 257, 6],
  ['version', 263, 2],
  ['uname', 265, 32],
  ['gname', 297, 32],
  ['devmajor', 329, 8],
  ['devminor', 337, 8],
  ['prefix', 345, 155],
  ['unused bytes', 500, 12],
];

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The shared mtime of every header, in seconds, from the index's `created`. */
export function mtimeOf(created: string): number {
  const ms = Date.parse(created);
  if (!Number.isFinite(ms) || ms < 0) throw new VerificationError(`${INDEX_PATH}: created ${JSON.stringify(created)} is not a valid time`);
  return Math.floor(ms / 1000);
}

/** The header bytes (one block, or a PAX header and one block) that precede an entry's content. */
export function entryHeader(path: string, size: number, mtime: number): Buffer {
  const pathBytes = Buffer.from(path, 'utf8');
  const split = ustarSplit(path, pathBytes);
  const records: [string, string][] = [];
  if (!split) records.push(['path', path]);
  if (size >= OCTAL_SIZE_LIMIT) records.push(['size', String(size)]);
  const block = ustarBlock({
    name: split ? split.name : pathBytes.subarray(0, 100),
    prefix: split ? split.prefix : Buffer.alloc(0),
    size,
    mtime,
    type: '0',
  });
  if (records.length === 0) return block;
  const pax = paxRecords(records);
  return Buffer.concat([
    ustarBlock({ name: Buffer.from(PAX_NAME), prefix: Buffer.alloc(0), size: pax.length, mtime, type: 'x' }),
    pax,
    Buffer.alloc(padding(pax.length)),
    block,
  ]);
}

function ustarSplit(path: string, bytes: Buffer): { name: Buffer; prefix: Buffer } | undefined {
  if (!/^[\x20-\x7e]*$/.test(path)) return undefined;
  if (bytes.length <= 100) return { name: bytes, prefix: Buffer.alloc(0) };
  const cut = path.lastIndexOf('/', 155);
  if (cut <= 0 || path.length - cut - 1 > 100 || cut === path.length - 1) return undefined;
  return { name: bytes.subarray(cut + 1), prefix: bytes.subarray(0, cut) };
}

function ustarBlock(h: { name: Buffer; prefix: Buffer; size: number; mtime: number; type: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  h.name.copy(b, 0);
  b.write('0000644\0', 100, 'latin1');
  b.write('0000000\0', 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  if (h.size < OCTAL_SIZE_LIMIT) b.write(octal(h.size, 11), 124, 'latin1');
  else base256(h.size, b, 124, 12);
  b.write(octal(h.mtime, 11), 136, 'latin1');
  b.write(h.type, 156, 'latin1');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  b.write('0000000\0', 329, 'latin1');
  b.write('0000000\0', 337, 'latin1');
  h.prefix.copy(b, 345);
  b.write('        ', 148, 'latin1');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(octal(sum, 6) + ' ', 148, 'latin1');
  return b;
}

function octal(n: number, digits: number): string {
  return n.toString(8).padStart(digits, '0') + '\0';
}

function base256(n: number, b: Buffer, at: number, length: number): void {
  b[at] = 0x80;
  for (let i = at + length - 1, v = n; i > at; i--, v = Math.floor(v / 256)) b[i] = v % 256;
}

/** PAX records, each "LEN key=value\n" with LEN counting the whole record. */
function paxRecords(records: [string, string][]): Buffer {
  return Buffer.concat(
    records.map(([key, value]) => {
      const body = Buffer.byteLength(` ${key}=${value}\n`);
      let len = body + 1;
      while (len !== body + String(len).length) len = body + String(len).length;
      return Buffer.from(`${len} ${key}=${value}\n`, 'utf8');
    }),
  );
}

/** One entry as it lies in the file. */
export interface PlacedEntry extends BundleEntry {
  /** Where the entry's header (or PAX header) starts. */
  headerOffset: number;
  header: Buffer;
  /** Where its content starts. */
  offset: number;
}

export interface BundleLayout {
  mtime: number;
  /** airlock.json, airlock.json.sig, then the index's entries in order. */
  entries: PlacedEntry[];
  /** Where the end-of-archive zeros start. */
  end: number;
  /** The file's exact size. */
  size: number;
}

/** Where every byte of a bundle lies, from the index's entries and the sizes of the index and its signature. */
export function layoutBundle(indexSize: number, signatureSize: number, entries: readonly BundleEntry[], mtime: number): BundleLayout {
  const all: BundleEntry[] = [{ path: INDEX_PATH, size: indexSize, sha256: '' }, { path: SIGNATURE_PATH, size: signatureSize, sha256: '' }, ...entries];
  const placed: PlacedEntry[] = [];
  let at = 0;
  for (const e of all) {
    const header = entryHeader(e.path, e.size, mtime);
    placed.push({ ...e, headerOffset: at, header, offset: at + header.length });
    at += header.length + e.size + padding(e.size);
  }
  return { mtime, entries: placed, end: at, size: endOfArchive(at) };
}

/** The file size for an archive whose last entry's padding ends at `end`: two zero blocks, then zeros to a whole record. */
export function endOfArchive(end: number): number {
  return Math.ceil((end + 2 * BLOCK) / RECORD) * RECORD;
}

/** The hint for any difference from the canonical layout. */
export const NOT_CANONICAL =
  'if an older airlock wrote this bundle, pack it again with this one; otherwise the bundle was altered: do not use it, fetch it again from its source';

/**
 * Compare the bytes found at `offset` with the header expected for `entry`;
 * a VerificationError naming the offset, the entry and the field, or undefined.
 */
export function headerMismatch(source: string, entry: PlacedEntry, actual: Buffer): VerificationError | undefined {
  const expected = entry.header;
  const at = firstDifference(expected, actual);
  if (at < 0) return undefined;
  const paxLength = expected.length > BLOCK ? expected.length - BLOCK : 0;
  let where: string;
  if (at < paxLength) {
    where = at < BLOCK ? `the PAX header's ${fieldAt(at)} field` : 'the PAX records';
  } else {
    where = `the ${fieldAt(at - paxLength)} field`;
  }
  const what = actual.length < expected.length && at >= actual.length ? 'is cut short' : `differs in ${where}`;
  return new VerificationError(
    `${source}: the tar header of ${entry.path} at offset ${entry.headerOffset + at - (at % BLOCK)} ${what} (byte ${entry.headerOffset + at}): not in the canonical layout`,
    { hint: NOT_CANONICAL },
  );
}

function fieldAt(at: number): string {
  const f = FIELDS.find(([, start, length]) => at >= start && at < start + length);
  return f ? f[0] : 'unused bytes';
}

/**
 * The first byte that differs, a checksum field counting only when nothing
 * else in its block differs (an edited field changes the checksum too: the
 * field is the news).
 */
function firstDifference(expected: Buffer, actual: Buffer): number {
  const n = Math.min(expected.length, actual.length);
  let checksum = -1;
  for (let i = 0; i < n; i++) {
    if (expected[i] === actual[i]) continue;
    const inBlock = i % BLOCK;
    if (inBlock >= 148 && inBlock < 156) {
      if (checksum < 0) checksum = i;
      continue;
    }
    return checksum >= 0 && Math.floor(checksum / BLOCK) < Math.floor(i / BLOCK) ? checksum : i;
  }
  if (checksum >= 0) return checksum;
  return actual.length < expected.length ? actual.length : -1;
}

/** Offset of the first non-zero byte, or -1. */
export function firstNonZero(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return i;
  return -1;
}

/**
 * The first header, read before anything is trusted: airlock.json's. Only its
 * size and mtime are unknown; both must be canonical octal, and the whole
 * block must then equal the header rebuilt from them.
 */
export function readFirstHeader(source: string, block: Buffer, maxSize: number): { size: number; mtime: number } {
  const compressed = compression(block);
  if (compressed) {
    throw new VerificationError(`${source}: the bundle is ${compressed}-compressed: bundles are plain (uncompressed) tar files`, {
      hint: 'decompress it first if you compressed it for transport; otherwise do not use it',
    });
  }
  if (block.length < BLOCK) throw new VerificationError(`${source}: ${block.length} bytes: too short to be an airlock bundle`);
  const name = block.subarray(0, 100);
  const nul = name.indexOf(0);
  if (name.subarray(0, nul < 0 ? 100 : nul).toString('latin1') !== INDEX_PATH) {
    throw new VerificationError(`${source}: the first entry is not ${INDEX_PATH}: not an airlock bundle`, {
      hint: 'give the bundle file airlock pack wrote (for a split bundle: the .000 volume)',
    });
  }
  const number = (field: string, start: number): number => {
    const text = block.subarray(start, start + 12).toString('latin1');
    if (!/^[0-7]{11}\0$/.test(text)) {
      throw new VerificationError(`${source}: the tar header of ${INDEX_PATH} at offset 0 has a non-canonical ${field} field: not in the canonical layout (written by an older airlock?)`, {
        hint: NOT_CANONICAL,
      });
    }
    return parseInt(text.slice(0, 11), 8);
  };
  const size = number('size', 124);
  const mtime = number('mtime', 136);
  if (size === 0 || size > maxSize) {
    throw new VerificationError(`${source}: ${INDEX_PATH} is ${size} bytes; an index is 1 to ${maxSize} bytes`, { hint: 'do not use this bundle' });
  }
  const mismatch = headerMismatch(source, { path: INDEX_PATH, size, sha256: '', headerOffset: 0, header: entryHeader(INDEX_PATH, size, mtime), offset: BLOCK }, block);
  if (mismatch) throw mismatch;
  return { size, mtime };
}

/** The size of the signature entry, from its header (the second one), once the index's size and mtime are known. */
export function readSignatureHeader(source: string, block: Buffer, at: number, mtime: number, maxSize: number): number {
  const text = block.subarray(124, 136).toString('latin1');
  const size = /^[0-7]{11}\0$/.test(text) ? parseInt(text.slice(0, 11), 8) : -1;
  if (size <= 0 || size > maxSize) {
    throw new VerificationError(`${source}: the second entry (offset ${at}) is not a signature of 1 to ${maxSize} bytes: the bundle is unsigned or malformed`, {
      hint: NOT_CANONICAL,
    });
  }
  const mismatch = headerMismatch(source, { path: SIGNATURE_PATH, size, sha256: '', headerOffset: at, header: entryHeader(SIGNATURE_PATH, size, mtime), offset: at + BLOCK }, block);
  if (mismatch) throw mismatch;
  return size;
}

/** gzip, zstd, bzip2 or xz by magic bytes, else undefined. */
function compression(b: Buffer): string | undefined {
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  if (b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return 'bzip2';
  if (b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a) return 'xz';
  return undefined;
}
