import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { UsageError, VerificationError } from '../../shared/cli/errors.ts';
import { checkEntryPath } from '../../shared/bundle/format.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { checkYamlShape, readYamlText } from '../../shared/yaml/bounded.ts';
import { downloadToFile, redactUrl } from './http-download.ts';
import { extractArchive } from './safe-tar.ts';
import type { ManifestSource } from '../spec.ts';
import { fetchGitTree, repositoryName } from './git.ts';
import { fetchS3Prefix, s3FolderName } from './s3.ts';

export { redactUrl };

/**
 * The application's manifests, as the spec names them (DESIGN.md §5), fetched
 * to local files and mapped to bundle paths (DESIGN.md §2):
 *
 *   path: a directory   -> manifests/<dir name>/<relative path>   (every regular file; .git skipped)
 *   path: a file        -> manifests/<file name>
 *   url:  an archive    -> manifests/<archive name without .tar.gz/.tgz/.tar>/...
 *   url:  another file  -> manifests/<last segment of the URL path>
 *   git:  a folder      -> manifests/<last component of path, else the repository name>/...
 *   s3:   a prefix      -> manifests/<last component of the prefix, else the bucket>/<key below the prefix>
 *
 * Bundles carry regular files only: a symlink or device under a path source is
 * a usage error (exit 2), and so is anything an archive holds besides files
 * and folders, or an archive path that is absolute or climbs out with ".."
 * (exit 3: the content is not what a manifest archive may be). A url is
 * streamed to disk, never held in memory, and checked against its sha256 pin
 * before anything in it is used. A git source fetches one ref at depth 1
 * (./git.ts: links in the tree are exit 3, submodules are skipped with a
 * warning) and reports the commit it read through onResolved; an s3 source
 * refuses keys that are not plain relative paths (./s3.ts, exit 3).
 */
export interface ManifestFile {
  /** Bundle entry path, "manifests/..."; passes checkEntryPath. */
  path: string;
  size: number;
  /** hex */
  sha256: string;
  /** Absolute local path holding exactly these bytes. */
  file: string;
}

export interface FetchManifestsOptions {
  /** Where downloads and extracted archives go (the caller creates and removes it). */
  workDir: string;
  /** PEM of extra trusted CAs (--ca-file), added to the system ones and NODE_EXTRA_CA_CERTS. */
  caFile?: string;
  /** Warnings for the user (an unpinned URL, an empty source). */
  onLog?: (message: string) => void;
  /**
   * A transport to share (the packer's, with its retry and warning hooks).
   * Without one, a transport trusting `caFile` is made when a url source needs
   * it and closed before returning.
   */
  transport?: HttpTransport;
  /** For git sources over https: --git-username with the password in the variable --git-password-env names. */
  gitUsername?: string;
  gitPasswordEnv?: string;
  /** For git over SSH: --ssh-key, --known-hosts (the passphrase from AIRLOCK_SSH_PASSPHRASE). */
  sshKey?: string;
  knownHosts?: string;
  /** For s3 sources: --s3-endpoint. */
  s3Endpoint?: string;
  /** Told what each git source resolved to (the commit belongs in the bundle's record of its sources). */
  onResolved?: (resolved: ResolvedSource) => void;
}

/** What a git source was read from. */
export interface ResolvedSource {
  /** Position in the spec's manifests list. */
  index: number;
  kind: 'git';
  url: string;
  /** The full ref fetched ("refs/tags/v1.2.0") or the sha asked for. */
  ref: string;
  commit: string;
  path?: string;
}

/** The most a url source may download, and the most an archive may expand to. */
export const MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024;
export const MAX_EXTRACTED_BYTES = 512 * 1024 * 1024;
export const MAX_ARCHIVE_ENTRIES = 100_000;
const HASH_CONCURRENCY = 8;
const YAML_NAME = /\.ya?ml$/i;
const ARCHIVE_NAME = /\.(tar\.gz|tgz|tar)$/i;
/** What is dropped from an archive's name to name its folder (".gz" only when the content said gzip). */
const ARCHIVE_EXT = /\.(tar\.gz|tgz|tar|gz)$/i;
const MiB = 1024 * 1024;

/** A file found locally, not hashed yet. */
interface Found {
  path: string;
  file: string;
}

interface Context {
  options: FetchManifestsOptions;
  transport: () => HttpTransport;
}

