import { BrokenTransferError } from './broken.ts';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { basename, dirname, join, posix } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import pLimit from 'p-limit';
import { RemoteError, UsageError, VerificationError } from '../cli/errors.ts';
import { networkTimeoutMs, stallWords } from '../net/timeout.ts';
import { dropWhenDiskFull, ensureFreeSpace, folderOf } from '../fs/disk-full.ts';
import { proxyForUrl, proxyFromEnv, redactUserinfo, trustedCAs, type ProxySettings } from '../registry/transport.ts';
import type { BundleBytes } from '../bundle/volumes.ts';
import { bundleFiles, type TransferProgress } from './sftp.ts';
import { networkCause } from '../net/errors.ts';

/**
 * Bundles to and from S3 and S3-compatible stores (MinIO, Ceph RGW, enclave
 * object stores): path-style addressing, checksums only where the API
 * requires them (what such stores accept), credentials from the standard AWS
 * chain, the endpoint from --s3-endpoint or AWS_ENDPOINT_URL_S3 /
 * AWS_ENDPOINT_URL, TLS trusting --ca-file.
 */
export interface S3Options {
  endpoint?: string;
  caFile?: string;
  /** Multipart part size in bytes (default 64 MiB; S3 needs at least 5 MiB). */
  partSize?: number;
  /** Parts uploaded at once (default 4). */
  concurrency?: number;
  /** Proxy settings; default the environment's (HTTPS_PROXY, HTTP_PROXY, NO_PROXY). */
  proxy?: ProxySettings;
}

export interface S3Location {
  bucket: string;
  key: string;
}

export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(url);
  if (!m) throw new UsageError(`${url}: expected s3://bucket/key`);
  return { bucket: m[1]!, key: m[2]! };
}

