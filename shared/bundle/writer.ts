import { createReadStream } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomBytes, createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { UsageError, VerificationError } from '../cli/errors.ts';
import { ANNOTATION_REF_NAME, type Descriptor, type ImageIndex } from '../oci/descriptor.ts';
import { parseDigest, verifiedChunks } from '../oci/digest.ts';
import { MediaType } from '../oci/mediatype.ts';
import type { ContentSink } from '../store/store.ts';
import { layoutBundle, mtimeOf, padding } from './canonical.ts';
import { diskFullOr, ensureFreeSpace, folderOf } from '../fs/disk-full.ts';
import { deltaFieldsProblem, type BundleRequirement, type BundleSince } from './delta.ts';
import { checkIndexEntryPath, type BundleChart, type BundleEntry, type BundleImage, type BundleIndex } from './format.ts';

/**
 * BundleWriter: lays out the whole bundle tar (DESIGN.md §2) before any blob
 * arrives, then fills it in. Every blob's size and sha256 are in its
 * descriptor, so each entry's header and offset, and the signed index, are
 * known up front: the file is pre-sized, the index, signature and small
 * entries are written at once, and blobs are then written in parallel
 * straight into their slots, each with its tar header (positional writes,
 * no temp copy). As a
 * ContentSink it takes copyGraph's pushes. The bundle is written under a
 * temporary name next to the output and renamed only by commit(), after
 * every slot is filled and the data is on disk.
 */

/** A local file that goes into the bundle as it is (manifests/..., charts/...). */
export interface BundleFile {
  path: string;
  size: number;
  /** hex */
  sha256: string;
  /** Local path holding exactly these bytes. */
  file: string;
}

export interface BundleContent {
  name: string;
  version: string;
  created: Date;
  platforms: string[];
  images: BundleImage[];
  charts: BundleChart[];
  files: BundleFile[];
  /** Configs and layers, once each. */
  blobs: Descriptor[];
  /** Manifests and indexes, children before parents. */
  manifests: Descriptor[];
  /** oci/index.json: one descriptor per image, named by its full source reference (an OCI 1.1 referrer is listed unnamed). */
  refs: { ref?: string; descriptor: Descriptor }[];
  /** A delta (pack --since): the blobs left out, which the enclave must hold; never also in `blobs`. */
  requires?: BundleRequirement[];
  since?: BundleSince;
}

interface Slot {
  entry: BundleEntry;
  /** The entry's tar header, written with its data, and where it starts (its data follows it). */
  header: Buffer;
  headerOffset: number;
  /** Where the entry's data starts in the tar. */
  offset: number;
  filled: boolean;
}

const SYNC_EVERY = 64 * 1024 * 1024;
/** Bytes gathered into one positional write. */
const WRITE_BATCH = 1024 * 1024;
const OCI_LAYOUT = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));

export class BundleWriter implements ContentSink {
  readonly name: string;
  private closed = false;
  /** Bytes written since the last flush to disk was started. */
  private unsynced = 0;
  private syncing: Promise<void> | undefined;

  private constructor(
    readonly output: string,
    readonly tempPath: string,
    private readonly fh: FileHandle,
    readonly index: BundleIndex,
    /** Total size of the tar in bytes. */
    readonly size: number,
    private readonly slots: Map<string, Slot>,
    private readonly blobSlots: Map<string, Slot>,
    /** Digests the index requires instead of carrying. */
    private readonly required: ReadonlySet<string>,
  ) {
    this.name = `bundle ${basename(output)}`;
  }

