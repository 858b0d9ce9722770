/**
 * pack --include-loader: the one-file enclave loader (dist/airlock-loader.mjs,
 * npm run build) goes into the bundle as its first entry after the signature,
 * listed in the signed index like every other entry, so the enclave can check
 * it against the index before running it.
 */
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../shared/cli/errors.ts';
import { LOADER_PATH } from '../shared/bundle/format.ts';
import type { BundleFile } from '../shared/bundle/writer.ts';
import { hashFile } from './sources/charts/archive.ts';

/**
 * Where the loader is when none is given: next to the running program (the
 * one-file dist/airlock.mjs, installed or not), or in dist/ of the checkout
 * this module runs from (npm run airlock).
 */
function defaultLocations(): string[] {
  return [...new Set([new URL(`./${LOADER_PATH}`, import.meta.url), new URL(`../dist/${LOADER_PATH}`, import.meta.url)].map((u) => fileURLToPath(u)))];
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** The loader file to pack: `explicit` (--loader-file) if given, else the first default location that holds one. */
export async function findLoaderFile(explicit?: string): Promise<string> {
  if (explicit !== undefined) {
    if (await isFile(explicit)) return explicit;
    throw new UsageError(`--loader-file ${explicit}: no such file`, {
      hint: `give the one-file loader (${LOADER_PATH}) that npm run build writes to dist/`,
    });
  }
  const candidates = defaultLocations();
  for (const candidate of candidates) if (await isFile(candidate)) return candidate;
  throw new UsageError(`--include-loader: no one-file loader found (looked for ${candidates.join(' and ')})`, {
    hint: 'run `npm run build` in the airlock repository, or give the file with --loader-file PATH',
  });
}

/** The loader as a bundle entry: its bytes as they are, hashed now (the writer checks them again as it copies). */
export async function loaderBundleFile(file: string): Promise<BundleFile> {
  const { sha256, size } = await hashFile(file);
  return { path: LOADER_PATH, size, sha256, file };
}
