import { createHash, type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import pLimit from 'p-limit';
import type { BundleIndex } from './format.ts';
import { scanBundleFile, type LocatedEntry } from './file.ts';
import { readBundle } from './reader.ts';
import type { BundleBytes } from './volumes.ts';
import { VerificationError } from '../cli/errors.ts';

/**
 * Verify a bundle read by offset, using every core. The signed index, every
 * header, every padding byte and the end of the archive are checked first
 * (scanBundleFile: the canonical layout), then worker threads hash the
 * entries' contents in parallel. A bundle with no local files (S3) streams
 * once through the sequential reader instead, which makes the same checks.
 */
export interface FileVerifyOptions {
  publicKey: KeyObject;
  /** For messages: the bundle's file name. */
  source: string;
  /** Hashing threads (default: the CPUs available, at most 8). */
  threads?: number;
  /** Told the verified index before the entries are checked. */
  onIndex?: (index: BundleIndex) => void;
  /** Told about each entry once its bytes checked out. */
  onEntryVerified?: (bytes: number) => void;
}

export interface FileVerifyResult {
  index: BundleIndex;
  /** How the contents were read: by offset in parallel, or in one sequential stream. */
  method: 'parallel' | 'sequential';
}

export async function verifyBundleFile(bytes: BundleBytes, options: FileVerifyOptions): Promise<FileVerifyResult> {
  if (!bytes.pieces) {
    const index = await readBundle(bytes.stream(0, bytes.size), {
      publicKey: options.publicKey,
      source: options.source,
      onIndex: (i) => options.onIndex?.(i),
      onEntry: async (entry, body) => {
        for await (const _chunk of body) void _chunk;
        options.onEntryVerified?.(entry.size);
      },
    });
    return { index, method: 'sequential' };
  }
  const scan = await scanBundleFile(bytes, options.publicKey, options.source);
  options.onIndex?.(scan.index);
  await hashEntries(bytes, scan.entries, { source: options.source, threads: options.threads, onVerified: options.onEntryVerified });
  return { index: scan.index, method: 'parallel' };
}

/**
 * Hash entries of a located bundle and compare them with the signed index:
 * on worker threads over local files, else (S3) as ranged streams. Throws a
 * VerificationError naming the first entry whose content differs.
 */
export async function hashEntries(
  bytes: BundleBytes,
  entries: readonly LocatedEntry[],
  options: { source: string; threads?: number; onVerified?: (bytes: number) => void; signal?: AbortSignal },
): Promise<void> {
  const threads = options.threads ?? Math.min(availableParallelism(), 8);
  const bad = (e: LocatedEntry, why: string) =>
    new VerificationError(`${options.source}: entry ${e.path}: ${why}`, { hint: 'do not use this bundle: fetch or copy it again from its source' });
  if (!bytes.pieces) {
    const limit = pLimit(threads);
    await Promise.all(
      entries.map((e) =>
        limit(async () => {
          if (options.signal?.aborted) return;
          const hash = createHash('sha256');
          for await (const chunk of bytes.stream(e.offset, e.offset + e.size) as AsyncIterable<Buffer>) hash.update(chunk);
          const hex = hash.digest('hex');
          if (hex !== e.sha256) throw bad(e, differs(hex, e.sha256));
          options.onVerified?.(e.size);
        }),
      ),
    );
    return;
  }
  const pieces = bytes.pieces.bind(bytes);
  const ranges = entries.map((e) => ({ entry: e, pieces: pieces(e.offset, e.size), size: e.size, sha256: e.sha256 }));
  const failed = await hashRanges(ranges, threads, options.onVerified, options.signal);
  if (failed) throw bad(failed.range.entry, failed.error !== undefined ? `could not be read: ${failed.error}` : differs(failed.hex!, failed.range.sha256));
}

/** Worded as VerifyingStream words it, so both readers give the same message. */
function differs(actual: string, expected: string): string {
  return `content has digest sha256:${actual}, expected sha256:${expected}`;
}

interface Range {
  entry: LocatedEntry;
  /** The entry's bytes, as pieces of one or more files (volumes). */
  pieces: { path: string; start: number; size: number }[];
  size: number;
  sha256: string;
}

/**
 * Worker source, evaluated (no separate file: the one-file loader must carry
 * it). Each message names a byte range; the answer is its sha256.
 */
const HASH_WORKER = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const fds = new Map();
const buf = Buffer.allocUnsafe(1 << 20);
parentPort.on('message', ({ id, pieces }) => {
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
    parentPort.postMessage({ id, hex: hash.digest('hex') });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

/** Hash every range on `threads` workers, largest first; the first range that differs (or could not be read), if any. */
async function hashRanges(
  ranges: Range[],
  threads: number,
  onVerified?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<{ range: Range; hex?: string; error?: string } | undefined> {
  const queue = ranges.map((r, id) => ({ ...r, id })).sort((a, b) => b.size - a.size);
  if (queue.length === 0 || signal?.aborted) return undefined;
  let failure: { range: Range; hex?: string; error?: string } | undefined;
  const workers = Array.from({ length: Math.max(1, Math.min(threads, queue.length)) }, () => new Worker(HASH_WORKER, { eval: true }));
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            let current: (typeof queue)[number] | undefined;
            // Cancelled: no new range; the workers are terminated below, mid-range or not.
            signal?.addEventListener('abort', () => {
              queue.length = 0;
              resolve();
            });
            const feed = () => {
              current = queue.shift();
              if (current) worker.postMessage({ id: current.id, pieces: current.pieces });
              else resolve();
            };
            worker.on('message', (m: { id: number; hex?: string; error?: string }) => {
              if (m.error !== undefined || m.hex !== current!.sha256) {
                failure ??= { range: current!, ...(m.error !== undefined ? { error: m.error } : { hex: m.hex! }) };
                queue.length = 0;
                resolve();
                return;
              }
              onVerified?.(current!.size);
              feed();
            });
            worker.on('error', reject);
            feed();
          }),
      ),
    );
    return failure;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
