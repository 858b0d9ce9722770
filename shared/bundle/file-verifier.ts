import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BundleIndex } from './format.ts';
import { scanBundleFile } from './file.ts';
import { readBundle } from './reader.ts';
import type { BundleBytes } from './volumes.ts';
import { VerificationError } from '../cli/errors.ts';

/**
 * Verify a bundle that is a local file, using every core. A file is
 * random-access, so after the signed index checks out, one pass over the tar
 * headers alone (a 512-byte read per entry) confirms every entry's path,
 * type and size and where its data lies, and worker threads hash the data
 * ranges in parallel.
 *
 * The parallel path only ever says yes. Anything it does not expect (a
 * header it does not know, a mismatch, a digest that differs, trailing data)
 * hands the file to the sequential BundleReader, which is the reference: it
 * finds the same problem and names it precisely. So both paths accept and
 * refuse exactly the same bundles, with the same messages.
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
  /** Which path decided: 'parallel', or 'sequential' after a fallback. */
  method: 'parallel' | 'sequential';
}

export async function verifyBundleFile(bytes: BundleBytes, options: FileVerifyOptions): Promise<FileVerifyResult> {
  const fast = await verifyInParallel(bytes, options).catch((err: unknown) => {
    if (err instanceof VerificationError) throw err;
    return undefined;
  });
  if (fast) return { index: fast, method: 'parallel' };
  let told = false;
  const index = await readBundle(bytes.stream(0, bytes.size), {
    publicKey: options.publicKey,
    source: options.source,
    onIndex: (i) => {
      told = true;
      options.onIndex?.(i);
    },
    onEntry: async (entry, body) => {
      for await (const _chunk of body) void _chunk;
      options.onEntryVerified?.(entry.size);
    },
  });
  if (!told) options.onIndex?.(index);
  return { index, method: 'sequential' };
}

/** Resolves with the index when everything checked out; undefined (or a rejection) means "ask the sequential reader". */
async function verifyInParallel(bytes: BundleBytes, options: FileVerifyOptions): Promise<BundleIndex | undefined> {
  const scan = await scanBundleFile(bytes, options.publicKey, options.source);
  if (!scan) return undefined;
  options.onIndex?.(scan.index);
  const ranges = scan.entries.map((e) => ({ pieces: bytes.pieces(e.offset, e.size), size: e.size, sha256: e.sha256 }));
  const ok = await hashRanges(ranges, options.threads ?? Math.min(availableParallelism(), 8), options.onEntryVerified);
  return ok ? scan.index : undefined;
}

interface Range {
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

/** Hash every range on `threads` workers, largest first; false at the first mismatch. */
async function hashRanges(ranges: Range[], threads: number, onVerified?: (bytes: number) => void): Promise<boolean> {
  const queue = ranges.map((r, id) => ({ ...r, id })).sort((a, b) => b.size - a.size);
  const workers = Array.from({ length: Math.max(1, Math.min(threads, queue.length)) }, () => new Worker(HASH_WORKER, { eval: true }));
  try {
    const results = await Promise.all(
      workers.map(
        (worker) =>
          new Promise<boolean>((resolve, reject) => {
            let current: (typeof queue)[number] | undefined;
            const feed = () => {
              current = queue.shift();
              if (current) worker.postMessage({ id: current.id, pieces: current.pieces });
              else resolve(true);
            };
            worker.on('message', (m: { id: number; hex?: string; error?: string }) => {
              if (m.error !== undefined || m.hex !== current!.sha256) {
                queue.length = 0;
                resolve(false);
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
    return results.every(Boolean);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
