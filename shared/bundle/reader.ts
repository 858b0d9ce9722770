import type { KeyObject } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirlockError, VerificationError } from '../cli/errors.ts';
import { VerifyingStream } from '../oci/digest.ts';
import { verifyBlob } from '../sign/keys.ts';
import { BLOCK, headerMismatch, layoutBundle, padding, readFirstHeader, readSignatureHeader, type BundleLayout } from './canonical.ts';
import { afterEnd, checkMtime, checkZeros, truncated } from './file.ts';
import { INDEX_PATH, MAX_INDEX_BYTES, MAX_SIGNATURE_BYTES, parseBundleIndex, SIGNATURE_PATH, type BundleEntry, type BundleIndex } from './format.ts';
import type { BundleBytes } from './volumes.ts';

/**
 * BundleReader: one sequential pass over a bundle (a pipe, an S3 stream),
 * trusting nothing before the signature. No tar parser reads it: the first
 * two headers are compared with the canonical ones for their sizes, the
 * signature is checked, and from then on every byte outside the entries'
 * contents must be exactly what the signed index implies (the same checks,
 * and messages, as scanBundleFile's by offset). Each entry's content is
 * hashed while it streams and must match the index (the last chunk is held
 * back until it does). Nothing may follow the end-of-archive zeros.
 */
export interface ReadBundleOptions {
  publicKey: KeyObject;
  /** For messages: the bundle's file name. */
  source: string;
  /** Told the verified index before any other entry is read. */
  onIndex?: (index: BundleIndex) => void | Promise<void>;
  /** Each entry after the index, in tar order, as a verifying stream it must consume. */
  onEntry?: (entry: BundleEntry, body: Readable) => Promise<void>;
}

export async function readBundle(input: Readable, options: ReadBundleOptions): Promise<BundleIndex> {
  const { source } = options;
  const bytes = new SequentialBytes(input);
  try {
    const { size: indexSize, mtime } = readFirstHeader(source, await bytes.take(BLOCK), MAX_INDEX_BYTES);
    const indexBytes = await bytes.exact(indexSize, () => `${source}: truncated: it ends inside ${INDEX_PATH}`);
    checkZeros(source, await bytes.exact(padding(indexSize), () => `${source}: truncated: it ends inside ${INDEX_PATH}`), bytes.position - padding(indexSize), `the padding after ${INDEX_PATH}`);
    const sigAt = bytes.position;
    const sigSize = readSignatureHeader(source, await bytes.exact(BLOCK, () => `${source}: truncated: it ends inside ${SIGNATURE_PATH}`), sigAt, mtime, MAX_SIGNATURE_BYTES);
    const signature = (await bytes.exact(sigSize, () => `${source}: truncated: it ends inside ${SIGNATURE_PATH}`)).toString('utf8');
    verifyBlob(indexBytes, signature, options.publicKey, `${source}: ${INDEX_PATH}`);
    const index = parseBundleIndex(indexBytes);
    checkMtime(source, index, mtime);
    await options.onIndex?.(index);
    await readEntries(bytes, layoutBundle(indexSize, sigSize, index.entries, mtime), options);
    return index;
  } catch (err) {
    input.destroy();
    if (err instanceof AirlockError) throw err;
    throw new VerificationError(`${source}: ${(err as Error).message}`, { cause: err });
  }
}

