import { Readable } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import { VerificationError } from './cli/errors.ts';
import type { Descriptor, ImageIndex, Platform } from './oci/descriptor.ts';
import { digestOf } from './oci/digest.ts';
import { childrenOf, isIndex, isManifestOrIndex, parseManifest } from './oci/mediatype.ts';
import { formatPlatform, isAttestationManifest, matchesAny, platformNotOffered } from './oci/platform.ts';
import { MAX_MANIFEST_BYTES } from './registry/client.ts';
import { isRetryableNetworkError, sleep } from './registry/retry.ts';
import { describeNetworkFailure } from './net/errors.ts';
import type { ContentSink, ContentSource } from './store/store.ts';

/**
 * copyGraph: the one graph copy (after oras-go's Copy). Walks index ->
 * manifests -> config and layers, copies children before parents, skips what
 * the destination already has (a present manifest means its whole subtree is
 * there), and runs every transfer of a session under one concurrency limit.
 */

export type CopyEvent =
  | { type: 'blob-start'; descriptor: Descriptor; destination: string }
  | { type: 'blob-done'; descriptor: Descriptor; destination: string; bytes: number }
  | { type: 'blob-skip'; descriptor: Descriptor; destination: string; bytes: number }
  | { type: 'blob-mount'; descriptor: Descriptor; destination: string; bytes: number }
  | { type: 'manifest-done'; descriptor: Descriptor; destination: string; skipped: boolean }
  | { type: 'retry'; descriptor: Descriptor; destination: string; attempt: number; reason: string };

export interface CopySessionOptions {
  /** Transfers running at once, across every image of the session. */
  concurrency?: number;
  onEvent?: (event: CopyEvent) => void;
  /** Tries for one blob transfer when the connection breaks mid-stream. */
  blobAttempts?: number;
}

/**
 * State shared by every copyGraph call of one run: the concurrency limit and
 * the transfers in flight, so that a blob two images share moves once and the
 * second destination can mount it instead of uploading it again.
 */
export class CopySession {
  readonly limit: LimitFunction;
  /**
   * Manifests (small) are read and written in a queue of their own: behind
   * the blob queue, an image would be done only once every blob of the run is.
   */
  readonly manifestLimit: LimitFunction;
  readonly emit: (event: CopyEvent) => void;
  readonly blobAttempts: number;
  /** digest -> the transfer of that blob now running (to any destination). */
  readonly inflight = new Map<string, Promise<unknown>>();
  /** "destination digest" -> the finished or running copy of that node. */
  readonly nodes = new Map<string, Promise<Descriptor>>();

  private cancelled: unknown;

  constructor(options: CopySessionOptions = {}) {
    this.limit = pLimit(Math.max(1, options.concurrency ?? 8));
    this.manifestLimit = pLimit(Math.max(1, options.concurrency ?? 8));
    this.emit = options.onEvent ?? (() => undefined);
    this.blobAttempts = options.blobAttempts ?? 3;
  }

  /** Stop starting transfers: every copy of the session still running fails with `reason`. */
  cancel(reason: unknown): void {
    // Queued transfers still run, and fail at once (their promises must settle).
    this.cancelled ??= reason;
  }

  throwIfCancelled(): void {
    if (this.cancelled !== undefined) throw this.cancelled;
  }

  /**
   * Run one task per item (each a copy of this session). The first failure
   * cancels the session, so the rest stop starting transfers; once every task
   * has settled, the failure is thrown: a verification failure if there is one
   * (it explains the others), else the first.
   */
  async all<T>(items: readonly T[], task: (item: T) => Promise<void>): Promise<void> {
    const results = await Promise.allSettled(
      items.map(async (item) => {
        try {
          await task(item);
        } catch (err) {
          this.cancel(err);
          throw err;
        }
      }),
    );
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    if (failures.length > 0) throw failures.find((f) => f instanceof VerificationError) ?? failures[0];
  }
}

