import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type ReadEntry } from 'tar';
import { RemoteError, UsageError, VerificationError } from '../../shared/cli/errors.ts';
import { checkEntryPath } from '../../shared/bundle/format.ts';
import type { BundleFile } from '../../shared/bundle/writer.ts';
import { header, type HttpTransport } from '../../shared/registry/transport.ts';
import type { ManifestSource } from '../spec.ts';

/**
 * The application's manifests, as the spec names them (DESIGN.md §5), fetched
 * to local files and mapped to bundle paths:
 *   path: a directory   -> manifests/<dir name>/<relative path>   (every regular file; .git skipped)
 *   path: a file        -> manifests/<file name>
 *   url:  an archive    -> manifests/<archive name without .tar.gz/.tgz/.tar>/...
 *   url:  another file  -> manifests/<file name>
 * A url's bytes are checked against its sha256 pin before anything is used.
 */
export type ManifestFile = BundleFile;

export interface FetchManifestsOptions {
  /** Where downloads and extracted archives go (the caller removes it). */
  workDir: string;
  transport: HttpTransport;
  onLog?: (message: string) => void;
}

const MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024;
const ARCHIVE = /\.(tar\.gz|tgz|tar)$/i;

export async function fetchManifests(sources: ManifestSource[], options: FetchManifestsOptions): Promise<ManifestFile[]> {
  const byPath = new Map<string, { file: ManifestFile; from: string }>();
  let n = 0;
  for (const source of sources) {
    const found = await fetchOne(source, options, n++);
    for (const file of found) {
      const unsafe = checkEntryPath(file.path);
      if (unsafe) throw new UsageError(`manifests: ${describe(source)} gives ${JSON.stringify(file.path)}, which has ${unsafe}`);
      const clash = byPath.get(file.path);
      if (clash) {
        throw new UsageError(`manifests: ${clash.from} and ${describe(source)} both give ${file.path}`, {
          hint: 'rename one folder or file; each source lands under manifests/<its name>/',
        });
      }
      byPath.set(file.path, { file, from: describe(source) });
    }
  }
  return [...byPath.values()].map((v) => v.file).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function describe(source: ManifestSource): string {
  return source.kind === 'path' ? `path ${source.path}` : `${source.kind} ${redactUrl(source.url)}`;
}

async function fetchOne(source: ManifestSource, options: FetchManifestsOptions, n: number): Promise<ManifestFile[]> {
  switch (source.kind) {
    case 'path':
      return fromPath(source.path);
    case 'url': {
      const dir = join(options.workDir, `url-${n}`);
      await mkdir(dir, { recursive: true });
      const name = urlFileName(source.url);
      const file = join(dir, name);
      await download(source.url, file, source.sha256, options);
      if (!ARCHIVE.test(name) && !(await isGzip(file))) return [await describeFile(file, `manifests/${name}`)];
      const into = join(dir, 'x', name.replace(ARCHIVE, '') || 'archive');
      await extractArchive(file, into, redactUrl(source.url));
      return fromPath(into);
    }
    case 'git':
      throw new UsageError(`manifests: git sources are not built yet (issue #5): ${redactUrl(source.url)}`, { hint: 'use a path or url source for now' });
    case 's3':
      throw new UsageError(`manifests: s3 sources are not built yet (issue #6): ${source.url}`, { hint: 'use a path or url source for now' });
  }
}

/** A directory's regular files (recursively, .git skipped) or one file. Links and devices are refused. */
async function fromPath(root: string): Promise<ManifestFile[]> {
  const st = await stat(root).catch((err: Error) => {
    throw new UsageError(`manifests: path ${root} cannot be read: ${err.message}`, { hint: 'paths are relative to the spec file' });
  });
  if (st.isFile()) return [await describeFile(root, `manifests/${basename(root)}`)];
  if (!st.isDirectory()) throw new UsageError(`manifests: path ${root} is neither a file nor a directory`);
  const out: ManifestFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const full = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== '.git') await walk(full);
      } else if (e.isFile()) {
        out.push(await describeFile(full, `manifests/${basename(root)}/${relative(root, full).split(sep).join('/')}`));
      } else {
        const what = e.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
        throw new UsageError(`manifests: ${full} is ${what}; bundles carry regular files only`, { hint: 'replace it with a copy of the file it points to' });
      }
    }
  };
  await walk(root);
  return out;
}

