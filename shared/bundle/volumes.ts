import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError, VerificationError } from '../cli/errors.ts';
import { diskFullOr, ensureFreeSpace } from '../fs/disk-full.ts';

/**
 * A bundle's bytes, in one file or in volumes (DESIGN.md §2): NAME.000,
 * NAME.001, ... are byte ranges of the one tar, and NAME.parts.json lists
 * each volume's size and sha256, so that a missing or damaged volume is named
 * before any work starts. Readers see one address space either way.
 */
export interface BundleBytes {
  /** For messages: the bundle's name (without a volume suffix). */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `position`. */
  read(position: number, length: number): Promise<Buffer>;
  /** Bytes [start, end) as a stream. */
  stream(start: number, end: number, highWaterMark?: number): Readable;
  /** The range [start, start+size) as pieces of local files, in order (for worker threads); absent for remote bundles. */
  pieces?(start: number, size: number): { path: string; start: number; size: number }[];
  close(): Promise<void>;
}

export interface PartsList {
  /** The bundle's file name. */
  bundle: string;
  size: number;
  sha256?: string;
  volumes: { file: string; size: number; sha256: string }[];
}

const VOLUME = /^(.*)\.(\d{3})$/;

/** The file name of volume n of a bundle. */
export function volumeName(bundle: string, n: number): string {
  return `${bundle}.${String(n).padStart(3, '0')}`;
}

export function partsListName(bundle: string): string {
  return `${bundle}.parts.json`;
}

/**
 * Open a bundle: a plain file, or the first volume of a split one (its parts
 * list is next to it). For volumes, every listed volume must be there with
 * its size and sha256 before anything else reads a byte (exit 3 otherwise).
 */
export async function openBundleBytes(path: string, options: { checkVolumes?: boolean } = {}): Promise<BundleBytes> {
  if (/^[a-z0-9]+:\/\//.test(path)) throw new UsageError(`${path}: this kind of remote bundle cannot be read in place; download it first (airlock download)`);
  const m = VOLUME.exec(path);
  if (m && m[2] === '000') {
    const name = basename(m[1]!);
    const list = partsListName(name);
    const parts = await readPartsList(join(dirname(path), list));
    // The parts list is not signed: it may only confirm the names that follow from the name given.
    if (parts.bundle !== name) {
      throw new VerificationError(`${list} names the bundle ${JSON.stringify(parts.bundle)}, not ${name}: it does not belong to these volumes`, {
        hint: `copy the parts list that came with ${name}.000`,
      });
    }
    const extra = volumeName(name, parts.volumes.length);
    if (await stat(join(dirname(path), extra)).then(() => true, () => false)) {
      throw new VerificationError(`${extra} is not in ${list}, which lists ${parts.volumes.length} volumes: the volumes do not match their parts list`, {
        hint: 'remove volumes that do not belong to this bundle, or copy the bundle again',
      });
    }
    return openVolumes(dirname(path), parts, options.checkVolumes ?? true);
  }
  const st = await stat(path).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw await noSuchBundle(path);
    throw new UsageError(`cannot read the bundle ${path}: ${err.message}`);
  });
  if (!st.isFile()) throw new UsageError(`cannot read the bundle ${path}: not a regular file`);
  return new Volumes(basename(path), [{ path, start: 0, size: st.size }]);
}

/** A bundle path that is not there: when its volumes are, say so and name the first one to pass. */
async function noSuchBundle(path: string): Promise<UsageError> {
  const dir = dirname(path);
  const name = basename(path);
  const present = await readdir(dir).catch(() => [] as string[]);
  const volumes = present.filter((f) => f.startsWith(`${name}.`) && /^\d{3}$/.test(f.slice(name.length + 1))).sort();
  if (volumes.length === 0) {
    return new UsageError(`cannot read the bundle ${path}: there is no such file`, { hint: `check the path; a relative path starts in the current folder (${process.cwd()})` });
  }
  const parts = present.includes(partsListName(name)) ? ` and its parts list ${partsListName(name)}` : ` but no parts list ${partsListName(name)}`;
  const shown = volumes.length > 6 ? [...volumes.slice(0, 3), '...', ...volumes.slice(-2)] : volumes;
  return new UsageError(`cannot read the bundle ${path}: there is no such file, but ${dir} holds it split in ${volumes.length} volume${volumes.length === 1 ? '' : 's'} (${shown.join(', ')})${parts}`, {
    hint: `pass the first volume: ${join(dir, volumeName(name, 0))}`,
  });
}

async function readPartsList(file: string): Promise<PartsList> {
  let parts: PartsList;
  try {
    parts = JSON.parse(await readFile(file, 'utf8')) as PartsList;
  } catch (err) {
    throw new VerificationError(`${basename(file)}: the parts list of this split bundle is missing or unreadable: ${(err as Error).message}`, {
      hint: 'copy NAME.parts.json next to the volumes',
    });
  }
  const ok =
    typeof parts?.bundle === 'string' &&
    Array.isArray(parts.volumes) &&
    parts.volumes.length > 0 &&
    parts.volumes.every((v, i) => v?.file === volumeName(parts.bundle, i) && Number.isSafeInteger(v.size) && v.size > 0 && /^[a-f0-9]{64}$/.test(v.sha256)) &&
    parts.size === parts.volumes.reduce((a, v) => a + v.size, 0);
  if (!ok) throw new VerificationError(`${basename(file)}: not a valid parts list`);
  return parts;
}

