import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Full disks on demand, for the tests and the reliability campaign: a tmpfs of a given size
 * mounted on a folder (needs root or CAP_SYS_ADMIN), resized in place, and filled.
 */

/** Mount a tmpfs of `bytes` on `dir`; false when mounting is not permitted here. */
export function mountTmpfs(dir: string, bytes: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 1024)}k`, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Give a mounted tmpfs a new size, keeping what it holds (room for a rerun). */
export function resizeTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-o', `remount,size=${Math.ceil(bytes / 1024)}k`, dir], { stdio: 'pipe' });
}

/** Unmount, lazily: a process (a registry) may still hold files there. */
export function unmountTmpfs(dir: string): void {
  execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
}

/** Write zeros to `dir/filler` until the file system is full (ENOSPC). */
export function fill(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}