export interface CopyOptions {
  session?: CopySession;
  /** Keep only these platforms of an index; without it an index is copied whole with its digest. */
  platforms?: Platform[];
}

/**
 * Copy the graph under `root` from src to dst. Returns the root as written:
 * the same descriptor, or a filtered index's new descriptor when platforms
 * removed some of its manifests.
 */
export async function copyGraph(
  src: ContentSource,
  dst: ContentSink,
  root: Descriptor,
  options: CopyOptions = {},
): Promise<Descriptor> {
  const session = options.session ?? new CopySession();
  return copyNode(session, src, dst, root, options.platforms, true);
}

function copyNode(
  session: CopySession,
  src: ContentSource,
  dst: ContentSink,
  desc: Descriptor,
  platforms: Platform[] | undefined,
  isRoot: boolean,
): Promise<Descriptor> {
  const key = `${dst.name} ${desc.digest} ${isRoot && platforms ? platformKey(platforms) : ''}`;
  let node = session.nodes.get(key);
  if (!node) {
    node = isManifestOrIndex(desc.mediaType)
      ? copyManifest(session, src, dst, desc, platforms, isRoot)
      : copyBlob(session, src, dst, desc).then(() => desc);
    session.nodes.set(key, node);
    // A failed node may be tried again by a later copy of the same session.
    node.catch(() => session.nodes.delete(key));
  }
  return node;
}

async function copyManifest(
  session: CopySession,
  src: ContentSource,
  dst: ContentSink,
  desc: Descriptor,
  platforms: Platform[] | undefined,
  isRoot: boolean,
): Promise<Descriptor> {
  const bytes = await session.manifestLimit(() => readManifest(src, desc));
  const { descriptor: target, bytes: targetBytes, children } = manifestNode(desc, bytes, isRoot ? platforms : undefined);

  if (await dst.exists(target)) {
    session.emit({ type: 'manifest-done', descriptor: target, destination: dst.name, skipped: true });
    return target;
  }
  await Promise.all(children.map((child) => copyNode(session, src, dst, child, undefined, false)));
  await session.manifestLimit(() => {
    session.throwIfCancelled();
    return dst.push(target, Readable.from([targetBytes]));
  });
  session.emit({ type: 'manifest-done', descriptor: target, destination: dst.name, skipped: false });
  return target;
}

/** A manifest or index as it is written: its descriptor, its bytes, the children it points to. */
export interface GraphNode {
  descriptor: Descriptor;
  bytes: Buffer;
  children: Descriptor[];
}

/**
 * Parse a manifest or index. With platforms (given for a root only: a nested
 * index is copied as it is), an index keeps only the matching manifests and
 * drops attestations; when that removes any, the result is a new index with
 * its own digest.
 */
export function manifestNode(desc: Descriptor, bytes: Buffer, platforms?: Platform[]): GraphNode {
  const parsed = parseManifest(bytes, desc.mediaType, `manifest ${desc.digest}`);
  const children = childrenOf(parsed);
  if (!platforms || !isIndex(parsed.mediaType) || !parsed.index) return { descriptor: desc, bytes, children };
  const kept = parsed.index.manifests.filter((m) => !isAttestationManifest(m) && matchesAny(platforms, m.platform));
  if (kept.length === 0) {
    const offered = parsed.index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown'));
    throw platformNotOffered(`image index ${desc.digest} has no manifest for the requested platforms: it`, offered, platforms);
  }
  if (kept.length === parsed.index.manifests.length) return { descriptor: desc, bytes, children };
  const filtered: ImageIndex = { ...parsed.index, manifests: kept };
  const filteredBytes = Buffer.from(JSON.stringify(filtered));
  return {
    descriptor: { ...desc, mediaType: parsed.mediaType, digest: digestOf(filteredBytes), size: filteredBytes.length },
    bytes: filteredBytes,
    children: kept,
  };
}

