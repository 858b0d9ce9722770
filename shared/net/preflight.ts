import { RemoteError, UsageError } from '../cli/errors.ts';
import { RegistryClient, type RegistryOptions } from '../registry/client.ts';
import { HttpTransport, redactUserinfo } from '../registry/transport.ts';
import { connectSsh, type SshAuth, type SshTarget } from '../transfer/ssh.ts';
import { parseSftpUrl } from '../transfer/sftp.ts';
import { credentialsFromFlags } from '../registry/credentials.ts';
import { isSshUrl, type GitRemoteOptions } from '../git/remote.ts';
import { parseSshUrl } from '../git/ssh.ts';
import { describeNetworkFailure, networkCause } from './errors.ts';
import { networkTimeoutMs, stallWords } from './timeout.ts';

/**
 * One check per endpoint before the work starts: each registry, git server,
 * chart repository, S3 store or SFTP host answers once, without retries, so
 * that an unreachable host, a TLS failure or refused credentials stop the
 * command with ONE error (exit 4) naming the endpoint and the cause in words,
 * instead of a page of retries first.
 *
 * - registry: GET /v2/ with the credentials (a Bearer challenge is answered
 *   with a token, as for the work itself);
 * - git over HTTPS: GET info/refs of the repository with the credentials;
 * - http: the server answers at all (chart repositories, manifest URLs);
 * - SSH (git over ssh://, SFTP): the connection, host key and key login;
 * - S3: a caller-given check (HeadBucket), the SDK's own errors in words.
 */
export type PreflightEndpoint =
  | { kind: 'registry'; label: string; registry: string; options: Pick<RegistryOptions, 'mirrors' | 'plainHttp' | 'credentials'> }
  | { kind: 'git'; label: string; url: string; username?: string; password?: string }
  | { kind: 'http'; label: string; url: string }
  | { kind: 'ssh'; label: string; target: SshTarget; auth: SshAuth }
  | { kind: 'check'; label: string; key: string; check: () => Promise<void> };

export interface PreflightOptions {
  /** --ca-file */
  caFile?: string;
  /** How long one check may take (ms). Default 20 s. */
  timeoutMs?: number;
}

const NO_RETRY = { attempts: 1, baseDelayMs: 0, maxDelayMs: 0, maxRetryAfterMs: 0 };

interface Failure {
  endpoint: PreflightEndpoint;
  /** What went wrong, in words. */
  cause: string;
  hint?: string;
}

/** Check every endpoint (each once, in parallel); throw one RemoteError listing what failed. */
export async function preflight(endpoints: readonly PreflightEndpoint[], options: PreflightOptions = {}): Promise<void> {
  const unique = new Map<string, PreflightEndpoint>();
  for (const e of endpoints) if (!unique.has(keyOf(e))) unique.set(keyOf(e), e);
  if (unique.size === 0) return;
  const timeoutMs = options.timeoutMs ?? networkTimeoutMs();
  const transport = new HttpTransport({ caFile: options.caFile, retry: NO_RETRY, timeoutMs });
  try {
    const results = await Promise.all(
      [...unique.values()].map(async (endpoint): Promise<Failure | undefined> => {
        try {
          await withTimeout(probe(endpoint, transport), timeoutMs, endpoint.label);
          return undefined;
        } catch (err) {
          if (err instanceof UsageError) throw err;
          return { endpoint, ...explain(err) };
        }
      }),
    );
    const failures = results.filter((f): f is Failure => f !== undefined);
    if (failures.length > 0) throw preflightError(failures);
  } finally {
    await transport.close();
  }
}

function keyOf(e: PreflightEndpoint): string {
  switch (e.kind) {
    case 'registry':
      return `registry ${e.options.mirrors?.[e.registry] ?? e.registry} ${e.options.plainHttp === true}`;
    case 'git':
      return `git ${e.url} ${e.username ?? ''}`;
    case 'http':
      return `http ${new URL(e.url).origin}`;
    case 'ssh':
      return `ssh ${e.target.user}@${e.target.host}:${e.target.port}`;
    case 'check':
      return `check ${e.key}`;
  }
}

async function probe(e: PreflightEndpoint, transport: HttpTransport): Promise<void> {
  switch (e.kind) {
    case 'registry':
      await new RegistryClient(e.registry, transport, { ...e.options, retry: NO_RETRY }).ping();
      return;
    case 'git':
      return probeGit(e, transport);
    case 'http': {
      const url = new URL(e.url);
      const res = await transport.send({ method: 'HEAD', url, what: `HEAD ${url.origin}` });
      await res.body.dump();
      return;
    }
    case 'ssh':
      (await connectSsh(e.target, e.auth)).end();
      return;
    case 'check':
      return e.check();
  }
}