  /**
   * Lay out the bundle and write everything but the blobs and the local files:
   * the index and its signature (`sign` returns base64 of a signature over the
   * exact index bytes), every tar header, oci/oci-layout and oci/index.json.
   */
  static async create(output: string, content: BundleContent, sign: (indexBytes: Buffer) => string): Promise<BundleWriter> {
    const ociIndex = Buffer.from(JSON.stringify(layoutIndex(content.refs)));
    const small = new Map<string, Buffer>([
      ['oci/oci-layout', OCI_LAYOUT],
      ['oci/index.json', ociIndex],
    ]);
    const entries: BundleEntry[] = [
      ...content.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
      { path: 'oci/oci-layout', size: OCI_LAYOUT.length, sha256: sha256Hex(OCI_LAYOUT) },
      ...[...content.blobs, ...content.manifests].map((d) => ({ path: blobPath(d.digest), size: d.size, sha256: parseDigest(d.digest).hex })),
      { path: 'oci/index.json', size: ociIndex.length, sha256: sha256Hex(ociIndex) },
    ];
    const seen = new Set<string>();
    for (const [position, e] of entries.entries()) {
      const unsafe = checkIndexEntryPath(e.path, position);
      if (unsafe) throw new UsageError(`cannot pack ${JSON.stringify(e.path)}: it has ${unsafe}`);
      if (seen.has(e.path)) throw new UsageError(`cannot pack ${e.path} twice: two sources give the same bundle path`);
      seen.add(e.path);
    }
    const index: BundleIndex = {
      airlockVersion: 1,
      name: content.name,
      version: content.version,
      created: content.created.toISOString(),
      platforms: content.platforms,
      images: content.images,
      charts: content.charts,
      entries,
      ...(content.requires ? { requires: content.requires } : {}),
      ...(content.since ? { since: content.since } : {}),
    };
    const deltaProblem = deltaFieldsProblem(index);
    if (deltaProblem) throw new Error(`internal: the delta index is malformed: ${deltaProblem}`);
    const indexBytes = Buffer.from(JSON.stringify(index, null, 2) + '\n');
    const signature = Buffer.from(sign(indexBytes));

    const layout = layoutBundle(indexBytes.length, signature.length, entries, mtimeOf(index.created));
    const [indexAt, sigAt] = layout.entries;
    const head = Buffer.concat([indexAt!.header, padded(indexBytes), sigAt!.header, padded(signature)]);
    const slots = new Map<string, Slot>();
    for (const placed of layout.entries.slice(2)) {
      const entry = { path: placed.path, size: placed.size, sha256: placed.sha256 };
      slots.set(placed.path, { entry, header: placed.header, headerOffset: placed.headerOffset, offset: placed.offset, filled: false });
    }
    const size = layout.size;

    // The layout gives the exact size: refuse now, not after the downloads, when the disk cannot hold it.
    await ensureFreeSpace(folderOf(output), size, `the bundle ${basename(output)}`);
    const tempPath = join(dirname(output), `.${basename(output)}.${randomBytes(6).toString('hex')}.partial`);
    let fh: FileHandle;
    try {
      fh = await open(tempPath, 'wx', 0o644);
    } catch (err) {
      throw new UsageError(`cannot write the bundle next to ${output}: ${(err as Error).message}`, {
        hint: 'check that the output folder exists and is writable',
      });
    }
    try {
      await fh.truncate(size);
      await writeAll(fh, head, 0);
      for (const [path, bytes] of small) {
        const slot = slots.get(path)!;
        await writeAll(fh, [slot.header, bytes], slot.headerOffset);
        slot.filled = true;
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tempPath, { force: true });
      const full = await diskFullOr(err, folderOf(output), size, `the bundle ${basename(output)}`);
      if (full !== err) throw full;
      throw new UsageError(`cannot write the bundle ${tempPath}: ${(err as Error).message}`, {
        hint: 'check the free space on the output disk',
      });
    }
    const blobSlots = new Map<string, Slot>();
    for (const d of [...content.blobs, ...content.manifests]) blobSlots.set(d.digest, slots.get(blobPath(d.digest))!);
    const required = new Set((content.requires ?? []).map((r) => r.digest));
    return new BundleWriter(output, tempPath, fh, index, size, slots, blobSlots, required);
  }

  /** A filled slot, or a blob the delta leaves out (so copyGraph never downloads it). */
  exists(desc: Descriptor): Promise<boolean> {
    return Promise.resolve(this.blobSlots.get(desc.digest)?.filled === true || this.required.has(desc.digest));
  }

  /** Write a blob into its slot. The source verifies the bytes; the slot counts as filled only on a clean end. */
  async push(desc: Descriptor, body: Readable): Promise<void> {
    const slot = this.blobSlots.get(desc.digest);
    if (!slot || slot.entry.size !== desc.size) {
      body.destroy();
      throw new Error(`internal: ${desc.digest} (${desc.size} bytes) is not in the bundle's layout`);
    }
    await this.writing(this.fill(slot, body));
    slot.filled = true;
  }

  /** oci/index.json was written with the layout; a tag must be one of its names. */
  tag(desc: Descriptor, reference: string): Promise<void> {
    if (!this.blobSlots.has(desc.digest)) return Promise.reject(new Error(`internal: cannot name ${reference}: ${desc.digest} is not in the bundle`));
    return Promise.resolve();
  }

  /** Copy a local file (manifests/..., charts/...) into its slot, checking its size and sha256 on the way. */
  async writeFile(file: BundleFile): Promise<void> {
    const slot = this.slots.get(file.path);
    if (!slot) throw new Error(`internal: ${file.path} is not in the bundle's layout`);
    const chunks = verifiedChunks(createReadStream(file.file), { digest: `sha256:${file.sha256}`, size: file.size }, `${file.file} (changed while packing?)`);
    await this.writing(this.fill(slot, chunks));
    slot.filled = true;
  }