export async function fetchManifests(sources: ManifestSource[], options: FetchManifestsOptions): Promise<ManifestFile[]> {
  let own: HttpTransport | undefined;
  const ctx: Context = {
    options,
    transport: () => options.transport ?? (own ??= new HttpTransport({ caFile: options.caFile })),
  };
  try {
    const byPath = new Map<string, { found: Found; from: string }>();
    for (const [i, source] of sources.entries()) {
      const from = describe(source, i);
      const found = await fetchOne(source, i, from, ctx);
      if (found.length === 0) options.onLog?.(`${from}: no files`);
      for (const f of found) {
        const clash = byPath.get(f.path);
        if (clash) {
          throw new UsageError(`${clash.from} and ${from} both give ${f.path}`, {
            hint: 'each source lands under manifests/<its name>/: rename a folder, a file or an archive, or drop one source',
          });
        }
        byPath.set(f.path, { found: f, from });
      }
    }
    const limit = pLimit(HASH_CONCURRENCY);
    const files = await Promise.all([...byPath.values()].map(({ found }) => limit(() => hashFile(found))));
    // The loader parses every manifest it commits: YAML past the limits is refused here, not there.
    for (const f of files) if (YAML_NAME.test(f.path)) checkYamlShape(await readYamlText(f.file, f.path, 'source'), f.path, 'source');
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  } finally {
    await own?.close();
  }
}

/** How a source is named in messages: its spec field and what it points at (URLs without secrets). */
function describe(source: ManifestSource, i: number): string {
  return source.kind === 'path' ? `manifests[${i}].path ${source.path}` : `manifests[${i}].${source.kind} ${redactUrl(source.url)}`;
}

async function fetchOne(source: ManifestSource, i: number, from: string, ctx: Context): Promise<Found[]> {
  switch (source.kind) {
    case 'path':
      return fromPath(resolve(source.path), from);
    case 'url':
      return fromUrl(source.url, source.sha256, i, from, ctx);
    case 'git':
      return fromGit(source, i, from, ctx);
    case 's3':
      return fromS3(source.url, i, from, ctx);
  }
}

// ---------------------------------------------------------------------------
// Local paths

/** A file (-> manifests/<name>) or every regular file under a directory (-> manifests/<dir name>/...). */
async function fromPath(root: string, from: string): Promise<Found[]> {
  let st;
  try {
    // The path the spec names may itself be a symlink: the user chose it. Links inside a tree are refused.
    st = await stat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${from}: no such file or directory` : `${from}: cannot be read: ${(err as Error).message}`, {
      hint: 'manifests[].path is relative to the spec file’s folder',
    });
  }
  if (st.isFile()) return [checked({ path: `manifests/${basename(root)}`, file: root }, from)];
  if (!st.isDirectory()) throw new UsageError(`${from}: not a regular file or a directory`, { hint: 'name a folder of YAML files or one file' });
  const found = await walk(root, `manifests/${basename(root)}`, (full, what) => {
    throw new UsageError(`${from}: ${full} is ${what}; bundles carry regular files only`, {
      hint: `copy the file it stands for into its place (cp --remove-destination "$(readlink -f ${full})" ${full}), or move it out of the folder`,
    });
  });
  return found.map((f) => checked(f, from));
}

function checked(f: Found, from: string): Found {
  const why = checkEntryPath(f.path);
  if (why) throw new UsageError(`${from}: ${f.file} would be the bundle entry ${JSON.stringify(f.path)}, which has ${why}`, { hint: 'rename the file or folder' });
  return f;
}

/**
 * Every regular file under `root`, depth first in name order, mapped under
 * `prefix`. `.git` is skipped; anything else that is not a file or folder
 * goes to `odd`, which throws.
 */
async function walk(root: string, prefix: string, odd: (full: string, what: string) => never): Promise<Found[]> {
  const out: Found[] = [];
  const visit = async (dir: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw new UsageError(`cannot read the folder ${dir}: ${(err as Error).message}`);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name === '.git') continue; // a repository's metadata (a folder, or a file in worktrees and submodules)
      const full = join(dir, e.name);
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await visit(full, r);
      else if (e.isFile()) out.push({ path: `${prefix}/${r}`, file: full });
      else odd(full, e.isSymbolicLink() ? 'a symbolic link' : e.isFIFO() ? 'a named pipe' : e.isSocket() ? 'a socket' : 'a device');
    }
  };
  await visit(root, '');
  return out;
}

async function hashFile(f: Found): Promise<ManifestFile> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(f.file) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (err) {
    throw new UsageError(`cannot read ${f.file}: ${(err as Error).message}`);
  }
  return { path: f.path, size, sha256: hash.digest('hex'), file: f.file };
}

// ---------------------------------------------------------------------------
// URLs

async function fromUrl(text: string, pin: string | undefined, i: number, from: string, ctx: Context): Promise<Found[]> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`manifests[${i}].url is not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${from}: only http and https URLs can be fetched`);
  const name = urlFileName(url);
  if (name === undefined) {
    throw new UsageError(`${from}: the URL's path names no file`, { hint: 'point url: at the file or archive itself, e.g. https://host/releases/app-1.0.tar.gz' });
  }
  const dir = join(ctx.options.workDir, `source-${i}`);
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'download');
  await download(url, file, pin, from, ctx);

  if (!ARCHIVE_NAME.test(name) && !(await isGzip(file))) return [checked({ path: `manifests/${name}`, file }, from)];
  const folder = name.replace(ARCHIVE_EXT, '') || 'archive';
  const into = join(dir, 'extracted', folder);
  await extractManifestArchive(file, into, from);
  const prefix = `manifests/${folder}`;
  const found = await walk(into, prefix, (full, what) => {
    throw new VerificationError(`${from}: the archive produced ${full}, which is ${what}`);
  });
  for (const f of found) {
    const why = checkEntryPath(f.path);
    if (why) throw new VerificationError(`${from}: the archive entry ${f.path.slice(prefix.length + 1)} has ${why}`);
  }
  return found;
}

