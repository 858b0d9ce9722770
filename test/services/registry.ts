import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestCA } from './ca.ts';
import { run } from './exec.ts';
import { httpRequest } from './http.ts';
import { freePort } from './ports.ts';
import { startTokenIssuer, type TokenIssuer, type TokenRequest, type TokenScope } from './tokenIssuer.ts';

export interface RegistryOptions {
  auth?: 'none' | 'basic' | 'token';
  tls?: boolean;
  /** storage.maintenance.readonly: every write answers 405. */
  readOnly?: boolean;
  /** Accounts for basic/token auth; default one user `airlock` with a random password. */
  users?: Record<string, string>;
  /** Token auth: what an anonymous token request gets (default 'none': a token with no access). */
  anonymous?: 'none' | 'pull' | 'deny';
  /** Token auth: token lifetime in seconds (default 300). */
  tokenTtlSeconds?: number;
  /** Token auth: custom grant policy (default: everything requested, for known users). */
  tokenGrant?: (user: string | undefined, scope: TokenScope) => string[];
  /** Token auth: OAuth2 refresh tokens (identity tokens) -> user, for the issuer's POST. */
  refreshTokens?: Record<string, string>;
}

export interface RegistryService {
  /** "127.0.0.1:PORT" */
  host: string;
  port: number;
  /** http(s)://127.0.0.1:PORT */
  url: string;
  /** With tls: PEM path of the test CA that signed the registry (and token issuer) certificate. */
  caFile?: string;
  /** With tls: a directory holding only `ca.crt`, for `skopeo --cert-dir` / `--src-cert-dir` / `--dest-cert-dir`. */
  certDir?: string;
  /** The first (default) account, for basic and token auth. */
  username?: string;
  password?: string;
  users: Record<string, string>;
  /** The registry's storage root (survives restart(), removed by stop()). */
  dataDir: string;
  /** Token auth: the issuer (realm, signing cert, mint()). */
  tokenIssuer?: TokenIssuer;
  /** Token auth: every request the issuer has answered (empty otherwise). */
  tokenRequests: TokenRequest[];
  /**
   * Access log lines so far (the readiness probe's own requests left out), one per HTTP
   * request, Apache combined format, written by the registry on stdout, e.g.
   * `127.0.0.1 - - [24/Nov/2026:13:38:08 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`.
   */
  accessLog(): Promise<string[]>;
  /** Request lines (`GET /v2/ HTTP/1.1`) from the access log, optionally filtered. */
  requests(match?: RegExp): Promise<string[]>;
  /** The registry's own log (JSON lines from logrus on stderr). */
  appLog(): Promise<string>;
  /** Stop and start again on the same port with the same data; optionally switch read-only mode. */
  restart(opts?: { readOnly?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

/** User-Agent of the readiness probe; its requests are left out of accessLog(). */
const PROBE_AGENT = 'airlock-test-readiness-probe';

const live = new Set<{ child: ChildProcess; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const entry of live) {
      try {
        entry.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
      fs.rmSync(entry.dir, { recursive: true, force: true });
    }
  });
}

const q = (s: string) => JSON.stringify(s); // JSON strings are valid YAML double-quoted scalars

function configYaml(c: {
  port: number;
  dataDir: string;
  readOnly: boolean;
  tls?: { cert: string; key: string };
  htpasswd?: string;
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
}): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: json',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(c.dataDir)}`,
    '  delete:',
    '    enabled: true',
    '  redirect:',
    '    disable: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    '    readonly:',
    `      enabled: ${c.readOnly}`,
    'http:',
    `  addr: ${q(`127.0.0.1:${c.port}`)}`,
    '  secret: "airlock-test-http-secret"',
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
  ];
  if (c.tls) lines.push('  tls:', `    certificate: ${q(c.tls.cert)}`, `    key: ${q(c.tls.key)}`);
  lines.push('health:', '  storagedriver:', '    enabled: false');
  if (c.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: "airlock-test-registry"', `    path: ${q(c.htpasswd)}`);
  if (c.token) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${q(c.token.realm)}`,
      `    service: ${q(c.token.service)}`,
      `    issuer: ${q(c.token.issuer)}`,
      `    rootcertbundle: ${q(c.token.rootcertbundle)}`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * Start a real distribution registry (`docker-registry serve`, Debian's distribution 2.8;
 * `AIRLOCK_TEST_REGISTRY_BIN` may name another binary, e.g. upstream's `registry`) on 127.0.0.1
 * at a random port, with its config, storage and logs in a fresh temp dir.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<RegistryService> {
  installExitHook();
  const auth = opts.auth ?? 'none';
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-registry-'));
  const dataDir = path.join(dir, 'data');
  await fsp.mkdir(dataDir);
  const entry: { child: ChildProcess; dir: string } = { child: undefined as unknown as ChildProcess, dir };
  let issuer: TokenIssuer | undefined;
  let readOnly = opts.readOnly ?? false;

  try {
    const users = opts.users ?? (auth === 'none' ? {} : { airlock: crypto.randomBytes(12).toString('base64url') });
    const [username, password] = Object.entries(users)[0] ?? [];

    let tls: { cert: string; key: string } | undefined;
    let caFile: string | undefined;
    let certDir: string | undefined;
    if (opts.tls) {
      const ca = await createTestCA(path.join(dir, 'pki'));
      tls = await ca.issue('registry', ['127.0.0.1', 'localhost']);
      caFile = ca.caCert;
      certDir = path.join(dir, 'certs.d');
      await fsp.mkdir(certDir);
      await fsp.copyFile(ca.caCert, path.join(certDir, 'ca.crt'));
    }

    let htpasswd: string | undefined;
    if (auth === 'basic') {
      htpasswd = path.join(dir, 'htpasswd');
      let text = '';
      for (const [u, p] of Object.entries(users)) {
        const { stdout } = await run('htpasswd', ['-Bbn', u, p]);
        text += stdout.trim() + '\n';
      }
      await fsp.writeFile(htpasswd, text, { mode: 0o600 });
    }

    let token: { realm: string; service: string; issuer: string; rootcertbundle: string } | undefined;
    if (auth === 'token') {
      const tokDir = path.join(dir, 'token');
      await fsp.mkdir(tokDir);
      const service = 'airlock-test-registry';
      const iss = 'airlock-test-issuer';
      issuer = await startTokenIssuer({
        dir: tokDir,
        service,
        issuer: iss,
        users,
        anonymous: opts.anonymous,
        ttlSeconds: opts.tokenTtlSeconds,
        grant: opts.tokenGrant,
        refreshTokens: opts.refreshTokens,
        tls,
      });
      token = { realm: issuer.realm, service, issuer: iss, rootcertbundle: issuer.certFile };
    }

    const configFile = path.join(dir, 'config.yml');
    const stdoutFile = path.join(dir, 'access.log');
    const stderrFile = path.join(dir, 'registry.log');
    const caPem = caFile ? await fsp.readFile(caFile) : undefined;
    let port = 0;

    const launch = async (): Promise<void> => {
      await fsp.writeFile(configFile, configYaml({ port, dataDir, readOnly, tls, htpasswd, token }));
      const out = fs.openSync(stdoutFile, 'a');
      const err = fs.openSync(stderrFile, 'a');
      const child = spawn(process.env.AIRLOCK_TEST_REGISTRY_BIN ?? 'docker-registry', ['serve', configFile], { stdio: ['ignore', out, err], cwd: dir });
      fs.closeSync(out);
      fs.closeSync(err);
      entry.child = child;
      live.add(entry);
      let exited = false;
      child.once('exit', () => {
        exited = true;
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', () => resolve());
        child.once('error', reject);
      });
      const deadline = Date.now() + 15_000;
      while (true) {
        if (exited) {
          live.delete(entry);
          const log = await fsp.readFile(stderrFile, 'utf8').catch(() => '');
          throw Object.assign(new Error(`docker-registry exited during startup:\n${log.slice(-2000)}`), {
            addrInUse: /address already in use/.test(log),
          });
        }
        try {
          const r = await httpRequest(`${tls ? 'https' : 'http'}://127.0.0.1:${port}/v2/`, {
            ca: caPem,
            timeoutMs: 2000,
            headers: { 'user-agent': PROBE_AGENT },
          });
          if (r.status === 200 || r.status === 401) return;
        } catch {
          /* not up yet */
        }
        if (Date.now() > deadline) {
          await stopChild();
          throw new Error(`docker-registry did not answer /v2/ within 15 s (log: ${stderrFile})`);
        }
        await sleep(25);
      }
    };

    const stopChild = async (): Promise<void> => {
      const child = entry.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        live.delete(entry);
        return;
      }
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
      live.delete(entry);
    };

    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch();
        break;
      } catch (e) {
        if (attempt < 3 && (e as { addrInUse?: boolean }).addrInUse) continue;
        throw e;
      }
    }

    const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    let stopped = false;
    const accessLog = async (): Promise<string[]> =>
      (await fsp.readFile(stdoutFile, 'utf8').catch(() => '')).split('\n').filter((l) => l.length > 0 && !l.endsWith(`"${PROBE_AGENT}"`));

    return {
      host: `127.0.0.1:${port}`,
      port,
      url,
      caFile,
      certDir,
      username,
      password,
      users,
      dataDir,
      tokenIssuer: issuer,
      tokenRequests: issuer?.tokenRequests ?? [],
      accessLog,
      async requests(match?: RegExp) {
        const lines = (await accessLog()).map((l) => /"([A-Z]+ \S+ HTTP\/[\d.]+)"/.exec(l)?.[1]).filter((l): l is string => !!l);
        return match ? lines.filter((l) => match.test(l)) : lines;
      },
      appLog: () => fsp.readFile(stderrFile, 'utf8').catch(() => ''),
      async restart(o: { readOnly?: boolean } = {}) {
        if (stopped) throw new Error('registry already stopped');
        await stopChild();
        if (o.readOnly !== undefined) readOnly = o.readOnly;
        await launch();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopChild();
        await issuer?.stop();
        await fsp.rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    if (entry.child && entry.child.exitCode === null && entry.child.signalCode === null) entry.child.kill('SIGKILL');
    live.delete(entry);
    await issuer?.stop();
    await fsp.rm(dir, { recursive: true, force: true });
    throw e;
  }
}