/** The git smart-HTTP advertisement: reachable, TLS, credentials, and the repository is there. */
async function probeGit(e: Extract<PreflightEndpoint, { kind: 'git' }>, transport: HttpTransport): Promise<void> {
  const url = new URL(e.url);
  url.username = '';
  url.password = '';
  const refs = new URL(`${url.pathname.replace(/\/+$/, '')}/info/refs?service=git-upload-pack`, url);
  const headers: Record<string, string> = {};
  if (e.username !== undefined && e.password !== undefined) headers.authorization = `Basic ${Buffer.from(`${e.username}:${e.password}`).toString('base64')}`;
  const res = await transport.send({ method: 'GET', url: refs, headers, what: `git GET ${url.origin}${url.pathname}` });
  await res.body.dump();
  if (res.status === 401 || res.status === 403) {
    throw new RemoteError(headers.authorization ? `credentials refused (HTTP ${res.status})` : `credentials needed (HTTP ${res.status})`, {
      hint: 'check --git-username / --git-password-env',
    });
  }
  if (res.status === 404) throw new RemoteError('repository not found (HTTP 404)', { hint: 'check the repository URL' });
  if (res.status >= 500) throw new RemoteError(`server error (HTTP ${res.status})`);
}

/** A failure in words: the network cause, else "credentials refused" for an auth answer, else the error's own message. */
function explain(err: unknown): { cause: string; hint?: string } {
  const cause = networkCause(err);
  if (cause) {
    return cause.tls ? { cause: cause.words } : { cause: cause.words, hint: 'check that the host is up and reachable from here (address, port, firewall, proxy)' };
  }
  const hint = err instanceof RemoteError ? err.hint : undefined;
  const message = err instanceof Error ? err.message : String(err);
  const status = /HTTP (\d{3})/.exec(message)?.[1];
  if (status === '401') return { cause: 'credentials refused (HTTP 401)', ...(hint ? { hint } : {}) };
  if (status === '403') return { cause: 'access denied (HTTP 403)', ...(hint ? { hint } : {}) };
  return { cause: redactUserinfo(describeNetworkFailure(err)), ...(hint ? { hint } : {}) };
}

function preflightError(failures: Failure[]): RemoteError {
  if (failures.length === 1) {
    const f = failures[0]!;
    return new RemoteError(`${f.endpoint.label}: ${f.cause}`, f.hint ? { hint: f.hint } : undefined);
  }
  const hints = [...new Set(failures.map((f) => f.hint).filter((h): h is string => h !== undefined))];
  return new RemoteError(`${failures.length} endpoints failed their check; nothing was done:\n${failures.map((f) => `  ${f.endpoint.label}: ${f.cause}`).join('\n')}`, hints.length > 0 ? { hint: hints.join('; ') } : undefined);
}

async function withTimeout<T>(work: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RemoteError(stallWords(ms), { hint: `check that ${label} is reachable from here` })), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The endpoint of a git remote: its SSH host, or its HTTPS repository with the credentials of the flags. */
export function gitEndpoint(label: string, git: GitRemoteOptions): PreflightEndpoint {
  if (isSshUrl(git.url)) {
    const loc = parseSshUrl(git.url);
    const auth: SshAuth = { keyFile: git.sshKey, knownHosts: git.knownHosts, passphrase: git.sshPassphrase ?? process.env.AIRLOCK_SSH_PASSPHRASE };
    return { kind: 'ssh', label: `${label} ssh://${loc.user}@${loc.host}:${loc.port}`, target: loc, auth };
  }
  const credentials = credentialsFromFlags({ username: git.username, passwordEnv: git.passwordEnv, flagNames: { username: '--git-username', passwordEnv: '--git-password-env' } });
  const shown = new URL(git.url);
  shown.username = '';
  shown.password = '';
  return { kind: 'git', label: `${label} ${shown.href}`, url: git.url, ...(credentials ? { username: credentials.username, password: credentials.password } : {}) };
}

/** The endpoint of an upload or download: the SFTP host (with the key), or the S3 store (reachable, TLS). */
export function transferEndpoint(remote: string, options: { s3Endpoint?: string; ssh?: SshAuth }): PreflightEndpoint | undefined {
  if (remote.startsWith('sftp://')) {
    const loc = parseSftpUrl(remote);
    return { kind: 'ssh', label: `SFTP ${loc.user}@${loc.host}:${loc.port}`, target: loc, auth: options.ssh ?? {} };
  }
  if (remote.startsWith('s3://')) {
    const endpoint = options.s3Endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    // AWS itself: the SDK's first call says what is wrong.
    if (endpoint === undefined || !URL.canParse(endpoint)) return undefined;
    return { kind: 'http', label: `S3 endpoint ${redactUserinfo(endpoint)}`, url: endpoint };
  }
  return undefined;
}
