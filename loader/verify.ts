import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { UsageError } from '../shared/cli/errors.ts';
import { Progress, formatBytes, formatRate } from '../shared/cli/progress.ts';
import { peekBundleIndex } from '../shared/bundle/reader.ts';
import { verifyBundleFile } from '../shared/bundle/file-verifier.ts';
import type { BundleIndex } from '../shared/bundle/format.ts';
import { readPublicKey } from '../shared/sign/keys.ts';

/** airlock verify and airlock inspect over a local bundle file. */

async function openBundle(path: string): Promise<{ size: number }> {
  if (/^[a-z0-9]+:\/\//.test(path)) throw new UsageError(`${path}: remote bundles are not built yet (issue #6); download it first`);
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    return { size: st.size };
  } catch (err) {
    throw new UsageError(`cannot read the bundle ${path}: ${(err as Error).message}`);
  }
}

export async function verifyCommand(bundle: string, keyPath: string, json: boolean): Promise<BundleIndex> {
  let keyPem: string;
  try {
    keyPem = await readFile(keyPath, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the public key ${keyPath}: ${(err as Error).message}`);
  }
  const publicKey = readPublicKey(keyPem, keyPath);
  const { size } = await openBundle(bundle);
  const progress = new Progress({ json, summaryLine: false });
  progress.phase('verify', { bytes: size });
  const started = performance.now();
  const { index } = await verifyBundleFile(bundle, {
    publicKey,
    source: basename(bundle),
    onIndex: (i) => progress.addTotal(0, i.entries.length),
    onEntryVerified: (bytes) => progress.advance(bytes, 1),
  });
  const seconds = (performance.now() - started) / 1000;
  progress.done({});
  const summary = {
    event: 'verified',
    bundle,
    name: index.name,
    version: index.version,
    images: index.images.length,
    entries: index.entries.length,
    bytes: size,
    seconds: Number(seconds.toFixed(3)),
  };
  process.stdout.write(
    json
      ? JSON.stringify(summary) + '\n'
      : `verified ${bundle}: ${index.name} ${index.version}, signature ok, ${index.entries.length} entries (${index.images.length} images), ${formatBytes(size)} in ${seconds.toFixed(1)} s (${formatRate(size / Math.max(seconds, 1e-6))})\n`,
  );
  return index;
}

export async function inspectCommand(bundle: string, json: boolean): Promise<void> {
  const { size } = await openBundle(bundle);
  const index = await peekBundleIndex(createReadStream(bundle), basename(bundle));
  const blobs = index.entries.filter((e) => e.path.startsWith('oci/blobs/'));
  const manifests = index.entries.filter((e) => e.path.startsWith('manifests/'));
  if (json) {
    process.stdout.write(JSON.stringify({ verified: false, bundle, bytes: size, ...index }) + '\n');
    return;
  }
  const lines = [
    `${index.name} ${index.version} (created ${index.created}) — not verified: run airlock verify with the public key`,
    `platforms: ${index.platforms.join(', ') || 'all'}`,
    `size: ${formatBytes(size)}; ${blobs.length} blobs (${formatBytes(blobs.reduce((a, e) => a + e.size, 0))}); ${manifests.length} manifest files`,
    `images (${index.images.length}):`,
    ...index.images.map((i) => `  ${i.ref}  ${i.digest}${i.platforms?.length ? '  ' + i.platforms.join(',') : ''}`),
    ...(manifests.length > 0 ? [`manifest files (${manifests.length}):`, ...manifests.map((m) => `  ${m.path.slice('manifests/'.length)}  ${formatBytes(m.size)}`)] : []),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
