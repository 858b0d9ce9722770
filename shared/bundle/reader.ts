import type { KeyObject } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { VerificationError } from '../cli/errors.ts';
import { VerifyingStream } from '../oci/digest.ts';
import { verifyBlob } from '../sign/keys.ts';
import {
  checkEntryPath,
  INDEX_PATH,
  MAX_INDEX_BYTES,
  MAX_SIGNATURE_BYTES,
  parseBundleIndex,
  SIGNATURE_PATH,
  type BundleEntry,
  type BundleIndex,
} from './format.ts';

/**
 * BundleReader: one sequential pass over a bundle tar, trusting nothing before
 * the signature. The index and its signature come first and are checked
 * against the operator's key; then every later entry must be the next one the
 * index lists, a regular file with the listed size, and its bytes must hash to
 * the listed sha256 while they stream (the last chunk is held back until they
 * do). Links, devices, unlisted, duplicate, reordered or truncated entries
 * stop the read with a VerificationError (exit 3) naming the entry.
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

export function readBundle(input: Readable, options: ReadBundleOptions): Promise<BundleIndex> {
  const { source } = options;
  return new Promise<BundleIndex>((resolve, reject) => {
    let failed = false;
    let position = 0;
    let indexBytes: Buffer | undefined;
    let index: BundleIndex | undefined;
    let chain: Promise<void> = Promise.resolve();

    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      input.unpipe(parser);
      input.destroy();
      reject(
        err instanceof VerificationError
          ? err
          : new VerificationError(`${source}: ${(err as Error).message}`, { cause: err }),
      );
    };
    const bad = (message: string): never => {
      throw new VerificationError(`${source}: ${message}`, { hint: 'do not use this bundle: fetch or copy it again from its source' });
    };

    const handle = async (e: ReadEntry, n: number): Promise<void> => {
      if (failed) {
        e.resume();
        return;
      }
      const path = e.path;
      if (e.type !== 'File' && e.type !== 'OldFile') {
        e.resume();
        bad(`entry ${JSON.stringify(path)} is a ${e.type}: bundles hold regular files only`);
      }
      if (n === 0) {
        if (path !== INDEX_PATH) bad(`the first entry is ${JSON.stringify(path)}, not ${INDEX_PATH}: not an airlock bundle`);
        indexBytes = await collect(e, MAX_INDEX_BYTES, path);
        return;
      }
      if (n === 1) {
        if (path !== SIGNATURE_PATH) bad(`the second entry is ${JSON.stringify(path)}, not ${SIGNATURE_PATH}: the bundle is unsigned`);
        const signature = (await collect(e, MAX_SIGNATURE_BYTES, path)).toString('utf8');
        verifyBlob(indexBytes!, signature, options.publicKey, `${source}: ${INDEX_PATH}`);
        index = parseBundleIndex(indexBytes!);
        await options.onIndex?.(index);
        return;
      }
      const expected = index!.entries[n - 2];
      const unsafe = checkEntryPath(path);
      if (unsafe) {
        e.resume();
        bad(`entry ${JSON.stringify(path)} has ${unsafe}`);
      }
      if (!expected || expected.path !== path) {
        e.resume();
        const listedAt = index!.entries.findIndex((x) => x.path === path);
        if (listedAt < 0) bad(`entry ${path} is not listed in the signed index`);
        bad(listedAt < n - 2 ? `entry ${path} appears twice` : `entry ${path} is out of order (expected ${expected?.path ?? 'the end of the bundle'})`);
      }
      if (e.size !== expected!.size) {
        e.resume();
        bad(`entry ${path}: its tar header says ${e.size} bytes, the signed index says ${expected!.size}`);
      }
      const verifier = new VerifyingStream({ digest: `sha256:${expected!.sha256}`, size: expected!.size }, `${source}: entry ${path}`);
      const flowing = pipeline(e as unknown as Readable, verifier, ...(options.onEntry ? [] : [discard()]));
      if (options.onEntry) await Promise.all([flowing, options.onEntry(expected!, verifier)]);
      else await flowing;
    };

    // Not strict: node-tar then reports every tar-level problem as a warning
    // and always closes, so the checks below decide, once, with context.
    const parser = new Parser({
      strict: false,
      onReadEntry: (e: ReadEntry) => {
        const n = position++;
        chain = chain.then(() => handle(e, n)).catch(fail);
      },
    });
    // A tar-level problem is reported after the entries before it were handled,
    // so an entry's own, more precise failure wins.
    let tarProblem: VerificationError | undefined;
    const malformed = (message: string | Error, data?: { header?: { path?: string; type?: string } }) => {
      tarProblem ??= tarError(source, message, data?.header);
    };
    parser.on('warn', (_code: string, message: string | Error, data?: { header?: { path?: string; type?: string } }) =>
      malformed(message, data),
    );
    parser.on('error', (err: Error) => malformed(err));
    parser.on('close', () => {
      // Wait for every handler, including failures queued by the tar checks above.
      void chain.then(() => chain).then(() => {
        if (failed) return;
        if (tarProblem) return fail(tarProblem);
        if (!index) return fail(new VerificationError(`${source}: no signed index: not an airlock bundle, or truncated`));
        const seen = position - 2;
        if (seen < index.entries.length) {
          return fail(new VerificationError(`${source}: truncated: entry ${index.entries[seen]!.path} and ${index.entries.length - seen - 1} more are missing`));
        }
        resolve(index);
      });
    });
    input.on('error', (err) => fail(err));
    input.pipe(parser);
  });
}

function tarError(source: string, message: string | Error, header?: { path?: string; type?: string }): VerificationError {
  const text = typeof message === 'string' ? message : message.message;
  if (/linkpath/.test(text) && header?.path) {
    return new VerificationError(`${source}: entry ${JSON.stringify(header.path)} is a ${header.type ?? 'link'}: bundles hold regular files only`);
  }
  return new VerificationError(`${source}: malformed or truncated tar: ${text}`);
}

function collect(e: ReadEntry, limit: number, path: string): Promise<Buffer> {
  if (e.size > limit) {
    e.resume();
    return Promise.reject(new VerificationError(`${path} is ${e.size} bytes, over the ${limit}-byte limit`));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    e.on('data', (c: Buffer) => parts.push(c));
    e.on('end', () => {
      const b = Buffer.concat(parts);
      if (b.length !== e.size) reject(new VerificationError(`${path}: truncated (${b.length} of ${e.size} bytes)`));
      else resolve(b);
    });
    e.on('error', reject);
  });
}

function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/**
 * The index alone, for `inspect`: read from the first entry, validated but NOT
 * verified against a key (the caller says so). Stops reading after it.
 */
