import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestCA, type TestCA } from './ca.ts';
import { freePort, stopProcess, waitForListener } from './ports.ts';

/**
 * A real nginx on 127.0.0.1 at a random port, in the foreground as one
 * process (`daemon off; master_process off;`) under the current user, with
 * its prefix, config, pid, temp dirs and logs in a fresh temp dir (the
 * system's nginx service is never touched). It serves `root` as static files
 * over HTTP, or HTTPS with a certificate from a test CA.
 *
 * The config comes from nginxConf(), which takes extra server-level blocks:
 * the git server (gitServer.ts) adds git-http-backend through fcgiwrap that
 * way, and so can any later service that needs nginx in front of a CGI.
 */
export interface NginxOptions {
  /** Directory served at /. */
  root: string;
  /** HTTPS: true makes a throwaway CA; a TestCA issues the server certificate from that CA. */
  tls?: boolean | TestCA;
  /** Extra nginx config inside the server block (location blocks). */
  locations?: string | string[];
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

export interface NginxConfig {
  /** The prefix dir: pid, temp dirs and (by default) logs live under it. */
  dir: string;
  port: number;
  root: string;
  tls?: { cert: string; key: string };
  errorLog: string;
  accessLog: string;
  /** Server-level blocks appended after `root`. */
  locations?: string | string[];
}

/** A path or value as an nginx quoted string; refuses what would need escaping (temp paths never do). */
function q(value: string): string {
  if (/["\\$;\n{}]/.test(value)) throw new Error(`nginx config: refusing to quote ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/** The whole nginx.conf for one server on 127.0.0.1:port. */
export function nginxConf(c: NginxConfig): string {
  const temp = (name: string) => `  ${name}_temp_path ${q(path.join(c.dir, 'tmp', name))};`;
  const extra = Array.isArray(c.locations) ? c.locations.join('\n') : (c.locations ?? '');
  return [
    // One process: nothing to switch user for, and one signal (or the exit hook's SIGKILL) ends it all.
    'daemon off;',
    'master_process off;',
    `pid ${q(path.join(c.dir, 'nginx.pid'))};`,
    `error_log ${q(c.errorLog)} info;`,
    'events { worker_connections 256; }',
    'http {',
    "  log_format airlock '$request_method $request_uri $status';",
    `  access_log ${q(c.accessLog)} airlock;`,
    '  default_type application/octet-stream;',
    '  sendfile on;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp),
    '  server {',
    `    listen 127.0.0.1:${c.port}${c.tls ? ' ssl' : ''};`,
    ...(c.tls ? [`    ssl_certificate ${q(c.tls.cert)};`, `    ssl_certificate_key ${q(c.tls.key)};`] : []),
    `    root ${q(c.root)};`,
    extra,
    '  }',
    '}',
    '',
  ].join('\n');
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

export async function startNginx(opts: NginxOptions): Promise<NginxService> {
  installExitHook();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-nginx-'));
  try {
    for (const d of ['tmp', 'logs']) await fsp.mkdir(path.join(dir, d));
    let caFile: string | undefined;
    let tls: { cert: string; key: string } | undefined;
    if (opts.tls) {
      const ca = opts.tls === true ? await createTestCA(path.join(dir, 'pki')) : opts.tls;
      tls = await ca.issue('nginx', ['127.0.0.1', 'localhost']);
      caFile = ca.caCert;
    }
    const errorLog = path.join(dir, 'logs', 'error.log');
    const accessLog = path.join(dir, 'logs', 'access.log');
    const confFile = path.join(dir, 'nginx.conf');
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      await fsp.writeFile(confFile, nginxConf({ dir, port, root: opts.root, tls, errorLog, accessLog, locations: opts.locations }));
      const child = spawn(NGINX_BIN, ['-p', dir, '-c', confFile, '-e', errorLog], { stdio: ['ignore', 'ignore', 'pipe'] });
      live.add(child);
      child.once('exit', () => live.delete(child));
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      if (await waitForListener(port, child)) {
        const host = `127.0.0.1:${port}`;
        let stopped = false;
        return {
          url: `${tls ? 'https' : 'http'}://${host}`,
          host,
          port,
          caFile,
          errorLog: () => fsp.readFile(errorLog, 'utf8').catch(() => ''),
          accessLog: async () => (await fsp.readFile(accessLog, 'utf8').catch(() => '')).split('\n').filter(Boolean),
          stop: async () => {
            if (stopped) return;
            stopped = true;
            await stopProcess(child);
            await fsp.rm(dir, { recursive: true, force: true });
          },
        };
      }
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      const log = stderr + (await fsp.readFile(errorLog, 'utf8').catch(() => ''));
      if (attempt < 3 && /Address already in use/.test(log)) continue;
      throw new Error(`nginx did not start:\n${log.slice(-2000)}`);
    }
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface StaticServerOptions {
  /** Directory served at /. */
  root: string;
  /** Serve HTTPS with a server certificate (127.0.0.1, localhost) issued by this CA; HTTP without. */
  tls?: TestCA;
}

/** nginx serving `root` as static files: what url: manifest sources download from in tests. */
export function startStaticServer(opts: StaticServerOptions): Promise<NginxService> {
  return startNginx({ root: opts.root, ...(opts.tls ? { tls: opts.tls } : {}) });
}

export interface MutualTlsFrontOptions {
  /** Directory nginx serves at / (nothing of it is used). */
  root: string;
  /** Issues the server certificate, and is the only CA whose client certificates nginx accepts. */
  ca: TestCA;
  /** The registry behind it, on 127.0.0.1 (plain HTTP). */
  upstreamPort: number;
}

/**
 * A registry behind mutual TLS: nginx with `ssl_verify_client on` (a request
 * without a client certificate of `ca` gets "400 No required SSL certificate
 * was sent", ngx_http_ssl_module) proxying /v2/ to the registry, streaming.
 */
export function startMutualTlsFront(opts: MutualTlsFrontOptions): Promise<NginxService> {
  return startNginx({
    root: opts.root,
    tls: opts.ca,
    locations: [
      `    ssl_client_certificate ${opts.ca.caCert};`,
      '    ssl_verify_client on;',
      '    client_max_body_size 0;',
      '    location /v2/ {',
      `      proxy_pass http://127.0.0.1:${opts.upstreamPort};`,
      '      proxy_set_header Host $http_host;',
      '      proxy_set_header X-Forwarded-Proto https;',
      '      proxy_request_buffering off;',
      '      proxy_buffering off;',
      '    }',
    ],
  });
}
