import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, stopProcess, waitForListener } from './ports.ts';

/**
 * A real forward proxy (Debian's tinyproxy) on 127.0.0.1 at a random port,
 * run in the foreground with its config and log in a temp dir. CONNECT is
 * allowed to every port (no ConnectPort lines), so https origins on test
 * ports tunnel through it; plain-http requests arrive as absolute URIs.
 */
export interface ForwardProxy {
  port: number;
  /** http://127.0.0.1:PORT (with user:password@ when basicAuth was given). */
  url: string;
  /** The proxied requests tinyproxy logged, e.g. `GET http://127.0.0.1:5000/v2/ HTTP/1.1` or `CONNECT 127.0.0.1:5443 HTTP/1.1`. */
  requests(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startTinyproxy(opts: { basicAuth?: { user: string; password: string } } = {}): Promise<ForwardProxy> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-tinyproxy-'));
  await fs.chmod(dir, 0o777);
  const port = await freePort();
  const logFile = path.join(dir, 'tinyproxy.log');
  const conf = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 60',
    `LogFile "${logFile}"`,
    'LogLevel Info',
    'MaxClients 50',
    'Allow 127.0.0.1',
    'DisableViaHeader Yes',
    ...(opts.basicAuth ? [`BasicAuth ${opts.basicAuth.user} ${opts.basicAuth.password}`] : []),
    '',
  ].join('\n');
  await fs.writeFile(path.join(dir, 'tinyproxy.conf'), conf);
  const child = spawn('tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  if (!(await waitForListener(port, child))) {
    child.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
    throw new Error(`tinyproxy did not start: ${stderr}`);
  }
  const auth = opts.basicAuth ? `${opts.basicAuth.user}:${opts.basicAuth.password}@` : '';
  return {
    port,
    url: `http://${auth}127.0.0.1:${port}`,
    requests: async () => {
      const text = await fs.readFile(logFile, 'utf8').catch(() => '');
      return [...text.matchAll(/Request \(file descriptor \d+\): (.*)$/gm)].map((m) => m[1]!.trim());
    },
    stop: async () => {
      await stopProcess(child);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
