import { BrokenTransferError } from './broken.ts';
import { open, readFile, rename, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import type { Client, SFTPWrapper, Stats } from 'ssh2';
import { RemoteError, UsageError, VerificationError } from '../cli/errors.ts';
import { openBundleBytes, partsListName, type PartsList } from '../bundle/volumes.ts';
import { connectSsh, type SshAuth, type SshTarget } from './ssh.ts';
import { dropWhenDiskFull, ensureFreeSpace, folderOf } from '../fs/disk-full.ts';
import { idleTimer, networkTimeoutMs, StallError } from '../net/timeout.ts';

/**
 * Bundles to and from an SFTP drop host (ssh2). Every file is written under
 * NAME.partial and renamed once its size checks out; an interrupted transfer
 * resumes from the bytes already there. A split bundle travels whole: its
 * volumes and parts list.
 */
export interface SftpLocation extends SshTarget {
  /** The remote path as given (a file, or a folder when it ends with "/"). */
  path: string;
}

export function parseSftpUrl(url: string): SftpLocation {
  const u = new URL(url);
  if (u.protocol !== 'sftp:') throw new UsageError(`${url}: not an sftp:// URL`);
  if (!u.username) throw new UsageError(`${url}: name the SSH user (sftp://user@host/path)`);
  if (u.password) throw new UsageError(`${url}: no passwords in URLs; SFTP uses --ssh-key`);
  const path = decodeURIComponent(u.pathname);
  if (path === '' || path === '/') throw new UsageError(`${url}: give the remote path`);
  return { user: decodeURIComponent(u.username), host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 22, path };
}

export interface TransferProgress {
  /** Total bytes, once known. */
  total(bytes: number): void;
  advance(bytes: number): void;
}

/** The files that make up a local bundle: the file itself, or for a first volume every volume and the parts list. */
export async function bundleFiles(bundle: string): Promise<{ name: string; files: string[] }> {
  const m = /^(.*)\.000$/.exec(bundle);
  if (!m) {
    await openBundleBytes(bundle).then((b) => b.close());
    return { name: basename(bundle), files: [bundle] };
  }
  const bytes = await openBundleBytes(bundle);
  await bytes.close();
  const list = join(dirname(bundle), partsListName(basename(m[1]!)));
  const parts = JSON.parse(await readFile(list, 'utf8')) as PartsList;
  return { name: parts.bundle, files: [...parts.volumes.map((v) => join(dirname(bundle), v.file)), list] };
}

export async function uploadSftp(bundle: string, url: string, auth: SshAuth, progress?: TransferProgress): Promise<string[]> {
  const loc = parseSftpUrl(url);
  const { name, files } = await bundleFiles(bundle);
  // "dir/" keeps the bundle's name; "dir/other.tar" renames it (volumes follow).
  const remoteBundle = loc.path.endsWith('/') ? posix.join(loc.path, name) : loc.path;
  const remoteName = (file: string) => posix.join(posix.dirname(remoteBundle), basename(file).replace(name, posix.basename(remoteBundle)));
  let total = 0;
  for (const f of files) total += (await stat(f)).size;
  progress?.total(total);
  return withSftp(loc, auth, async (sftp) => {
    const done: string[] = [];
    for (const file of files) {
      const target = remoteName(file);
      const size = (await stat(file)).size;
      const temp = `${target}.partial`;
      const existing = await sftpStat(sftp, temp);
      const offset = existing ? resumePoint(existing.size, size) : 0;
      if (existing && existing.size > size) await call<void>((cb) => sftp.unlink(temp, cb));
      progress?.advance(offset);
      if (offset < size || size === 0) {
        await copyToRemote(sftp, file, temp, offset, size, progress).catch((err: Error) => {
          throw new BrokenTransferError(`SFTP upload of ${basename(file)} to ${loc.host}:${target} broke off: ${err.message}`, { hint: 'run the same command again: it resumes' });
        });
      }
      const written = await sftpStat(sftp, temp);
      if (written?.size !== size) throw new VerificationError(`SFTP upload of ${basename(file)}: the server has ${written?.size ?? 0} bytes, expected ${size}`, { hint: 'run the same command again' });
      await replace(sftp, temp, target);
      done.push(target);
    }
    return done;
  });
}

export async function downloadSftp(url: string, output: string, auth: SshAuth, progress?: TransferProgress): Promise<string[]> {
  const loc = parseSftpUrl(url);
  return withSftp(loc, auth, async (sftp) => {
    const volumes = /^(.*)\.000$/.exec(posix.basename(loc.path));
    let files: { remote: string; local: string; size?: number }[];
    if (volumes) {
      const remoteDir = posix.dirname(loc.path);
      const bundleName = volumes[1]!;
      const list = posix.join(remoteDir, partsListName(bundleName));
      const listLocal = join(dirname(output), partsListName(basename(output)));
      await fetchFile(sftp, loc, list, listLocal, undefined);
      const parts = JSON.parse(await readFile(listLocal, 'utf8')) as PartsList;
      files = parts.volumes.map((v) => ({
        remote: posix.join(remoteDir, v.file),
        local: join(dirname(output), v.file.replace(bundleName, basename(output))),
        size: v.size,
      }));
      progress?.total(parts.size);
    } else {
      const st = await sftpStat(sftp, loc.path);
      if (!st) throw new RemoteError(`SFTP ${loc.host}:${loc.path} does not exist`, { hint: 'check the path' });
      files = [{ remote: loc.path, local: output, size: st.size }];
      progress?.total(st.size);
    }
    for (const f of files) await fetchFile(sftp, loc, f.remote, f.local, progress);
    // The final check: a split bundle's volumes against its parts list (a bundle's own signature is checked by verify and load).
    const first = files[0]!.local;
    await openBundleBytes(first).then((b) => b.close());
    return files.map((f) => f.local);
  });
}

async function fetchFile(sftp: SFTPWrapper, loc: SftpLocation, remote: string, local: string, progress: TransferProgress | undefined): Promise<void> {
  const st = await sftpStat(sftp, remote);
  if (!st) throw new RemoteError(`SFTP ${loc.host}:${remote} does not exist`, { hint: 'check the path; a split bundle needs all its volumes and its parts list' });
  const temp = `${local}.partial`;
  const have = await stat(temp).then((s) => s.size, () => undefined);
  const offset = have === undefined ? 0 : resumePoint(have, st.size);
  await ensureFreeSpace(folderOf(local), st.size - Math.min(offset, have ?? 0), basename(local));
  progress?.advance(offset);
  if (offset < st.size || st.size === 0) {
    await copyFromRemote(sftp, remote, temp, offset, st.size, progress).catch(async (err: Error) => {
      await dropWhenDiskFull(err, temp, st.size);
      throw new BrokenTransferError(`SFTP download of ${loc.host}:${remote} broke off: ${err.message}`, { hint: 'run the same command again: it resumes' });
    });
  }
  const got = (await stat(temp)).size;
  if (got !== st.size) throw new VerificationError(`SFTP download of ${remote}: got ${got} bytes, the server has ${st.size}`, { hint: 'run the same command again' });
  await rename(temp, local);
}

async function withSftp<T>(loc: SftpLocation, auth: SshAuth, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
  const client: Client = await connectSsh(loc, auth);
  try {
    const sftp = await call<SFTPWrapper>((cb) => client.sftp(cb));
    return await fn(sftp);
  } finally {
    client.end();
  }
}

/**
 * SFTP is request/response: throughput comes from many requests in flight.
 * Chunks of 64 KiB (what OpenSSH's server answers in one read), 64 at once,
 * each read and written at its own offset; about 4 MiB in memory. Writes
 * never run more than WINDOW past the lowest unfinished one, so after an
 * interruption every byte below (size - WINDOW) is known to be written, and
 * that is where a resume starts.
 */
const CHUNK = 64 * 1024;
const IN_FLIGHT = 64;
export const RESUME_WINDOW = CHUNK * IN_FLIGHT * 2;

/** Where to resume a partial file of `have` bytes: below it, every byte was written. */
export function resumePoint(have: number, size: number): number {
  return have > size ? 0 : Math.max(0, have - RESUME_WINDOW);
}

/**
 * Runs `op` over [start, end) in CHUNK pieces, IN_FLIGHT at once; fails with
 * a StallError naming `where` when no piece completes for --timeout.
 */
async function pipelined(where: string, start: number, end: number, op: (position: number, length: number) => Promise<void>): Promise<void> {
  let stalled: (err: Error) => void = () => undefined;
  const stall = new Promise<never>((_, reject) => (stalled = reject));
  const idle = idleTimer(networkTimeoutMs(), () => stalled(new StallError(where)));
  try {
    await Promise.race([stall, piecewise(start, end, async (position, length) => {
      await op(position, length);
      idle.touch();
    })]);
  } finally {
    idle.stop();
  }
}

async function piecewise(start: number, end: number, op: (position: number, length: number) => Promise<void>): Promise<void> {
  let next = start;
  const running = new Set<number>();
  let wake: (() => void)[] = [];
  const lowest = () => (running.size > 0 ? Math.min(...running) : next);
  const worker = async () => {
    while (next < end) {
      if (next + CHUNK > lowest() + RESUME_WINDOW) {
        await new Promise<void>((r) => wake.push(r));
        continue;
      }
      const position = next;
      const length = Math.min(CHUNK, end - position);
      next += length;
      running.add(position);
      try {
        await op(position, length);
      } finally {
        running.delete(position);
        const w = wake;
        wake = [];
        for (const fn of w) fn();
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function copyToRemote(sftp: SFTPWrapper, file: string, remote: string, offset: number, size: number, progress?: TransferProgress): Promise<void> {
  const local = await open(file, 'r');
  const handle = await call<Buffer>((cb) => sftp.open(remote, offset > 0 ? 'r+' : 'w', cb));
  try {
    await pipelined(`SFTP upload to ${remote}`, offset, size, async (position, length) => {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await local.read(buf, 0, length, position);
      if (bytesRead !== length) throw new Error(`${file} changed while uploading`);
      await call<void>((cb) => sftp.write(handle, buf, 0, length, position, cb));
      progress?.advance(length);
    });
  } finally {
    await local.close();
    await closeQuietly(sftp, handle);
  }
}

async function copyFromRemote(sftp: SFTPWrapper, remote: string, file: string, offset: number, size: number, progress?: TransferProgress): Promise<void> {
  const local = await open(file, offset > 0 ? 'r+' : 'w');
  if (offset > 0) await local.truncate(Math.max(offset, 0));
  const handle = await call<Buffer>((cb) => sftp.open(remote, 'r', cb));
  try {
    await pipelined(`SFTP download of ${remote}`, offset, size, async (position, length) => {
      const buf = Buffer.allocUnsafe(length);
      for (let got = 0; got < length; ) {
        const n = await new Promise<number>((resolve, reject) =>
          sftp.read(handle, buf, got, length - got, position + got, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))),
        );
        if (n === 0) throw new Error(`${remote} ended early`);
        got += n;
      }
      await local.write(buf, 0, length, position);
      progress?.advance(length);
    });
  } finally {
    await local.close();
    await closeQuietly(sftp, handle);
  }
}

/** Close a remote handle, not waiting past --timeout for a server that went silent. */
async function closeQuietly(sftp: SFTPWrapper, handle: Buffer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, networkTimeoutMs()).unref()));
  await Promise.race([call<void>((cb) => sftp.close(handle, cb)).catch(() => undefined), gaveUp]);
  clearTimeout(timer);
}

function sftpStat(sftp: SFTPWrapper, path: string): Promise<Stats | undefined> {
  return new Promise((resolve) => sftp.stat(path, (err, st) => resolve(err ? undefined : st)));
}

/** Rename over an existing file (OpenSSH's posix-rename extension when offered). */
async function replace(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    await call<void>((cb) => sftp.ext_openssh_rename(from, to, cb));
  } catch {
    if (await sftpStat(sftp, to)) await call<void>((cb) => sftp.unlink(to, cb));
    await call<void>((cb) => sftp.rename(from, to, cb));
  }
}

function call<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}