/** s3://bucket, s3://bucket/ or s3://bucket/some/prefix[/]: the prefix is "" or ends with "/" (a folder, never a partial name). */
export function parseS3Prefix(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new UsageError(`${url}: expected s3://bucket/prefix/`);
  const prefix = (m[2] ?? '').replace(/^\/+/, '');
  return { bucket: m[1]!, prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/` };
}

export function s3Client(options: S3Options): S3Client {
  const endpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return new S3Client({
    ...(endpoint ? { endpoint } : {}),
    region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // --timeout: a connect that does not finish, a socket idle that long (headers or body stalled) is dropped and retried.
    requestHandler: new NodeHttpHandler({
      ...s3Agents(endpoint, trustedCAs(options.caFile), options.proxy ?? proxyFromEnv()),
      connectionTimeout: networkTimeoutMs(),
      socketTimeout: networkTimeoutMs(),
    }),
  });
}

/**
 * The SDK's connections: through the proxy the environment names for the
 * endpoint (CONNECT for https, absolute URIs for http), trusting --ca-file
 * for the store either way.
 */
function s3Agents(endpoint: string | undefined, ca: string[], proxySettings: ProxySettings) {
  // Without an endpoint the SDK talks to AWS; its host is under amazonaws.com.
  let target: URL;
  try {
    target = new URL(endpoint ?? 'https://s3.amazonaws.com');
  } catch {
    throw new UsageError(`S3 endpoint ${redactUserinfo(endpoint ?? '')} is not a URL`);
  }
  const proxy = proxyForUrl(target, proxySettings);
  if (proxy === undefined) return { httpsAgent: new HttpsAgent({ ca, keepAlive: true }) };
  // The CA options reach the tunnelled TLS connection to the store (and an https proxy's own).
  const tlsOptions = { ca, keepAlive: true } as ConstructorParameters<typeof HttpsProxyAgent<string>>[1];
  return { httpsAgent: new HttpsProxyAgent(proxy, tlsOptions), httpAgent: new HttpProxyAgent(proxy, { keepAlive: true }) };
}

const MIB = 1024 * 1024;

// The AWS SDK warns on every run under Node 20 that its releases after January 2027
// need Node 22. airlock supports Node 20 (and pins an SDK that runs there), so that
// one warning is dropped; every other warning still shows.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const name = typeof warning === 'string' ? (typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type) : warning.name;
  if (name === 'NodeVersionSupportWarning' || /NodeVersionSupportWarning/.test(String(warning))) return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

/** One S3 call; SDK failures become exit 4 naming the call, with a hint by cause (credentials, bucket and key, endpoint). */
export async function s3Call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UsageError || err instanceof VerificationError || err instanceof RemoteError) throw err;
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    const network = e.name === 'TimeoutError' ? { words: stallWords(), tls: false } : networkCause(err);
    if (network && status === undefined) throw new RemoteError(`S3 ${what}: ${network.words}`, { hint: network.tls ? undefined : 'check --s3-endpoint and that the store is reachable', cause: err });
    throw new RemoteError(`S3 ${what}: ${e.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${redactUserinfo(e.message ?? String(err))}`, {
      hint:
        status === 403 || e.name === 'InvalidAccessKeyId' || e.name === 'SignatureDoesNotMatch'
          ? 'check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) and the bucket policy'
          : status === 404 || e.name === 'NoSuchKey' || e.name === 'NoSuchBucket'
            ? 'check the bucket and key'
            : 'check --s3-endpoint and that the store is reachable',
      cause: err,
    });
  }
}

/** The resume journal of a multipart upload, next to the local file. */
interface Journal {
  bucket: string;
  key: string;
  size: number;
  mtimeMs: number;
  partSize: number;
  uploadId: string;
  parts: Record<string, string>;
}

export async function uploadS3(bundle: string, url: string, options: S3Options, progress?: TransferProgress): Promise<string[]> {
  const loc = parseS3Url(url);
  const { name, files } = await bundleFiles(bundle);
  const baseKey = loc.key.endsWith('/') ? `${loc.key}${name}` : loc.key;
  const keyOf = (file: string) => posix.join(posix.dirname(baseKey), basename(file).replace(name, posix.basename(baseKey)));
  const partSize = options.partSize ?? 64 * MIB;
  if (partSize < 5 * MIB) throw new UsageError('--part-size: S3 needs parts of at least 5 MiB');
  let total = 0;
  for (const f of files) total += (await stat(f)).size;
  progress?.total(total);
  const client = s3Client(options);
  try {
    const done: string[] = [];
    for (const file of files) {
      const key = keyOf(file);
      const st = await stat(file);
      if (st.size <= partSize) {
        await s3Call(`put s3://${loc.bucket}/${key}`, () =>
          client.send(new PutObjectCommand({ Bucket: loc.bucket, Key: key, Body: createReadStream(file), ContentLength: st.size })),
        );
        progress?.advance(st.size);
      } else {
        await multipart(client, loc.bucket, key, file, st.size, st.mtimeMs, partSize, options.concurrency ?? 4, progress);
      }
      done.push(`s3://${loc.bucket}/${key}`);
    }
    return done;
  } finally {
    client.destroy();
  }
}

async function multipart(client: S3Client, bucket: string, key: string, file: string, size: number, mtimeMs: number, partSize: number, concurrency: number, progress?: TransferProgress): Promise<void> {
  const journalFile = join(dirname(file), `.${basename(file)}.s3-upload.json`);
  let journal = (await readFile(journalFile, 'utf8').then((t) => JSON.parse(t) as Journal).catch(() => undefined)) ?? undefined;
  if (journal && (journal.bucket !== bucket || journal.key !== key || journal.size !== size || journal.mtimeMs !== mtimeMs || journal.partSize !== partSize)) journal = undefined;
  if (journal) {
    // The store's own list is authoritative where it has one; a store without ListParts keeps the journal's.
    try {
      const listed = await client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: journal.uploadId }));
      journal.parts = Object.fromEntries((listed.Parts ?? []).map((p) => [String(p.PartNumber), p.ETag!]));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'NoSuchUpload') journal = undefined;
    }
  }
  if (!journal) {
    const created = await s3Call(`start upload of s3://${bucket}/${key}`, () => client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key })));
    journal = { bucket, key, size, mtimeMs, partSize, uploadId: created.UploadId!, parts: {} };
  }
  const j = journal;
  const save = () => writeFile(`${journalFile}.tmp`, JSON.stringify(j)).then(() => rename(`${journalFile}.tmp`, journalFile));
  await save();
  const count = Math.ceil(size / partSize);
  const limit = pLimit(concurrency);
  let saving = Promise.resolve();
  await Promise.all(
    Array.from({ length: count }, (_, i) => i + 1).map((n) =>
      limit(async () => {
        const start = (n - 1) * partSize;
        const length = Math.min(partSize, size - start);
        if (j.parts[String(n)]) {
          progress?.advance(length);
          return;
        }
        const res = await s3Call(`upload part ${n} of s3://${bucket}/${key}`, () =>
          client.send(
            new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: j.uploadId, PartNumber: n, Body: createReadStream(file, { start, end: start + length - 1 }), ContentLength: length }),
          ),
        );
        j.parts[String(n)] = res.ETag!;
        saving = saving.then(save);
        await saving;
        progress?.advance(length);
      }),
    ),
  );
  await s3Call(`complete upload of s3://${bucket}/${key}`, () =>
    client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: j.uploadId,
        MultipartUpload: { Parts: Array.from({ length: count }, (_, i) => ({ PartNumber: i + 1, ETag: j.parts[String(i + 1)]! })) },
      }),
    ),
  );
  const head = await s3Call(`check s3://${bucket}/${key}`, () => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
  if (head.ContentLength !== size) throw new VerificationError(`s3://${bucket}/${key} has ${head.ContentLength} bytes after the upload, expected ${size}`);
  await rm(journalFile, { force: true });
}

