import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { AirlockError, RemoteError, UsageError, VerificationError } from '../../shared/cli/errors.ts';
import { checkEntryPath } from '../../shared/bundle/format.ts';
import { parseS3Prefix, s3Call, s3Client } from '../../shared/transfer/s3.ts';

/**
 * Every object under an S3 prefix, downloaded to a folder: the source behind
 * `s3:` manifest entries. The whole listing (ListObjectsV2, paged) is read and
 * checked first: a key that climbs out with "..", is absolute, or cannot be
 * a bundle path stops everything (exit 3) before any object is fetched, as
 * does a listing past the file or byte cap. Each object is then streamed to
 * disk (bounded concurrency), and must arrive with the size the listing gave.
 * Folder markers (keys ending in "/") are skipped. The S3 client is the one
 * bundle transfers use: --s3-endpoint, --ca-file, path-style, the AWS
 * credential chain.
 */
export interface FetchS3PrefixOptions {
  /** --s3-endpoint (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). */
  endpoint?: string;
  caFile?: string;
  /** How the source is named in messages, e.g. "manifests[3].s3". */
  label?: string;
  maxBytes?: number;
  maxFiles?: number;
  /** Objects downloaded at once (default 4). */
  concurrency?: number;
  /** Keys per listing page (MaxKeys; default: the store's, 1000 on S3). */
  pageSize?: number;
}

export interface S3Tree {
  bucket: string;
  /** "" or ending in "/". */
  prefix: string;
  dir: string;
  /** Relative paths (keys without the prefix), sorted. */
  files: string[];
  bytes: number;
}

export const MAX_S3_BYTES = 512 * 1024 * 1024;
export const MAX_S3_FILES = 100_000;
const MiB = 1024 * 1024;

interface Listed {
  key: string;
  rel: string;
  size: number;
}

/** The folder name a prefix maps to: its last component, or the bucket for a whole bucket. */
export function s3FolderName(url: string): string {
  const { bucket, prefix } = parseS3Prefix(url);
  return prefix.split('/').filter(Boolean).pop() ?? bucket;
}

export async function fetchS3Prefix(url: string, dest: string, options: FetchS3PrefixOptions = {}): Promise<S3Tree> {
  const label = options.label ?? url;
  const { bucket, prefix } = parseS3Prefix(url);
  const maxBytes = options.maxBytes ?? MAX_S3_BYTES;
  const maxFiles = options.maxFiles ?? MAX_S3_FILES;
  const client = s3Client({ endpoint: options.endpoint, caFile: options.caFile });
  try {
    // 1. The whole listing, checked before anything is downloaded.
    const listed: Listed[] = [];
    let bytes = 0;
    let token: string | undefined;
    do {
      const page = await s3Call(`list s3://${bucket}/${prefix}`, () =>
        client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(options.pageSize ? { MaxKeys: options.pageSize } : {}), ...(token ? { ContinuationToken: token } : {}) })),
      );
      for (const o of page.Contents ?? []) {
        const key = o.Key ?? '';
        if (!key.startsWith(prefix)) throw new VerificationError(`${label}: the listing of ${prefix || 'the bucket'} returned the key ${JSON.stringify(key)} from outside it`);
        const rel = key.slice(prefix.length);
        if (rel.endsWith('/') && (o.Size ?? 0) === 0) continue; // a folder marker
        const why = checkEntryPath(`manifests/x/${rel}`);
        if (why) {
          throw new VerificationError(`${label}: refused the object key ${JSON.stringify(key)}: it has ${why}`, {
            hint: 'every key under the prefix must be a plain relative path (no "..", no leading or doubled "/"); remove or rename that object',
          });
        }
        const size = o.Size ?? 0;
        bytes += size;
        listed.push({ key, rel, size });
        if (listed.length > maxFiles) throw new VerificationError(`${label}: more than ${maxFiles} objects; that is not a manifest folder`, { hint: 'point s3: at the prefix of the YAML you need' });
        if (bytes > maxBytes) throw new VerificationError(`${label}: more than ${Math.round(maxBytes / MiB)} MiB of objects; that is not a manifest folder`, { hint: 'point s3: at the prefix of the YAML you need' });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) throw new RemoteError(`${label}: the store said the listing goes on but gave no continuation token`);
    } while (token);
    listed.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const files = new Set(listed.map((l) => l.rel));
    for (const l of listed) {
      const parts = l.rel.split('/');
      for (let i = 1; i < parts.length; i++) {
        const folder = parts.slice(0, i).join('/');
        if (files.has(folder)) {
          throw new UsageError(`${label}: ${prefix}${folder} is both an object and a folder (of ${l.key}); a folder of files cannot hold both`, { hint: 'rename or remove one of the two objects' });
        }
      }
    }

    // 2. Each object streamed to its file.
    await mkdir(dest, { recursive: true });
    const limit = pLimit(options.concurrency ?? 4);
    await Promise.all(listed.map((l) => limit(() => download(client, bucket, l, join(dest, ...l.rel.split('/')), label))));
    return { bucket, prefix, dir: dest, files: listed.map((l) => l.rel), bytes };
  } finally {
    client.destroy();
  }
}

async function download(client: ReturnType<typeof s3Client>, bucket: string, object: Listed, file: string, label: string): Promise<void> {
  const where = `s3://${bucket}/${object.key}`;
  const res = await s3Call(`get ${where}`, () => client.send(new GetObjectCommand({ Bucket: bucket, Key: object.key })));
  await mkdir(dirname(file), { recursive: true });
  let seen = 0;
  const changed = () => new RemoteError(`${label}: ${where} changed while it was read (listed as ${object.size} bytes)`, { hint: 'run pack again once the objects under the prefix stop changing' });
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, cb) {
      seen += chunk.length;
      if (seen > object.size) return cb(changed());
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res.Body as Readable, meter, createWriteStream(file, { flags: 'wx', mode: 0o644 }));
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof AirlockError) throw err;
    throw new RemoteError(`${label}: reading ${where} broke off after ${seen} bytes: ${(err as Error).message}`, { hint: 'try again', cause: err });
  }
  if (seen !== object.size) throw changed();
}
