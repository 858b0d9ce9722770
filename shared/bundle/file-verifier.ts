import { createHash, type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import pLimit from 'p-limit';
import type { BundleIndex } from './format.ts';
import { scanBundleFile, type LocatedEntry } from './file.ts';
import { HashPool } from './hash-pool.ts';
import { readBundle } from './reader.ts';
import type { BundleBytes } from './volumes.ts';
import { VerificationError } from '../cli/errors.ts';

/**
 * Verify a bundle read by offset, using every core. The signed index, every
 * header, every padding byte and the end of the archive are checked first
 * (scanBundleFile: the canonical layout), then the main thread and worker
 * threads hash the entries' contents in parallel (HashPool). A bundle with no local files (S3) streams
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
  // The main thread only waits while the entries are hashed: it hashes too. The workers start while the index is read.
  const pool = new HashPool(hashThreads(options.threads), { mainThread: true });
  try {
    const scan = await scanBundleFile(bytes, options.publicKey, options.source);
    options.onIndex?.(scan.index);
    await hashLocated(bytes, scan.entries, pool, { source: options.source, onVerified: options.onEntryVerified });
    return { index: scan.index, method: 'parallel' };
  } finally {
    await pool.close();
  }
}

/** Hashing threads: as asked, else the CPUs available, at most 8. */
function hashThreads(threads: number | undefined): number {
  return threads ?? Math.min(availableParallelism(), 8);
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
  const threads = hashThreads(options.threads);
  if (!bytes.pieces) {
    const limit = pLimit(threads);
    await Promise.all(
      entries.map((e) =>
        limit(async () => {
          if (options.signal?.aborted) return;
          const hash = createHash('sha256');
          for await (const chunk of bytes.stream(e.offset, e.offset + e.size) as AsyncIterable<Buffer>) hash.update(chunk);
          const hex = hash.digest('hex');
          if (hex !== e.sha256) throw entryDiffers(options.source, e, differs(hex, e.sha256));
          options.onVerified?.(e.size);
        }),
      ),
    );
    return;
  }
  if (entries.length === 0 || options.signal?.aborted) return;
  // Workers only: the caller (a load) keeps the main thread for its uploads.
  const pool = new HashPool(Math.min(threads, entries.length));
  try {
    await hashLocated(bytes, entries, pool, options);
  } finally {
    await pool.close();
  }
}

/** Hash entries of a bundle in local files on a pool; a VerificationError for the first that differs. */
async function hashLocated(
  bytes: BundleBytes,
  entries: readonly LocatedEntry[],
  pool: HashPool,
  options: { source: string; onVerified?: (bytes: number) => void; signal?: AbortSignal },
): Promise<void> {
  const pieces = bytes.pieces!.bind(bytes);
  const ranges = entries.map((e) => ({ item: e, pieces: pieces(e.offset, e.size), size: e.size, sha256: e.sha256 }));
  const failed = await pool.hash(ranges, options);
  if (failed) {
    throw entryDiffers(options.source, failed.range.item, failed.error !== undefined ? `could not be read: ${failed.error}` : differs(failed.hex!, failed.range.sha256));
  }
}

function entryDiffers(source: string, e: LocatedEntry, why: string): VerificationError {
  return new VerificationError(`${source}: entry ${e.path}: ${why}`, { hint: 'do not use this bundle: fetch or copy it again from its source' });
}

/** Worded as VerifyingStream words it, so both readers give the same message. */
function differs(actual: string, expected: string): string {
  return `content has digest sha256:${actual}, expected sha256:${expected}`;
}