async function describeFile(file: string, path: string): Promise<ManifestFile> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { path, size, sha256: hash.digest('hex'), file };
}

function urlFileName(url: string): string {
  const last = decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() ?? '');
  return /^[A-Za-z0-9._-]+$/.test(last) && last !== '.' && last !== '..' ? last : 'download';
}

/** The URL without user info or query (which may carry tokens). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** GET with redirects (at most 5), streamed to `file`, capped, checked against the pin. */
async function download(url: string, file: string, sha256: string | undefined, options: FetchManifestsOptions): Promise<void> {
  const shown = redactUrl(url);
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    const res = await options.transport.send({ method: 'GET', url: target, what: `GET ${shown}` });
    const location = header(res, 'location');
    if (res.status >= 300 && res.status < 400 && location && hop < 5) {
      await res.body.dump().catch(() => undefined);
      target = new URL(location, target);
      continue;
    }
    if (res.status !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new RemoteError(`manifests: GET ${shown} answered HTTP ${res.status}`, { hint: 'check the URL and that this host may read it' });
    }
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        size += chunk.length;
        if (size > MAX_DOWNLOAD_BYTES) return cb(new UsageError(`manifests: ${shown} is over ${MAX_DOWNLOAD_BYTES / 1024 / 1024} MiB; that is not a manifest archive`));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(res.body, meter, createWriteStream(file));
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new RemoteError(`manifests: GET ${shown} broke off: ${(err as Error).message}`, { hint: 'try again' });
    }
    const actual = hash.digest('hex');
    if (sha256 && actual !== sha256) {
      throw new VerificationError(`manifests: ${shown} has sha256 ${actual}, the spec pins ${sha256}`, {
        hint: 'the file changed at its source or in transit; check it and update the pin only if the change is expected',
      });
    }
    if (!sha256) options.onLog?.(`manifests: ${shown} is not pinned; its sha256 is ${actual} (add it to the spec as sha256:)`);
    return;
  }
}

async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(2);
    await fh.read(b, 0, 2, 0);
    return b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Extract regular files and directories only; links, devices, absolute paths and ".." are refused. */
async function extractArchive(file: string, into: string, shown: string): Promise<void> {
  await mkdir(into, { recursive: true });
  let refused: string | undefined;
  await extract({
    file,
    cwd: into,
    strict: true,
    preservePaths: false,
    noChmod: true,
    preserveOwner: false,
    filter: (path: string, entry: ReadEntry | Stats) => {
      const type = 'type' in entry ? entry.type : 'unknown';
      if (type !== 'File' && type !== 'OldFile' && type !== 'Directory') refused ??= `${path} is a ${type}`;
      else if (path.startsWith('/') || path.split('/').includes('..')) refused ??= `${path} points outside the archive`;
      return refused === undefined;
    },
  }).catch((err: Error) => {
    throw new VerificationError(`manifests: ${shown} is not a readable archive: ${err.message}`);
  });
  if (refused) throw new VerificationError(`manifests: ${shown} has an unsafe entry: ${refused}`, { hint: 'archives may hold regular files and folders only' });
  // A directory entry with a link inside cannot appear (links are refused), but check the result anyway.
  const check = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      const st = await lstat(full);
      if (st.isDirectory()) await check(full);
      else if (!st.isFile()) throw new VerificationError(`manifests: ${shown} produced ${relative(into, full)}, which is not a regular file`);
    }
  };
  await check(into);
}
