import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestCA } from './ca.ts';
import { freePort, waitForListener } from './ports.ts';

/**
 * A real nginx on 127.0.0.1 at a random port, in the foreground, with its
 * config, pid, temp dirs and logs in a fresh temp dir (the system's nginx
 * service is never touched). It serves `root` as static files, over HTTP or
 * HTTPS with a throwaway CA; `locations` adds server-level blocks (the git
 * server adds git-http-backend through fcgiwrap this way).
 */
export interface NginxOptions {
  /** Directory served at /. */
  root: string;
  tls?: boolean;
  /** Extra nginx config inside the server block. */
  locations?: string;
}

export interface NginxService {
  /** http(s)://127.0.0.1:PORT */
  url: string;
  host: string;
  port: number;
  /** With tls: PEM of the CA that signed the server certificate. */
  caFile?: string;
  /** The nginx error log so far. */
  errorLog(): Promise<string>;
  /** Access log lines so far: `METHOD URI STATUS`. */
  accessLog(): Promise<string[]>;
  stop(): Promise<void>;
}

export const NGINX_BIN = '/usr/sbin/nginx';

export async function startNginx(opts: NginxOptions): Promise<NginxService> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-nginx-'));
  for (const d of ['tmp', 'logs']) await fsp.mkdir(path.join(dir, d));
  let caFile: string | undefined;
  let tls: { cert: string; key: string } | undefined;
  if (opts.tls) {
    const ca = await createTestCA(path.join(dir, 'pki'));
    tls = await ca.issue('nginx', ['127.0.0.1', 'localhost']);
    caFile = ca.caCert;
  }
  const errorLog = path.join(dir, 'logs', 'error.log');
  const accessLog = path.join(dir, 'logs', 'access.log');
  let child: ChildProcess | undefined;
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const temp = (name: string) => `${name}_temp_path ${path.join(dir, 'tmp', name)};`;
    const conf = [
      // Workers run as the current user; as root they would switch to nobody, who cannot read the temp dirs.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      'daemon off;',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${errorLog} info;`,
      'events { worker_connections 256; }',
      'http {',
      '  log_format airlock \'$request_method $request_uri $status\';',
      `  access_log ${accessLog} airlock;`,
      '  default_type application/octet-stream;',
      `  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}`,
      '  server {',
      `    listen 127.0.0.1:${port}${tls ? ' ssl' : ''};`,
      ...(tls ? [`    ssl_certificate ${tls.cert};`, `    ssl_certificate_key ${tls.key};`] : []),
      `    root ${opts.root};`,
      opts.locations ?? '',
      '  }',
      '}',
      '',
    ].join('\n');
    const confFile = path.join(dir, 'nginx.conf');
    await fsp.writeFile(confFile, conf);
    child = spawn(NGINX_BIN, ['-p', dir, '-c', confFile, '-e', errorLog], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const ready = await waitForListener(port, child);
    if (ready) {
      const host = `127.0.0.1:${port}`;
      const proc = child;
      return {
        url: `${tls ? 'https' : 'http'}://${host}`,
        host,
        port,
        caFile,
        errorLog: () => fsp.readFile(errorLog, 'utf8').catch(() => ''),
        accessLog: async () => (await fsp.readFile(accessLog, 'utf8').catch(() => '')).split('\n').filter(Boolean),
        stop: async () => {
          if (proc.exitCode === null) {
            const exited = new Promise((r) => proc.once('exit', r));
            proc.kill('SIGTERM');
            await exited;
          }
          await fsp.rm(dir, { recursive: true, force: true });
        },
      };
    }
    const log = stderr + (await fsp.readFile(errorLog, 'utf8').catch(() => ''));
    if (attempt < 3 && /Address already in use/.test(log)) continue;
    await fsp.rm(dir, { recursive: true, force: true });
    throw new Error(`nginx did not start:\n${log.slice(-2000)}`);
  }
}
