import { rm, statfs } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { AirlockError, ExitCode } from '../cli/errors.ts';
import { formatBytes } from '../cli/progress.ts';

/**
 * A full disk, said the same way by every local write (pack's bundle,
 * download, split): the disk is full, which folder, how much was needed and
 * how much is free. Exit 4 (a local I/O failure), never 1. The callers drop
 * what they wrote before throwing it.
 */
export class DiskFullError extends AirlockError {
  constructor(
    readonly folder: string,
    readonly neededBytes: number | undefined,
    readonly freeBytes: number | undefined,
    what: string,
    cause?: unknown,
  ) {
    const needed = neededBytes === undefined ? '' : `: ${formatBytes(neededBytes)} (${neededBytes} bytes) needed`;
    const free = freeBytes === undefined ? '' : `, ${formatBytes(freeBytes)} (${freeBytes} bytes) free`;
    super(ExitCode.Remote, `disk full in ${folder}: cannot write ${what}${needed}${free}; nothing was left there`, {
      hint: `free space in ${folder} (or write to another folder) and run the same command again`,
      cause,
    });
  }
}

/** ENOSPC (no space left) or EDQUOT (quota exceeded), on the error or its causes. */
export function isDiskFull(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}

/** Bytes free to an unprivileged writer in the file system holding `folder`, or undefined when unknown. */
export async function freeBytes(folder: string): Promise<number | undefined> {
  try {
    const s = await statfs(folder);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}

/**
 * Refuse early, with the numbers, when `folder` has less than `neededBytes`
 * free: before a long download, not after it.
 */
export async function ensureFreeSpace(folder: string, neededBytes: number, what: string): Promise<void> {
  const free = await freeBytes(folder);
  if (free !== undefined && free < neededBytes) throw new DiskFullError(folder, neededBytes, free, what);
}

/** `err` as a DiskFullError when it is ENOSPC/EDQUOT (with the free space now), else `err` unchanged. */
export async function diskFullOr(err: unknown, folder: string, neededBytes: number | undefined, what: string): Promise<unknown> {
  if (err instanceof DiskFullError || !isDiskFull(err)) return err;
  return new DiskFullError(folder, neededBytes, await freeBytes(folder), what, err);
}

/**
 * After a failed download into `temp`: when the disk is full, remove the
 * partial file (a resume would only fill the disk again) and throw the
 * DiskFullError; otherwise return, and the caller reports the failure.
 */
export async function dropWhenDiskFull(err: unknown, temp: string, neededBytes: number): Promise<void> {
  if (!isDiskFull(err)) return;
  await rm(temp, { force: true });
  throw await diskFullOr(err, folderOf(temp), neededBytes, basename(temp).replace(/\.partial$/, ''));
}

/** The folder a file is written in, absolute (for messages). */
export function folderOf(file: string): string {
  return dirname(resolve(file));
}