export async function downloadS3(url: string, output: string, options: S3Options, progress?: TransferProgress): Promise<string[]> {
  const loc = parseS3Url(url);
  const client = s3Client(options);
  try {
    const head = await s3Call(`head ${url}`, () => client.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key })));
    const size = head.ContentLength ?? 0;
    progress?.total(size);
    const temp = `${output}.partial`;
    const have = await stat(temp).then((s) => s.size, () => 0);
    const offset = have <= size ? have : 0;
    await ensureFreeSpace(folderOf(output), size - offset, basename(output));
    progress?.advance(offset);
    if (offset < size) {
      const res = await s3Call(`get ${url}`, () => client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, Range: `bytes=${offset}-` })));
      const meter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          progress?.advance(chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(res.Body as Readable, meter, createWriteStream(temp, { flags: offset > 0 ? 'r+' : 'w', start: offset })).catch(async (err: Error) => {
        await dropWhenDiskFull(err, temp, size);
        throw new BrokenTransferError(`S3 download of ${url} broke off: ${err.message}`, { hint: 'run the same command again: it resumes' });
      });
    } else if (size === 0) {
      await writeFile(temp, '');
    }
    const got = (await stat(temp)).size;
    if (got !== size) throw new VerificationError(`S3 download of ${url}: got ${got} bytes, the store has ${size}`, { hint: 'run the same command again' });
    await rename(temp, output);
    return [output];
  } finally {
    client.destroy();
  }
}

/** A bundle in S3, read by ranged GETs: no local copy. */
export async function openS3Bytes(url: string, options: S3Options): Promise<BundleBytes> {
  const loc = parseS3Url(url);
  if (/\.\d{3}$/.test(loc.key)) throw new UsageError(`${url}: split bundles are read from S3 after download (airlock download), not in place`);
  const client = s3Client(options);
  const head = await s3Call(`head ${url}`, () => client.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key })));
  const size = head.ContentLength ?? 0;
  const get = (start: number, end: number) =>
    s3Call(`get ${url}`, () => client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, Range: `bytes=${start}-${end - 1}` })));
  return {
    name: posix.basename(loc.key),
    size,
    async read(position, length) {
      if (length === 0) return Buffer.alloc(0);
      const res = await get(position, position + length);
      const bytes = Buffer.from(await res.Body!.transformToByteArray());
      if (bytes.length !== length) throw new Error('short read');
      return bytes;
    },
    stream(start, end) {
      const out = new PassThrough({ highWaterMark: 1 << 20 });
      if (end <= start) {
        out.end();
        return out;
      }
      get(start, end).then(
        (res) => {
          const body = res.Body as Readable;
          body.on('error', (err) => out.destroy(err));
          body.pipe(out);
        },
        (err: Error) => out.destroy(err),
      );
      return out;
    },
    close() {
      client.destroy();
      return Promise.resolve();
    },
  };
}
