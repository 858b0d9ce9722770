import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { VerificationError } from '../cli/errors.ts';

/** Digests and the streaming verifier that checks every byte against one. */

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function digestOf(data: Buffer): string {
  return `sha256:${sha256Hex(data)}`;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function parseDigest(digest: string): { algorithm: 'sha256' | 'sha512'; hex: string } {
  if (!DIGEST_RE.test(digest)) throw new VerificationError(`malformed digest ${JSON.stringify(digest)}`);
  const [algorithm, hex] = digest.split(':') as ['sha256' | 'sha512', string];
  return { algorithm, hex };
}

/**
 * Checks content against its descriptor as it arrives: counts and hashes each
 * chunk, errors as soon as more than `size` bytes arrive, and holds back the
 * last chunk until the end, when size and digest must check out: a consumer
 * (an upload with a Content-Length, a file about to be renamed) never
 * receives all the bytes of content that is wrong. VerifyingStream runs it as
 * a stream; a reader that loops over chunks itself calls it directly.
 */
export class ContentCheck {
  private readonly hash: Hash;
  private readonly algorithm: string;
  private held: Buffer | undefined;
  bytes = 0;

  constructor(
    private readonly expected: { digest: string; size: number },
    private readonly what: string,
  ) {
    this.algorithm = parseDigest(expected.digest).algorithm;
    this.hash = createHash(this.algorithm);
  }

  /** Take the next chunk; returns what may be passed on now (the chunk before it), or throws a VerificationError. */
  accept(chunk: Buffer): Buffer | undefined {
    this.bytes += chunk.length;
    if (this.bytes > this.expected.size) {
      throw new VerificationError(`${this.what}: more than the expected ${this.expected.size} bytes (digest ${this.expected.digest})`);
    }
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    return previous;
  }

  /** The content ended: returns the last chunk once size and digest match, or throws a VerificationError. */
  end(): Buffer | undefined {
    if (this.bytes !== this.expected.size) {
      throw new VerificationError(`${this.what}: got ${this.bytes} bytes, expected ${this.expected.size}`);
    }
    const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.expected.digest) {
      throw new VerificationError(`${this.what}: content has digest ${actual}, expected ${this.expected.digest}`);
    }
    return this.held;
  }
}

/** Passes bytes through a ContentCheck: the stream errors where the check throws. */
export class VerifyingStream extends Transform {
  private readonly check: ContentCheck;

  constructor(expected: { digest: string; size: number }, what: string) {
    super();
    this.check = new ContentCheck(expected, what);
    // A source may fill and fail this stream before its consumer attaches (a small blob read and
    // found wrong while its upload session is still being opened). That must not be an unhandled
    // 'error' event: the consumer still gets the error, from the stream's errored state, when it
    // reads (async iteration and pipeline both check it).
    this.on('error', () => undefined);
  }

  get bytes(): number {
    return this.check.bytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let pass: Buffer | undefined;
    try {
      pass = this.check.accept(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback(null, pass);
  }

  override _flush(callback: TransformCallback): void {
    let last: Buffer | undefined;
    try {
      last = this.check.end();
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback(null, last);
  }
}

/** The chunks of `source` through a ContentCheck: a loop's VerifyingStream. */
export async function* verifiedChunks(source: AsyncIterable<Buffer>, expected: { digest: string; size: number }, what: string): AsyncGenerator<Buffer> {
  const check = new ContentCheck(expected, what);
  for await (const chunk of source) {
    const pass = check.accept(chunk);
    if (pass) yield pass;
  }
  const last = check.end();
  if (last) yield last;
}
