import { formatBytes, formatRate, Progress } from '../cli/progress.ts';
import { printResult } from '../cli/output.ts';
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
  progress.phase(direction);
  let bytes = 0;
  const started = performance.now();
  const files = await transfer({
    total: (n) => progress.addTotal(n),
    advance: (n) => {
      bytes += n;
      progress.advance(n);
    },
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