/** Everything under one root, as planGraph found it. */
export interface GraphPlan {
  /** The root as it will be written (a filtered index has a new digest). */
  root: GraphNode;
  /** Every manifest and index, children before parents, the root last. */
  manifests: GraphNode[];
  /** Every config and layer, once each, in the order first met. */
  blobs: Descriptor[];
  /** Every manifest and index as read from the source, by digest (for PreloadedContent). */
  read: Map<string, Buffer>;
}

/**
 * Walk the graph under `root` reading manifests only, no blobs: what a
 * copyGraph of the same root with the same platforms would write. The packer
 * uses it to lay out the bundle before a single layer is downloaded.
 */
export async function planGraph(src: ContentSource, root: Descriptor, options: CopyOptions = {}): Promise<GraphPlan> {
  const limit = options.session?.limit ?? pLimit(8);
  const manifests: GraphNode[] = [];
  const blobs = new Map<string, Descriptor>();
  const read = new Map<string, Buffer>();
  const visited = new Map<string, Promise<GraphNode>>();
  const visit = (desc: Descriptor, platforms: Platform[] | undefined): Promise<GraphNode> => {
    let node = visited.get(desc.digest);
    if (!node) {
      node = (async () => {
        const bytes = await limit(() => readManifest(src, desc));
        read.set(desc.digest, bytes);
        const found = manifestNode(desc, bytes, platforms);
        for (const child of found.children) if (!isManifestOrIndex(child.mediaType) && !blobs.has(child.digest)) blobs.set(child.digest, child);
        await Promise.all(found.children.filter((c) => isManifestOrIndex(c.mediaType)).map((c) => visit(c, undefined)));
        manifests.push(found);
        return found;
      })();
      visited.set(desc.digest, node);
    }
    return node;
  };
  const rootNode = await visit(root, options.platforms);
  return { root: rootNode, manifests, blobs: [...blobs.values()], read };
}

async function readManifest(src: ContentSource, desc: Descriptor): Promise<Buffer> {
  if (desc.size > MAX_MANIFEST_BYTES) {
    throw new VerificationError(`manifest ${desc.digest} claims ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  }
  const parts: Buffer[] = [];
  for await (const chunk of (await src.fetch(desc)) as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

async function copyBlob(session: CopySession, src: ContentSource, dst: ContentSink, desc: Descriptor): Promise<void> {
  // Another image of this session moving the same blob (maybe to another
  // repository): wait for it, so this one can skip or mount.
  const running = session.inflight.get(desc.digest);
  if (running) await running.catch(() => undefined);

  const transfer = session.limit(async () => {
    session.throwIfCancelled();
    // A mount answers "present" in one request whether the blob was already in
    // the destination or comes from a sibling repository; only when it cannot
    // (no known source, or the registry declines) does the HEAD follow.
    if (dst.mount && (await dst.mount(desc))) {
      session.emit({ type: 'blob-mount', descriptor: desc, destination: dst.name, bytes: desc.size });
      return;
    }
    if (await dst.exists(desc)) {
      session.emit({ type: 'blob-skip', descriptor: desc, destination: dst.name, bytes: desc.size });
      return;
    }
    for (let attempt = 1; ; attempt++) {
      session.emit({ type: 'blob-start', descriptor: desc, destination: dst.name });
      try {
        await dst.push(desc, await src.fetch(desc));
        session.emit({ type: 'blob-done', descriptor: desc, destination: dst.name, bytes: desc.size });
        return;
      } catch (err) {
        const retryable = !(err instanceof VerificationError) && isRetryableNetworkError(err);
        if (!retryable || attempt >= session.blobAttempts) throw err;
        session.emit({ type: 'retry', descriptor: desc, destination: dst.name, attempt, reason: describeNetworkFailure(err) });
        await sleep(250 * attempt);
      }
    }
  });
  session.inflight.set(desc.digest, transfer);
  try {
    await transfer;
  } finally {
    if (session.inflight.get(desc.digest) === transfer) session.inflight.delete(desc.digest);
  }
}

function platformKey(platforms: Platform[]): string {
  return platforms.map((p) => `${p.os}/${p.architecture}/${p.variant ?? ''}`).join(',');
}
