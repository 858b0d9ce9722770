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
 * Passes bytes through while hashing and counting them. It errors as soon as
 * more than `size` bytes arrive, and it holds back the last chunk until the
 * stream ends and size and digest check out: a consumer (an upload with a
 * Content-Length, a file about to be renamed) never receives all the bytes of
 * content that is wrong.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: string;
  private held: Buffer | undefined;
  bytes = 0;

  constructor(
    private readonly expected: { digest: string; size: number },
    private readonly what: string,
  ) {
    super();
    this.algorithm = parseDigest(expected.digest).algorithm;
    this.hash = createHash(this.algorithm);
    // A source may fill and fail this stream before its consumer attaches (a small blob read and
    // found wrong while its upload session is still being opened). That must not be an unhandled
    // 'error' event: the consumer still gets the error, from the stream's errored state, when it
    // reads (async iteration and pipeline both check it).
    this.on('error', () => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expected.size) {
      callback(
        new VerificationError(`${this.what}: more than the expected ${this.expected.size} bytes (digest ${this.expected.digest})`),
      );
      return;
    }
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes !== this.expected.size) {
      callback(new VerificationError(`${this.what}: got ${this.bytes} bytes, expected ${this.expected.size}`));
      return;
    }
    const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.expected.digest) {
      callback(new VerificationError(`${this.what}: content has digest ${actual}, expected ${this.expected.digest}`));
      return;
    }
    callback(null, this.held);
  }
}