async function openVolumes(dir: string, parts: PartsList, check: boolean): Promise<BundleBytes> {
  const files = parts.volumes.map((v) => ({ ...v, path: join(dir, v.file) }));
  for (const v of files) {
    const st = await stat(v.path).catch(() => undefined);
    if (!st) throw new VerificationError(`${v.file} is missing (volume ${files.indexOf(v) + 1} of ${files.length} of ${parts.bundle})`, { hint: 'copy every volume next to the first one' });
    if (st.size !== v.size) throw new VerificationError(`${v.file} is ${st.size} bytes, the parts list says ${v.size}: damaged or incomplete`, { hint: 'copy that volume again' });
  }
  if (check) {
    await Promise.all(
      files.map(async (v) => {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(v.path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) hash.update(chunk);
        if (hash.digest('hex') !== v.sha256) throw new VerificationError(`${v.file} is damaged: its sha256 differs from the parts list`, { hint: 'copy that volume again' });
      }),
    );
  }
  let start = 0;
  const ranges = files.map((v) => {
    const r = { path: v.path, start, size: v.size };
    start += v.size;
    return r;
  });
  return new Volumes(parts.bundle, ranges);
}

class Volumes implements BundleBytes {
  readonly size: number;
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(
    readonly name: string,
    /** Each file's place in the bundle's address space. */
    private readonly files: { path: string; start: number; size: number }[],
  ) {
    this.size = files.reduce((a, f) => a + f.size, 0);
  }

  pieces(start: number, size: number): { path: string; start: number; size: number }[] {
    const out: { path: string; start: number; size: number }[] = [];
    const end = start + size;
    for (const f of this.files) {
      const from = Math.max(start, f.start);
      const to = Math.min(end, f.start + f.size);
      if (from < to) out.push({ path: f.path, start: from - f.start, size: to - from });
    }
    return out;
  }

  async read(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    let at = 0;
    for (const p of this.pieces(position, length)) {
      let h = this.handles.get(p.path);
      if (!h) this.handles.set(p.path, (h = open(p.path, 'r')));
      const { bytesRead } = await (await h).read(buf, at, p.size, p.start);
      if (bytesRead !== p.size) throw new Error('short read');
      at += p.size;
    }
    if (at !== length) throw new Error('read past the end of the bundle');
    return buf;
  }

  stream(start: number, end: number, highWaterMark = 1 << 20): Readable {
    const pieces = this.pieces(start, end - start);
    if (pieces.length === 1) {
      const p = pieces[0]!;
      return createReadStream(p.path, { start: p.start, end: p.start + p.size - 1, highWaterMark });
    }
    const out = new PassThrough({ highWaterMark });
    void (async () => {
      try {
        for (const p of pieces) {
          if (p.size > 0) await pipeline(createReadStream(p.path, { start: p.start, end: p.start + p.size - 1, highWaterMark }), out, { end: false });
        }
        out.end();
      } catch (err) {
        out.destroy(err as Error);
      }
    })();
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map(async (h) => (await h.catch(() => undefined))?.close()));
  }
}

/** "4G", "700M", "1.5GiB", "4GB", "1048576": binary units (K, M, G, T, KiB...) or decimal ones (KB, MB, GB, TB). */
export function parseVolumeSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT](?:iB|B)?)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`--volume-size ${text}: expected a size such as 4G, 700M or 4GB`);
  const unit = m[2] ?? '';
  const power = unit === '' ? 0 : 'KMGT'.indexOf(unit[0]!.toUpperCase()) + 1;
  const decimal = /^[KMGT]B$/i.test(unit);
  const size = Math.floor(Number(m[1]) * (decimal ? 1000 : 1024) ** power);
  if (size < 1024 * 1024) throw new UsageError(`--volume-size ${text}: volumes of less than 1 MiB make no sense`);
  return size;
}

/**
 * Split a bundle file into volumes of at most `volumeSize` bytes plus the
 * parts list, in `outDir`. Each volume is written under a temporary name and
 * renamed once complete; the parts list is written last.
 */
export async function splitBundle(
  file: string,
  volumeSize: number,
  outDir: string,
  onProgress?: (bytes: number) => void,
): Promise<{ parts: PartsList; files: string[] }> {
  const size = (await stat(file)).size;
  const bundle = basename(file);
  const volumes: PartsList['volumes'] = [];
  const written: string[] = [];
  let current: string | undefined;
  const whole = createHash('sha256');
  await ensureFreeSpace(resolve(outDir), size, `the volumes of ${bundle}`);
  try {
    for (let start = 0, n = 0; start < size; start += volumeSize, n++) {
      const end = Math.min(size, start + volumeSize);
      const name = volumeName(bundle, n);
      const target = join(outDir, name);
      const temp = `${target}.partial`;
      current = temp;
      const hash = createHash('sha256');
      const meter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          whole.update(chunk);
          onProgress?.(chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 }), meter, createWriteStream(temp));
      const fh = await open(temp, 'r+');
      await fh.datasync();
      await fh.close();
      await rename(temp, target);
      written.push(target);
      volumes.push({ file: name, size: end - start, sha256: hash.digest('hex') });
    }
    const parts: PartsList = { bundle, size, sha256: whole.digest('hex'), volumes };
    const list = join(outDir, partsListName(bundle));
    await writeFile(`${list}.partial`, JSON.stringify(parts, null, 2) + '\n');
    await rename(`${list}.partial`, list);
    written.push(list);
    return { parts, files: written };
  } catch (err) {
    await Promise.all([...written, ...(current ? [current] : [])].map((w) => rm(w, { force: true })));
    throw await diskFullOr(err, resolve(outDir), size, `the volumes of ${bundle}`);
  }
}
