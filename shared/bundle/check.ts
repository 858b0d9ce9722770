import type { Descriptor } from '../oci/descriptor.ts';
import type { BundleFileScan, LocatedEntry } from './file.ts';
import { hashEntries } from './file-verifier.ts';
import type { BundleFileSource } from './source.ts';
import type { BundleBytes } from './volumes.ts';

/**
 * The whole-bundle check of a load: every entry is hashed once, whether the
 * load reads it or not, so a load accepts exactly what verify accepts. What
 * the load streams (blobs it uploads, manifests it reads) is checked by the
 * source as it flows; what it will not read (files under manifests/,
 * oci/index.json, images already in the registry) is hashed in the
 * background while the upload runs; what it skipped after all (a blob the
 * registry already had) is hashed at the end, or earlier by verifyBlobs().
 * The caller writes no manifest before every blob it references checked out
 * (verifyBlobs), and no tag before finish() resolves.
 */
export class WholeBundleCheck {
  private background: Promise<void> | undefined;
  private failure: unknown;
  private readonly hashed = new Set<string>();
  private readonly cancelled = new AbortController();

  constructor(
    private readonly bytes: BundleBytes,
    private readonly scan: BundleFileScan,
    private readonly source: BundleFileSource,
    private readonly options: { name: string; threads?: number },
  ) {}

  /** Start hashing, in the background, every entry whose path is not in `willRead`. */
  start(willRead: ReadonlySet<string>): void {
    const unread = this.scan.entries.filter((e) => !willRead.has(e.path) && !this.source.verified.has(e.path));
    this.background = this.hash(unread).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  /** Resolves once every entry of the bundle checked out; rejects with the first that did not. */
  async finish(): Promise<void> {
    await this.background;
    if (this.failure) throw this.failure;
    if (this.cancelled.signal.aborted) throw new Error('internal: the whole-bundle check was cancelled');
    await this.hash(this.scan.entries.filter((e) => !this.hashed.has(e.path) && !this.source.verified.has(e.path)));
  }

  /**
   * Hash now the entries of these blobs the load has not verified yet (a blob
   * the registry already had was never streamed): a manifest may be pushed
   * once this resolves for its blobs. Rejects with a VerificationError.
   */
  async verifyBlobs(blobs: readonly Descriptor[]): Promise<void> {
    const paths = new Set(blobs.map((b) => `oci/blobs/sha256/${b.digest.slice('sha256:'.length)}`));
    const pending = this.scan.entries.filter((e) => paths.has(e.path) && !this.hashed.has(e.path) && !this.source.verified.has(e.path));
    if (pending.length === 0) return;
    await this.hash(pending);
    if (this.cancelled.signal.aborted) throw new Error('internal: the whole-bundle check was cancelled');
  }

  /** The load failed: stop hashing now (a failing load should not wait for a hash of the whole bundle). */
  cancel(): void {
    this.cancelled.abort();
  }

  private async hash(entries: LocatedEntry[]): Promise<void> {
    await hashEntries(this.bytes, entries, { source: this.options.name, threads: this.options.threads, signal: this.cancelled.signal });
    if (this.cancelled.signal.aborted) return;
    for (const e of entries) this.hashed.add(e.path);
  }
}
