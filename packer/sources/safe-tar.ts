import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ReadEntry, Unpack } from 'tar';
import { VerificationError } from '../../shared/cli/errors.ts';
import { checkEntryPath } from '../../shared/bundle/format.ts';

/**
 * Extracting archives nobody vouches for (a manifest release archive, a Helm
 * chart): regular files and folders only, at relative paths inside the
 * target. A link, device, absolute path, "..", or a path that could not be a
 * bundle entry stops the extraction at once (exit 3), as does expanding past
 * the byte or file cap. Nothing is ever written outside `into`; ownership and
 * modes from the archive are not kept (files 0644, folders 0755).
 * gzip is recognised by its magic bytes.
 */
export interface ExtractOptions {
  /** Names the archive in messages. */
  from: string;
  maxBytes: number;
  maxEntries: number;
  /** The hint for an unreadable archive. */
  unreadableHint: string;
  /** The hint for a refused entry. */
  refusedHint: string;
}

const MiB = 1024 * 1024;

export async function extractArchive(file: string, into: string, options: ExtractOptions): Promise<void> {
  const { from } = options;
  await mkdir(into, { recursive: true });
  let refused: string | undefined;
  let bytes = 0;
  let entries = 0;
  const unpack = new Unpack({
    cwd: into,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    noMtime: true,
    filter: (path, entry) => {
      if (refused !== undefined || !(entry instanceof ReadEntry)) return false;
      const why = unsafeEntry(path, entry);
      if (why === SKIP) return false;
      if (why !== undefined) refused = why;
      else if (entry.type !== 'Directory') {
        bytes += entry.size;
        entries += 1;
        if (bytes > options.maxBytes) refused = `it expands to more than ${options.maxBytes / MiB} MiB`;
        else if (entries > options.maxEntries) refused = `it holds more than ${options.maxEntries} files`;
      }
      if (refused !== undefined) {
        // Stop reading: nothing after a refused entry is used (aborted outside tar's own callback).
        const why = refused;
        setImmediate(() => unpack.abort(new Error(why)));
        return false;
      }
      entry.mode = entry.type === 'Directory' ? 0o755 : 0o644;
      return true;
    },
  });
  const input = createReadStream(file);
  try {
    await new Promise<void>((resolveDone, reject) => {
      input.on('error', reject);
      unpack.on('error', reject); // kept: an abort after another error must not go unheard
      unpack.once('close', () => resolveDone());
      input.pipe(unpack);
    });
  } catch (err) {
    if (refused === undefined) {
      throw new VerificationError(`${from}: not a readable tar archive: ${(err as Error).message}`, { hint: options.unreadableHint });
    }
  } finally {
    input.destroy();
  }
  if (refused !== undefined) {
    throw new VerificationError(`${from}: refused the archive: ${refused}`, { hint: options.refusedHint });
  }
  // Nothing but files and folders can have been written; check the result anyway before anything is used.
  const check = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir)) {
      const full = join(dir, e);
      const st = await lstat(full);
      if (st.isDirectory()) await check(full);
      else if (!st.isFile()) throw new VerificationError(`${from}: the archive produced ${full}, which is not a regular file`);
    }
  };
  await check(into);
}

const SKIP = Symbol('skip');

/** Why an archive entry may not be extracted; SKIP for the archive's own root folder ("./"). */
function unsafeEntry(path: string, entry: ReadEntry): string | typeof SKIP | undefined {
  const shown = JSON.stringify(path);
  const type = entry.type;
  if (type !== 'File' && type !== 'OldFile' && type !== 'Directory') {
    const what: Record<string, string> = {
      SymbolicLink: 'a symbolic link',
      Link: 'a hard link',
      CharacterDevice: 'a character device',
      BlockDevice: 'a block device',
      FIFO: 'a named pipe',
    };
    return `${shown} is ${what[type] ?? `a ${type} entry`}${entry.linkpath ? ` to ${JSON.stringify(entry.linkpath)}` : ''}`;
  }
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return `${shown} is an absolute path`;
  if (path.split(/[/\\]/).includes('..')) return `${shown} climbs out of the archive with ".."`;
  // "./deploy/app.yaml" (tar -C dir .) is as good as "deploy/app.yaml".
  let rel = posix.normalize(path.replace(/\/+$/, ''));
  while (rel.startsWith('./')) rel = rel.slice(2);
  if (rel === '.' || rel === '') return type === 'Directory' ? SKIP : `${shown} is not a file name`;
  // The bundle's own path rules: no backslash, NUL, "." or empty components, normalized.
  const why = checkEntryPath(`manifests/archive/${rel}`);
  if (why) return `${shown} has ${why}`;
  return undefined;
}