  /**
   * Positional writes of the slot's header and then `chunks`, gathered into
   * batches of WRITE_BATCH bytes (one pwritev each, no copy): one batch goes
   * to the file while the next fills. Errors unless exactly the slot's size
   * arrives. (The padding after it is already zeros: the file was pre-sized.)
   */
  private async fill(slot: Slot, chunks: AsyncIterable<Buffer>): Promise<void> {
    const stop = slot.offset + slot.entry.size;
    let position = slot.headerOffset;
    let batch: Buffer[] = [slot.header];
    let batched = slot.header.length;
    let previous: Promise<void> = Promise.resolve();
    const send = async (): Promise<void> => {
      // One batch at a time: the one before must be in the file first (and its error surfaces here).
      await previous;
      const [buffers, bytes, at] = [batch, batched, position];
      position += bytes;
      batch = [];
      batched = 0;
      previous = writeAll(this.fh, buffers, at).then(() => this.written(bytes));
      // Awaited by the next send or at the end; a failure meanwhile is not unhandled.
      previous.catch(() => undefined);
    };
    for await (const chunk of chunks) {
      if (position + batched + chunk.length > stop) throw new VerificationError(`${slot.entry.path}: more bytes than its descriptor's size`);
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH) await send();
    }
    if (batched > 0) await send();
    await previous;
    if (position !== stop) throw new VerificationError(`${slot.entry.path}: ${stop - position} bytes short`);
  }

  /** Every entry written: flush to disk and rename into place. Refuses when a slot is still empty. */
  async commit(): Promise<void> {
    const missing = [...this.slots.values()].filter((s) => !s.filled);
    if (missing.length > 0) {
      throw new Error(`internal: ${missing.length} bundle entries were never written (first: ${missing[0]!.entry.path})`);
    }
    await this.syncing;
    await this.writing(this.fh.datasync());
    await this.fh.close();
    this.closed = true;
    await rename(this.tempPath, this.output);
    // Make the rename itself durable.
    const dir = await open(dirname(this.output), 'r').catch(() => undefined);
    await dir?.sync().catch(() => undefined);
    await dir?.close();
  }

  /**
   * Start flushing to disk every SYNC_EVERY bytes, in the background, so that
   * the flush commit() must wait for (the bundle is on the medium when pack
   * returns: think of a USB drive pulled right after) is only the tail.
   */
  private written(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < SYNC_EVERY || this.syncing || this.closed) return;
    this.unsynced = 0;
    this.syncing = this.fh
      .datasync()
      .catch(() => undefined)
      .finally(() => (this.syncing = undefined));
  }

  /** A write into the bundle; a full disk becomes a DiskFullError with the bundle's size. */
  private async writing(work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (err) {
      throw await diskFullOr(err, folderOf(this.output), this.size, `the bundle ${basename(this.output)}`);
    }
  }

  /** Drop the partial bundle. Safe to call more than once and after commit (then it does nothing). */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
    await rm(this.tempPath, { force: true });
  }
}

/** Write every byte of `buffers` at `position` (pwritev, continued after a short write). */
async function writeAll(fh: FileHandle, buffers: Buffer | Buffer[], position: number): Promise<void> {
  let rest = Array.isArray(buffers) ? buffers : [buffers];
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, at);
    at += bytesWritten;
    rest = afterBytes(rest, bytesWritten);
  }
}

/** What of `buffers` is left once the first `n` bytes are written. */
function afterBytes(buffers: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i]!.length) skip -= buffers[i++]!.length;
  const rest = buffers.slice(i);
  if (skip > 0) rest[0] = rest[0]!.subarray(skip);
  return rest;
}

function padded(bytes: Buffer): Buffer {
  return Buffer.concat([bytes, Buffer.alloc(padding(bytes.length))]);
}

function blobPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  if (algorithm !== 'sha256') {
    throw new UsageError(`cannot pack ${digest}: bundles carry sha256 content only`, { hint: 'ask the image publisher for a sha256 reference' });
  }
  return `oci/blobs/sha256/${hex}`;
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function layoutIndex(refs: { ref?: string; descriptor: Descriptor }[]): ImageIndex {
  return {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: refs.map(({ ref, descriptor }) => ({
      mediaType: descriptor.mediaType,
      digest: descriptor.digest,
      size: descriptor.size,
      ...(ref !== undefined ? { annotations: { [ANNOTATION_REF_NAME]: ref } } : {}),
    })),
  };
}
