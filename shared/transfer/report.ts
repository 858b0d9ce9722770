import { formatBytes, formatRate, Progress } from '../cli/progress.ts';
import { Logger } from '../cli/log.ts';
import { printResult } from '../cli/output.ts';
import { DEFAULT_RETRY, retryDelayMs, sleep } from '../registry/retry.ts';
import { BrokenTransferError } from './broken.ts';
import type { SshAuth } from './ssh.ts';
import type { TransferProgress } from './sftp.ts';

/**
 * Run one upload or download with progress (rate and ETA on a TTY, JSON lines
 * with --json) and print what was transferred, how fast.
 */
export async function runTransfer(
  direction: 'upload' | 'download',
  remote: string,
  json: boolean,
  transfer: (progress: TransferProgress) => Promise<string[]>,
  network: { caFile?: string; s3Endpoint?: string; ssh?: SshAuth } = {},
): Promise<void> {
  // The store or host answers once before any byte moves: one clear error if it cannot.
  // (Imported here: the preflight reaches the registry, git and SSH clients, which the loader loads only when a command runs.)
  const { preflight, transferEndpoint } = await import('../net/preflight.ts');
  const endpoint = transferEndpoint(remote, network);
  if (endpoint) await preflight([endpoint], { caFile: network.caFile });
  const progress = new Progress({ json, summaryLine: false });
  const logger = new Logger({ json });
  logger.attachStatusLine(progress);
  progress.phase(direction);
  let bytes = 0;
  const started = performance.now();
  const files = await withResumes((message) => logger.warn(message), async (attempt) => {
    // A resumed attempt counts again from its offset: the total is told once, the bytes anew.
    bytes = 0;
    return transfer({
      total: (n) => attempt === 1 && progress.addTotal(n),
      advance: (n) => {
        bytes += n;
        if (attempt === 1) progress.advance(n);
      },
    });
  }).finally(() => progress.done());
  const seconds = (performance.now() - started) / 1000;
  const done = direction === 'upload' ? 'uploaded' : 'downloaded';
  printResult(
    direction,
    { remote, files, bytes, seconds: Number(seconds.toFixed(3)) },
    json,
    () => `${done} ${formatBytes(bytes)} ${direction === 'upload' ? 'to' : 'from'} ${remote} in ${seconds.toFixed(1)} s (${formatRate(bytes / Math.max(seconds, 1e-6))}):\n${files.map((f) => `  ${f}`).join('\n')}`,
  );
}

/** Run a transfer, resuming it (a new attempt from where it stopped) when it broke off, within DEFAULT_RETRY's bounds. */
async function withResumes<T>(warn: (message: string) => void, run: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run(attempt);
    } catch (err) {
      if (!(err instanceof BrokenTransferError) || attempt >= DEFAULT_RETRY.attempts) throw err;
      warn(`${err.message}; resuming (attempt ${attempt + 1} of ${DEFAULT_RETRY.attempts})`);
      await sleep(retryDelayMs(attempt, DEFAULT_RETRY));
    }
  }
}
