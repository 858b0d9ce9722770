import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

/**
 * Hash byte ranges of local files on every core: worker threads and, when the
 * caller has nothing else to do meanwhile (verify), the main thread too. Each
 * range is a list of pieces of files (a split bundle's entry may span
 * volumes); its sha256 is compared with the expected one. Ranges are taken
 * largest first by whichever hasher is free, so the cores finish together.
 * The workers start when the pool is made: their start-up (about 0.1 s of CPU
 * each) overlaps whatever the caller does before it hashes (reading the index).
 */
export interface HashRange<T> {
  /** What the caller gets back when this range fails. */
  item: T;
  pieces: { path: string; start: number; size: number }[];
  size: number;
  sha256: string;
}

/** The first range that differs (hex) or could not be read (error). */
export interface HashFailure<T> {
  range: HashRange<T>;
  hex?: string;
  error?: string;
}

type HashResult = { hex: string; error?: undefined } | { error: string; hex?: undefined };

interface Hasher {
  hash(pieces: HashRange<unknown>['pieces'], signal?: AbortSignal): Promise<HashResult>;
  close(): Promise<void>;
}

const CHUNK = 1 << 20;

/**
 * Worker source, evaluated (no separate file: the one-file loader must carry
 * it). Each message names the pieces of one range; the answer is its sha256.
 */
const HASH_WORKER = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const fds = new Map();
const buf = Buffer.allocUnsafe(${CHUNK});
parentPort.on('message', (pieces) => {
  try {
    const hash = createHash('sha256');
    for (const { path, start, size } of pieces) {
      let fd = fds.get(path);
      if (fd === undefined) fds.set(path, (fd = openSync(path, 'r')));
      let pos = start;
      let left = size;
      while (left > 0) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
        if (n === 0) throw new Error('unexpected end of file');
        hash.update(n === buf.length ? buf : buf.subarray(0, n));
        pos += n;
        left -= n;
      }
    }
    parentPort.postMessage({ hex: hash.digest('hex') });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
});
`;

/** One worker thread, one range at a time. */
class WorkerHasher implements Hasher {
  private readonly worker = new Worker(HASH_WORKER, { eval: true });
  private pending: { resolve: (r: HashResult) => void; reject: (err: unknown) => void } | undefined;
  private failed: unknown;

  constructor() {
    this.worker.on('message', (m: HashResult) => this.settle((p) => p.resolve(m)));
    this.worker.on('error', (err) => {
      this.failed ??= err;
      this.settle((p) => p.reject(err));
    });
  }

  hash(pieces: HashRange<unknown>['pieces']): Promise<HashResult> {
    if (this.failed) return Promise.reject(this.failed as Error);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(pieces);
    });
  }

  private settle(act: (p: NonNullable<WorkerHasher['pending']>) => void): void {
    const p = this.pending;
    this.pending = undefined;
    if (p) act(p);
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * The main thread as a hasher: reads are asynchronous (the next chunk is read
 * while this one is hashed) so the event loop keeps answering the workers.
 */
class MainThreadHasher implements Hasher {
  private readonly files = new Map<string, Promise<FileHandle>>();
  private readonly buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];

  async hash(pieces: HashRange<unknown>['pieces'], signal?: AbortSignal): Promise<HashResult> {
    try {
      const hash = createHash('sha256');
      for (const { path, start, size } of pieces) {
        if (!this.files.has(path)) this.files.set(path, open(path, 'r'));
        const file = await this.files.get(path)!;
        let pos = start;
        let left = size;
        let turn = 0;
        let reading = left > 0 ? file.read(this.buffers[turn]!, 0, Math.min(CHUNK, left), pos) : undefined;
        while (reading) {
          const { bytesRead, buffer } = await reading;
          if (bytesRead === 0) throw new Error('unexpected end of file');
          pos += bytesRead;
          left -= bytesRead;
          turn ^= 1;
          reading = left > 0 && !signal?.aborted ? file.read(this.buffers[turn]!, 0, Math.min(CHUNK, left), pos) : undefined;
          hash.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
        }
      }
      return { hex: hash.digest('hex') };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    const files = await Promise.allSettled(this.files.values());
    await Promise.all(files.map((f) => (f.status === 'fulfilled' ? f.value.close() : undefined)));
  }
}

export class HashPool {
  private readonly hashers: Hasher[];

  /** `threads` hashers in all; with `mainThread`, one of them is the main thread. */
  constructor(threads: number, options: { mainThread?: boolean } = {}) {
    const n = Math.max(1, threads);
    const workers = options.mainThread ? n - 1 : n;
    this.hashers = [...Array.from({ length: workers }, () => new WorkerHasher()), ...(options.mainThread ? [new MainThreadHasher()] : [])];
  }

  /**
   * Hash every range; the first that differs or could not be read, if any
   * (the others left unhashed). Aborted: resolves at once, hashing no more.
   */
  async hash<T>(ranges: readonly HashRange<T>[], options: { onVerified?: (bytes: number) => void; signal?: AbortSignal } = {}): Promise<HashFailure<T> | undefined> {
    const { signal, onVerified } = options;
    const queue = [...ranges].sort((a, b) => b.size - a.size);
    let failure: HashFailure<T> | undefined;
    const aborted = new Promise<undefined>((resolve) => {
      if (signal?.aborted) resolve(undefined);
      signal?.addEventListener('abort', () => resolve(undefined), { once: true });
    });
    const lane = async (hasher: Hasher) => {
      for (let range = queue.shift(); range && !signal?.aborted; range = queue.shift()) {
        const result = await Promise.race([hasher.hash(range.pieces, signal), aborted]);
        if (!result) return;
        if (result.error !== undefined || result.hex !== range.sha256) {
          failure ??= { range, ...result };
          queue.length = 0;
          return;
        }
        onVerified?.(range.size);
      }
    };
    await Promise.all(this.hashers.slice(0, Math.max(1, queue.length)).map(lane));
    return failure;
  }

  /** Stop the workers (mid-range or not) and close the files. */
  async close(): Promise<void> {
    await Promise.all(this.hashers.map((h) => h.close()));
  }
}