export function peekBundleIndex(input: Readable, source: string): Promise<BundleIndex> {
  return new Promise<BundleIndex>((resolve, reject) => {
    let done = false;
    let first = true;
    const finish = (err: unknown, index?: BundleIndex) => {
      if (done) return;
      done = true;
      input.unpipe(parser);
      input.destroy();
      if (err) reject(err instanceof VerificationError ? err : new VerificationError(`${source}: ${(err as Error).message}`));
      else resolve(index!);
    };
    const parser = new Parser({
      strict: false,
      onReadEntry: (e: ReadEntry) => {
        if (done || !first) return void e.resume();
        first = false;
        if (e.path !== INDEX_PATH || (e.type !== 'File' && e.type !== 'OldFile')) {
          e.resume();
          return finish(new VerificationError(`${source}: the first entry is ${JSON.stringify(e.path)}, not ${INDEX_PATH}: not an airlock bundle`));
        }
        collect(e, MAX_INDEX_BYTES, INDEX_PATH).then(
          (bytes) => finish(undefined, parseBundleIndex(bytes)),
          (err) => finish(err),
        );
      },
    });
    parser.on('warn', (_c: string, m: string | Error) => finish(tarError(source, m)));
    parser.on('close', () => finish(new VerificationError(`${source}: no index: not an airlock bundle`)));
    input.on('error', (err) => finish(err));
    input.pipe(parser);
  });
}