/** The URL's last path segment, decoded, when it can be a file name. */
function urlFileName(url: URL): string | undefined {
  const last = url.pathname.split('/').pop() ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last;
  }
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) return undefined;
  return name;
}

/** GET with redirects, streamed to `file`, capped, checked against the pin. */
async function download(url: URL, file: string, pin: string | undefined, from: string, ctx: Context): Promise<void> {
  const { sha256: actual } = await downloadToFile(url, file, {
    transport: ctx.transport(),
    from,
    maxBytes: MAX_DOWNLOAD_BYTES,
    tooBig: () => tooBig(from),
    deniedHint: 'the server refused access: check the credentials (https://user:password@host/... in the URL)',
  });
  if (pin !== undefined && actual !== pin.toLowerCase()) {
    throw new VerificationError(`${from}: downloaded content has sha256 ${actual}, but the spec pins sha256 ${pin}`, {
      hint: 'the file changed at its source or in transit: find out why before you update the pin',
    });
  }
  if (pin === undefined) ctx.options.onLog?.(`${from} is not pinned; it downloaded with sha256 ${actual} (add sha256: ${actual} to the spec)`);
}

function tooBig(from: string): UsageError {
  return new UsageError(`${from}: more than ${MAX_DOWNLOAD_BYTES / MiB} MiB; that is not a manifest file or archive`, {
    hint: 'url: names the application’s YAML (or an archive of it); images go under images:',
  });
}

async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------
// git and S3

async function fromGit(source: Extract<ManifestSource, { kind: 'git' }>, i: number, from: string, ctx: Context): Promise<Found[]> {
  const { options } = ctx;
  const name = source.path?.split('/').filter(Boolean).pop() ?? repositoryName(source.url);
  if (name === undefined) {
    throw new UsageError(`${from}: cannot name a folder after this URL`, { hint: 'give path: (the folder in the repository), whose last component names the folder in the bundle' });
  }
  const dir = join(options.workDir, `source-${i}`);
  await mkdir(dir, { recursive: true });
  const into = join(dir, 'tree', name);
  const tree = await fetchGitTree(source, into, {
    workDir: dir,
    transport: ctx.transport(),
    username: options.gitUsername,
    passwordEnv: options.gitPasswordEnv,
    sshKey: options.sshKey,
    knownHosts: options.knownHosts,
    label: `manifests[${i}].git`,
    onLog: options.onLog,
    maxBytes: MAX_EXTRACTED_BYTES,
    maxFiles: MAX_ARCHIVE_ENTRIES,
    maxFetchBytes: MAX_DOWNLOAD_BYTES,
  });
  options.onResolved?.({ index: i, kind: 'git', url: redactUrl(source.url), ref: tree.ref, commit: tree.commit, ...(source.path ? { path: source.path } : {}) });
  const found = await walk(into, `manifests/${name}`, (full, what) => {
    throw new VerificationError(`${from}: the tree produced ${full}, which is ${what}`);
  });
  return found.map((f) => checked(f, from));
}

async function fromS3(url: string, i: number, from: string, ctx: Context): Promise<Found[]> {
  const name = s3FolderName(url);
  const into = join(ctx.options.workDir, `source-${i}`, 'objects', name);
  await fetchS3Prefix(url, into, {
    endpoint: ctx.options.s3Endpoint,
    caFile: ctx.options.caFile,
    label: `manifests[${i}].s3`,
    maxBytes: MAX_EXTRACTED_BYTES,
    maxFiles: MAX_ARCHIVE_ENTRIES,
  });
  const found = await walk(into, `manifests/${name}`, (full, what) => {
    throw new VerificationError(`${from}: the objects produced ${full}, which is ${what}`);
  });
  return found.map((f) => checked(f, from));
}

// ---------------------------------------------------------------------------
// Archives

async function extractManifestArchive(file: string, into: string, from: string): Promise<void> {
  await extractArchive(file, into, {
    from,
    maxBytes: MAX_EXTRACTED_BYTES,
    maxEntries: MAX_ARCHIVE_ENTRIES,
    unreadableHint: 'url: takes a .tar.gz, .tgz or .tar archive, or a single file',
    refusedHint: 'a manifest archive may hold regular files and folders only, at relative paths inside it',
  });
}