/** After the signature: padding, then each entry's header, content and padding, then the end of the archive. */
async function readEntries(bytes: SequentialBytes, layout: BundleLayout, options: ReadBundleOptions): Promise<void> {
  const { source } = options;
  const short = () => truncated(source, layout.entries, bytes.position, layout.size);
  const placed = layout.entries;
  // placed[0] and [1] are the index and the signature, read by the caller up to the signature's padding.
  for (let i = 2; i <= placed.length; i++) {
    const prev = placed[i - 1]!;
    const pad = padding(prev.size);
    checkZeros(source, await bytes.exact(pad, short), bytes.position - pad, `the padding after ${prev.path}`);
    if (i === placed.length) break;
    const e = placed[i]!;
    const header = await bytes.take(e.header.length);
    const mismatch = headerMismatch(source, e, header);
    if (mismatch) throw header.length < e.header.length ? short() : mismatch;
    const verifier = new VerifyingStream({ digest: `sha256:${e.sha256}`, size: e.size }, `${source}: entry ${e.path}`);
    const flowing = pipeline(Readable.from(bytes.range(e.size, short), { objectMode: false }), verifier, ...(options.onEntry ? [] : [discard()]));
    if (options.onEntry) await Promise.all([flowing, options.onEntry(e, verifier)]);
    else await flowing;
  }
  const tail = layout.size - bytes.position;
  const endAt = bytes.position;
  checkZeros(source, await bytes.exact(tail, short), endAt, 'the end of the archive');
  if ((await bytes.take(1)).length > 0) throw afterEnd(source, layout.size);
}

/** A pull reader over a stream: exact-length reads and ranges, with the position they reached. */
class SequentialBytes {
  position = 0;
  private held: Buffer = Buffer.alloc(0);
  private readonly chunks: AsyncIterator<Buffer>;
  private ended = false;

  constructor(input: Readable) {
    this.chunks = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.chunks.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.held = this.held.length === 0 ? next.value : Buffer.concat([this.held, next.value]);
    return true;
  }

  /** Up to `n` bytes: fewer only at the end of the stream. For small reads. */
  async take(n: number): Promise<Buffer> {
    while (this.held.length < n && (await this.more()));
    const out = this.held.subarray(0, n);
    this.held = this.held.subarray(out.length);
    this.position += out.length;
    return Buffer.from(out);
  }

  async exact(n: number, short: () => Error | string): Promise<Buffer> {
    const out = await this.take(n);
    if (out.length < n) {
      const why = short();
      throw typeof why === 'string' ? new VerificationError(why, { hint: 'copy or download the bundle again' }) : why;
    }
    return out;
  }

  /** The next `n` bytes as chunks, without copying them into one buffer. */
  async *range(n: number, short: () => Error): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.held.length === 0 && !(await this.more())) throw short();
      const out = this.held.subarray(0, Math.min(left, this.held.length));
      this.held = this.held.subarray(out.length);
      this.position += out.length;
      left -= out.length;
      yield out;
    }
  }
}

function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/**
 * The index alone, for `inspect`: its header checked as canonical, the index
 * validated into its shape, but NOT verified against a key (the caller says so).
 * The file's size must be the one the index implies (a truncated or extended
 * bundle is exit 3 before anything is shown); no entry's content is read.
 */
export async function peekBundleIndex(bytes: BundleBytes, source: string): Promise<BundleIndex> {
  const cut = (what: string) => new VerificationError(`${source}: truncated: it ends inside ${what}`, { hint: 'copy or download the bundle again' });
  const first = await bytes.read(0, Math.min(BLOCK, bytes.size));
  const { size, mtime } = readFirstHeader(source, first, MAX_INDEX_BYTES);
  if (BLOCK + size > bytes.size) throw cut(INDEX_PATH);
  const index = parseBundleIndex(await bytes.read(BLOCK, size));
  const sigAt = BLOCK + size + padding(size);
  if (sigAt + BLOCK > bytes.size) throw cut(SIGNATURE_PATH);
  const sigSize = readSignatureHeader(source, await bytes.read(sigAt, BLOCK), sigAt, mtime, MAX_SIGNATURE_BYTES);
  const layout = layoutBundle(size, sigSize, index.entries, mtime);
  if (bytes.size < layout.size) throw truncated(source, layout.entries, bytes.size, layout.size);
  if (bytes.size > layout.size) throw afterEnd(source, layout.size);
  return index;
}
