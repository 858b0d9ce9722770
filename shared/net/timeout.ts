import { Transform, type TransformCallback } from 'node:stream';

/**
 * The stall timeout every networked command shares (--timeout SECONDS): a
 * connection that makes no progress for this long (no byte received or sent,
 * a connect or TLS handshake that does not finish, response headers or body
 * that stall) is dropped and retried like a broken one. Set once by the CLI;
 * registry, git, S3 and SFTP clients read it when they are built.
 */
export const DEFAULT_NETWORK_TIMEOUT_SECONDS = 60;

let timeoutMs = DEFAULT_NETWORK_TIMEOUT_SECONDS * 1000;

export function setNetworkTimeoutSeconds(seconds: number): void {
  timeoutMs = Math.round(seconds * 1000);
}

/** The stall timeout in milliseconds. */
export function networkTimeoutMs(): number {
  return timeoutMs;
}

/** "no progress for 60 s (--timeout)": the words every stall error uses. */
export function stallWords(ms: number = timeoutMs): string {
  const seconds = ms / 1000;
  return `no progress for ${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s (--timeout)`;
}

/** Codes of errors that mean "the peer made no progress in time" (undici's, ours). */
export const STALL_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'AIRLOCK_STALL']);

/** A connection dropped for making no progress; retried like ECONNRESET. */
export class StallError extends Error {
  readonly code = 'AIRLOCK_STALL';
  constructor(where: string, ms: number = timeoutMs) {
    super(`${where}: ${stallWords(ms)}`);
    this.name = 'StallError';
  }
}

/**
 * A pass-through that calls `onStall` when no chunk went through for `ms`
 * while the stream is still open: a request body the server stopped
 * reading, a transfer whose peer went silent. The watch stops at the end.
 */
export class ProgressWatch extends Transform {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly onStall: () => void,
  ) {
    super();
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onStall(), this.ms);
    this.timer.unref();
  }

  /** Restart the clock (progress seen elsewhere, e.g. bytes read by the peer). */
  touch(): void {
    if (this.timer !== undefined) this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.arm();
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.stop();
    done();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.stop();
    done(err);
  }
}

/** An idle timer for callback-style transfers (SFTP): `touch()` on progress, `stop()` when done. */
export function idleTimer(ms: number, onStall: () => void): { touch(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(onStall, ms);
    timer.unref();
  };
  arm();
  return {
    touch: () => {
      if (timer !== undefined) arm();
    },
    stop: () => {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
