import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { UsageError, VerificationError } from '../../../shared/cli/errors.ts';
import { extractArchive } from '../safe-tar.ts';

/**
 * Chart archives (.tgz, as `helm package` writes them: every file under one
 * top folder named after the chart): unpacked safely, since nobody vouches
 * for them, and packed again deterministically when airlock changed one.
 */

/** Caps for one chart archive: what helm itself accepts is smaller (100 MiB expanded). */
export const MAX_CHART_ARCHIVE_BYTES = 128 * 1024 * 1024;
export const MAX_CHART_EXPANDED_BYTES = 256 * 1024 * 1024;
export const MAX_CHART_FILES = 20_000;

/**
 * The mtime of every entry of a repackaged chart: fixed, so the same content
 * gives the same bytes (2000-01-01T00:00:00Z; a zero mtime upsets some tools).
 */
export const REPACK_MTIME = new Date(Date.UTC(2000, 0, 1));

/**
 * Unpack a chart archive into `into` (which must not exist or be empty) and
 * return the chart's folder: the archive's one top-level folder, holding
 * Chart.yaml. Anything hostile or malformed is a VerificationError (exit 3).
 */
export async function extractChart(file: string, into: string, from: string): Promise<string> {
  await extractArchive(file, into, {
    from,
    maxBytes: MAX_CHART_EXPANDED_BYTES,
    maxEntries: MAX_CHART_FILES,
    unreadableHint: 'a chart is a .tgz as helm package writes it',
    refusedHint: 'a chart archive may hold regular files and folders only, under its one top folder',
  });
  const top = await readdir(into, { withFileTypes: true });
  if (top.length !== 1 || !top[0]!.isDirectory()) {
    throw new VerificationError(`${from}: a chart archive holds one top folder, this one holds ${top.map((e) => JSON.stringify(e.name)).join(', ') || 'nothing'}`, {
      hint: 'package the chart with helm package',
    });
  }
  const dir = join(into, top[0]!.name);
  const chartYaml = await stat(join(dir, 'Chart.yaml')).catch(() => undefined);
  if (!chartYaml?.isFile()) throw new VerificationError(`${from}: no Chart.yaml in its top folder ${top[0]!.name}/`, { hint: 'package the chart with helm package' });
  return dir;
}

/**
 * Every regular file under `dir`, relative, "/"-separated, sorted by code
 * unit. Anything else (a link, a device) is `odd`'s to refuse.
 */
export async function listChartFiles(dir: string, odd: (full: string, what: string) => never, skip: (name: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    for (const e of await readdir(abs, { withFileTypes: true })) {
      if (skip(e.name)) continue;
      const full = join(abs, e.name);
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await visit(full, r);
      else if (e.isFile()) out.push(r);
      else odd(full, e.isSymbolicLink() ? 'a symbolic link' : 'not a regular file');
    }
  };
  await visit(dir, '');
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Copy a chart folder the user named (a path source, a git checkout) into
 * `into`/<its name>, regular files only: a link or device in it is a
 * UsageError (exit 2), as for manifest paths. `.git` is left out.
 */
export async function copyChartFolder(src: string, into: string, from: string): Promise<string> {
  const files = await listChartFiles(src, (full, what) => {
    throw new UsageError(`${from}: ${full} is ${what}; airlock packs charts of regular files only`, {
      hint: 'replace the link with the file it stands for, or move it out of the chart folder',
    });
  }, (name) => name === '.git');
  await mkdir(into, { recursive: true });
  for (const rel of files) {
    const to = join(into, ...rel.split('/'));
    await mkdir(join(to, '..'), { recursive: true });
    await copyFile(join(src, ...rel.split('/')), to);
  }
  return into;
}

/**
 * Pack the chart folder `dir` as `out` (a .tgz) deterministically: entries
 * "<name>/<path>" for regular files only (no folder entries), sorted, mode
 * 0644, uid/gid 0 and no user names, one fixed mtime, gzip with no name, no
 * timestamp and a fixed OS byte. The same files give the same bytes every
 * time (with the same zlib). Returns the archive's sha256 (hex) and size.
 */
export async function packChart(dir: string, name: string, out: string): Promise<{ sha256: string; size: number }> {
  const files = await listChartFiles(dir, (full, what) => {
    throw new Error(`internal: ${full} is ${what} in a folder airlock wrote`);
  });
  // The modes in the archive come from the files: make them all the same.
  for (const rel of files) await chmod(join(dir, ...rel.split('/')), 0o644);
  const parent = join(dir, '..');
  const stage = join(parent, `.${name}.pack`);
  await rm(stage, { recursive: true, force: true });
  // Entries are named "<chart name>/...": the folder may be named otherwise, so pack from a link-free staging name.
  const base = dir.endsWith(`/${name}`) ? parent : undefined;
  const cwd = base ?? stage;
  if (base === undefined) {
    await mkdir(join(stage, name), { recursive: true });
    for (const rel of files) {
      const to = join(stage, name, ...rel.split('/'));
      await mkdir(join(to, '..'), { recursive: true });
      await copyFile(join(dir, ...rel.split('/')), to);
      await chmod(to, 0o644);
    }
  }
  try {
    const tar = createTar(
      { gzip: { level: 9 }, cwd, portable: true, mtime: REPACK_MTIME, noDirRecurse: true, strict: true },
      files.map((rel) => `${name}/${rel}`),
    );
    await pipeline(tar, createWriteStream(out, { flags: 'wx' }));
  } catch (err) {
    await rm(out, { force: true });
    throw err;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return hashFile(out);
}

export async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}
