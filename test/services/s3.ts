import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, stopProcess, waitForListener } from './ports.ts';

/**
 * An S3 protocol server on 127.0.0.1 at a random port: s3rver (npm), run as
 * its own process with its own data directory and one bucket. It speaks the
 * S3 REST API (SigV4, multipart, ranged GETs); it lacks ListParts and
 * ListMultipartUploads, which airlock does not depend on. Paged listings work
 * (their tokens need OpenSSL's legacy provider, which the process is given).
 */
export interface S3Service {
  /** http://127.0.0.1:PORT, for --s3-endpoint */
  endpoint: string;
  bucket: string;
  /** Credentials s3rver accepts, as the standard AWS environment variables. */
  env: Record<string, string>;
  /** The multipart parts s3rver stored so far, in order, from its log. */
  storedParts(): Promise<{ part: number; uploadId: string }[]>;
  dataDir: string;
  stop(): Promise<void>;
}

const S3RVER = fileURLToPath(new URL('../../node_modules/s3rver/bin/s3rver.js', import.meta.url));

export async function startS3(bucket = 'airlock'): Promise<S3Service> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-s3-'));
  const dataDir = path.join(dir, 'data');
  await fsp.mkdir(dataDir);
  const log = path.join(dir, 's3rver.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const out = await fsp.open(log, 'a');
    // --openssl-legacy-provider: s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 leaves out by default.
    const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', S3RVER, '-d', dataDir, '-a', '127.0.0.1', '-p', String(port), '--configure-bucket', bucket], {
      stdio: ['ignore', out.fd, out.fd],
    });
    await out.close();
    if (await waitForListener(port, child)) {
      return {
        endpoint: `http://127.0.0.1:${port}`,
        bucket,
        env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' },
        dataDir,
        storedParts: async () =>
          [...(await fsp.readFile(log, 'utf8')).matchAll(/Stored part (\d+) of (\w+)/g)].map((m) => ({ part: Number(m[1]), uploadId: m[2]! })),
        stop: async () => {
          await stopProcess(child);
          await fsp.rm(dir, { recursive: true, force: true });
        },
      };
    }
    const text = await fsp.readFile(log, 'utf8').catch(() => '');
    if (attempt < 3 && /EADDRINUSE/.test(text)) continue;
    await fsp.rm(dir, { recursive: true, force: true });
    throw new Error(`s3rver did not start:\n${text.slice(-2000)}`);
  }
}
