import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3Service } from '../../test/services/s3.ts';

/** sha256 of a file, streamed. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The invariant for a file under its final name: absent, or byte-identical to what it should be. */
export async function absentOrComplete(file: string, sha256: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  const got = await fileSha256(file);
  return got === sha256 ? [] : [`${file} exists under its final name but is not the complete file (sha256 ${got.slice(0, 12)}, expected ${sha256.slice(0, 12)})`];
}

export async function completeFile(file: string, sha256: string): Promise<string[]> {
  return existsSync(file) ? absentOrComplete(file, sha256) : [`${file} is missing after the rerun`];
}

/** The same invariant for an S3 object, read with the AWS SDK (an outside client). */
export async function s3Object(s3: S3Service, key: string): Promise<string | undefined> {
  const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  try {
    const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    const hash = createHash('sha256');
    for await (const chunk of got.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
    return hash.digest('hex');
  } catch (e) {
    if ((e as { name?: string }).name === 'NoSuchKey') return undefined;
    throw e;
  } finally {
    client.destroy();
  }
}
