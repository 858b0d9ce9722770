import { readFile } from 'node:fs/promises';
import { UsageError } from '../shared/cli/errors.ts';
import { Progress, formatBytes, formatRate } from '../shared/cli/progress.ts';
import { jsonLine, printResult } from '../shared/cli/output.ts';
import { peekBundleIndex } from '../shared/bundle/reader.ts';
import { verifyBundleFile } from '../shared/bundle/file-verifier.ts';
import { openAnyBundle } from '../shared/transfer/open.ts';
import type { S3Options } from '../shared/transfer/s3.ts';
import { LOADER_PATH, type BundleIndex } from '../shared/bundle/format.ts';
import { readPublicKey } from '../shared/sign/keys.ts';
import { deltaSummary, describeDelta } from '../shared/bundle/delta.ts';

/** airlock verify and airlock inspect over a local bundle file. */

export async function verifyCommand(bundle: string, keyPath: string, json: boolean, s3: S3Options = {}): Promise<BundleIndex> {
  let keyPem: string;
  try {
    keyPem = await readFile(keyPath, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the public key ${keyPath}: ${(err as Error).message}`);
  }
  const publicKey = readPublicKey(keyPem, keyPath);
  const bytes = await openAnyBundle(bundle, { s3 });
  const size = bytes.size;
  const progress = new Progress({ json, summaryLine: false });
  progress.phase('verify', { bytes: size });
  const started = performance.now();
  const { index } = await verifyBundleFile(bytes, {
    publicKey,
    source: bytes.name,
    onIndex: (i) => progress.addTotal(0, i.entries.length),
    onEntryVerified: (n) => progress.advance(n, 1),
  }).finally(() => bytes.close());
  const seconds = (performance.now() - started) / 1000;
  progress.done({});
  const delta = deltaSummary(index);
  const summary = {
    bundle,
    name: index.name,
    version: index.version,
    images: index.images.length,
    entries: index.entries.length,
    bytes: size,
    seconds: Number(seconds.toFixed(3)),
    ...(delta ? { delta } : {}),
  };
  printResult(
    'verify',
    summary,
    json,
    () =>
      `verified ${bundle}: ${index.name} ${index.version}, signature ok, ${index.entries.length} entries (${index.images.length} images), ${formatBytes(size)} in ${seconds.toFixed(1)} s (${formatRate(size / Math.max(seconds, 1e-6))})` +
      (delta ? `\n${describeDelta(delta, formatBytes)}; load checks that before writing anything` : ''),
  );
  return index;
}

export async function inspectCommand(bundle: string, json: boolean, s3: S3Options = {}): Promise<void> {
  // The index alone: a split bundle's volumes are not all read (nor hashed) for it.
  const bytes = await openAnyBundle(bundle, { s3, checkVolumes: false });
  const size = bytes.size;
  const index = await peekBundleIndex(bytes, bytes.name).finally(() => bytes.close());
  const blobs = index.entries.filter((e) => e.path.startsWith('oci/blobs/'));
  const manifests = index.entries.filter((e) => e.path.startsWith('manifests/'));
  const inspectDelta = deltaSummary(index);
  const loader = index.entries.find((e) => e.path === LOADER_PATH);
  if (json) {
    process.stdout.write(printable(jsonLine('result', { command: 'inspect', verified: false, bundle, bytes: size, ...index, ...(inspectDelta ? { delta: inspectDelta } : {}) }).trimEnd()) + '\n');
    return;
  }
  const lines = [
    `${index.name} ${index.version} (created ${index.created}) — not verified: run airlock verify with the public key`,
    `platforms: ${index.platforms.join(', ') || 'all'}`,
    ...(inspectDelta ? [describeDelta(inspectDelta, formatBytes)] : []),
    `size: ${formatBytes(size)}; ${blobs.length} blobs (${formatBytes(blobs.reduce((a, e) => a + e.size, 0))}); ${manifests.length} manifest files`,
    ...(loader ? [`loader: ${LOADER_PATH} (${formatBytes(loader.size)}, sha256 ${loader.sha256}): check it against the verified index before running it`] : []),
    `images (${index.images.length}):`,
    ...index.images.map((i) => `  ${i.ref}  ${i.digest}${i.platforms?.length ? '  ' + i.platforms.join(',') : ''}${i.charts?.length ? `  charts: ${i.charts.join(',')}` : ''}${signatureCounts(i.signatures)}`),
    ...(index.charts.length > 0
      ? [
          `charts (${index.charts.length}):`,
          ...index.charts.map(
            (c) => `  ${c.name} ${c.version}  release ${c.releaseName}  namespace ${c.namespace}  gitops ${c.gitops}  ${c.digest}  (${c.images.length} image${c.images.length === 1 ? '' : 's'}; source: ${c.source})`,
          ),
        ]
      : []),
    ...(manifests.length > 0 ? [`manifest files (${manifests.length}):`, ...manifests.map((m) => `  ${m.path.slice('manifests/'.length)}  ${formatBytes(m.size)}`)] : []),
  ];
  process.stdout.write(lines.map(printable).join('\n') + '\n');
}

/** "  signatures: 2 sig, 1 referrer", or nothing for an image without any. */
function signatureCounts(signatures: { kind: string }[] | undefined): string {
  if (!signatures?.length) return '';
  const counts = new Map<string, number>();
  for (const s of signatures) counts.set(s.kind, (counts.get(s.kind) ?? 0) + 1);
  return `  signatures: ${[...counts].map(([kind, n]) => `${n} ${kind}`).join(', ')}`;
}

/**
 * Characters a terminal may act on (C0/C1 controls, DEL, line separators, bidi
 * overrides) in text from the unsigned index, shown as \u escapes. JSON.stringify
 * escapes C0 controls but leaves the others raw; escaping them keeps JSON valid.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

function printable(text: string): string {
  return text.replace(UNSAFE, escape);
}

