import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { UsageError } from '../shared/cli/errors.ts';

/**
 * approve --scan-command: run CMD for one image, with the image's internal
 * reference by digest as its last argument and in AIRLOCK_IMAGE. Exit 0
 * accepts the image; any other exit (or a signal) rejects it. Its output
 * (stdout and stderr, as they come) is hashed whole and kept up to
 * MAX_KEPT_OUTPUT bytes. The key's password is not passed on.
 */
export const MAX_KEPT_OUTPUT = 1024 * 1024;

export interface ScanResult {
  accepted: boolean;
  /** Exit code, or the signal that ended it. */
  exit: number | string;
  /** sha256:<hex> of the whole output. */
  outputDigest: string;
  outputBytes: number;
  /** The first MAX_KEPT_OUTPUT bytes. */
  output: Buffer;
  truncated: boolean;
}

export function runScan(command: string, image: string, env: NodeJS.ProcessEnv = process.env): Promise<ScanResult> {
  const { AIRLOCK_PASSWORD: _a, COSIGN_PASSWORD: _c, ...rest } = env;
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', `${command} "$AIRLOCK_IMAGE"`], { env: { ...rest, AIRLOCK_IMAGE: image }, stdio: ['ignore', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let total = 0;
    const take = (chunk: Buffer) => {
      hash.update(chunk);
      total += chunk.length;
      if (keptBytes < MAX_KEPT_OUTPUT) {
        const part = chunk.subarray(0, MAX_KEPT_OUTPUT - keptBytes);
        kept.push(part);
        keptBytes += part.length;
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (err) => reject(new UsageError(`--scan-command: cannot run /bin/sh: ${err.message}`)));
    child.on('close', (code, signal) => {
      const exit = code ?? signal ?? 'unknown';
      resolve({ accepted: code === 0, exit, outputDigest: `sha256:${hash.digest('hex')}`, outputBytes: total, output: Buffer.concat(kept), truncated: total > keptBytes });
    });
  });
}
