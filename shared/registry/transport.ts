import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { pipeline, type Readable } from 'node:stream';
import { EnvHttpProxyAgent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { RemoteError, UsageError } from '../cli/errors.ts';
import type { HostTls } from './client-certs.ts';
import { describeNetworkFailure, networkCause } from '../net/errors.ts';
import { networkTimeoutMs, ProgressWatch, StallError } from '../net/timeout.ts';
import {
  DEFAULT_RETRY,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  retryDelayMs,
  sleep,
  type RetryPolicy,
} from './retry.ts';

/**
 * HTTP(S) for every remote airlock talks to: one keep-alive connection pool,
 * the trusted CAs, the proxy the environment names (HTTPS_PROXY, HTTP_PROXY,
 * NO_PROXY, also lower-case, as curl and docker read them), retries with
 * backoff. Knows nothing about registries.
 */
export interface TransportOptions {
  /** PEM file of extra trusted CAs (the enclave's CA), added to the system ones. */
  caFile?: string;
  retry?: RetryPolicy;
  /**
   * Drop a connection that makes no progress this long (ms): a connect or TLS
   * handshake, response headers or body, a request body the server stops
   * reading. Default: --timeout (net/timeout.ts).
   */
  timeoutMs?: number;
  userAgent?: string;
  /** Told about each retry: the endpoint (scheme://host:port) and the reason in words, for a retry summary. */
  onRetry?: (info: { what: string; endpoint: string; attempt: number; delayMs: number; reason: string }) => void;
  /** Told about `Warning: 299` headers, which registries use to talk to users. */
  onWarning?: (info: { what: string; warning: string }) => void;
  /** Proxy settings; default the environment's (tests). */
  proxy?: ProxySettings;
}

export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/** The proxy variables as curl reads them: lower-case first, then upper-case. */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (name: string) => (env[name.toLowerCase()] || env[name.toUpperCase()] || undefined);
  return { httpProxy: pick('http_proxy'), httpsProxy: pick('https_proxy'), noProxy: pick('no_proxy') };
}

/** A URL or message with any user:password@ of a proxy URL left out. */
export function redactUserinfo(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s:]+(?::[^/@\s]*)?@/gi, '$1***@');
}

export type HttpHeaders = Record<string, string>;

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: HttpHeaders;
  /** A Buffer can be sent again on retry; a stream is sent once. */
  body?: Buffer | Readable;
  /** For messages: "GET manifest harness/ng-manager:1.0". */
  what: string;
  /** Extra TLS for this host (client-certs.ts): its own CAs, a client certificate. */
  tls?: HostTls;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  url: URL;
}

/** Places where Debian, RHEL, Alpine and SUSE keep the system CA bundle. */
const SYSTEM_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/cert.pem',
  '/etc/ssl/ca-bundle.pem',
];

const trustedContexts = new Map<string, SecureContext>();

/**
 * The TLS context trusting trustedCAs(caFile), one per distinct set of CAs for the
 * whole process: pack and load build several transports (preflights, sources, the
 * copy), and each context from a few hundred CA certificates costs 0.1-0.3 s of CPU
 * on a busy machine (measured with the bench's --cpu-prof).
 */
function trustedContext(caFile?: string): SecureContext {
  const cas = trustedCAs(caFile);
  const key = cas.join('\n');
  let context = trustedContexts.get(key);
  if (!context) trustedContexts.set(key, (context = createSecureContext({ ca: cas })));
  return context;
}

/** Node's bundled roots, the system bundle, NODE_EXTRA_CA_CERTS, and --ca-file. */
export function trustedCAs(caFile?: string): string[] {
  const cas = [...rootCertificates];
  for (const path of SYSTEM_CA_BUNDLES) {
    const pem = readIfPresent(path);
    if (pem !== undefined) {
      cas.push(pem);
      break;
    }
  }
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    const pem = readIfPresent(extra);
    if (pem !== undefined) cas.push(pem);
  }
  if (caFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --ca-file ${caFile}: ${(err as Error).message}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new UsageError(`--ca-file ${caFile} holds no PEM certificate`);
    }
    cas.push(pem);
  }
  return cas;
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

export class HttpTransport {
  private readonly agent: EnvHttpProxyAgent;
  /** One pool per host that has its own TLS (a client certificate, certs.d CAs). */
  private readonly tlsAgents = new Map<HostTls, EnvHttpProxyAgent>();
  private readonly rawProxy: ProxySettings;
  /** The proxies in use, for messages (credentials left out). */
  readonly proxy: ProxySettings;
  private readonly retry: RetryPolicy;
  private readonly userAgent: string;

  constructor(private readonly options: TransportOptions = {}) {
    const timeout = this.timeoutMs;
    // One TLS context for every connection: building one from a few hundred
    // CA certificates costs tens of milliseconds of CPU each time. The same
    // context verifies the origin inside a proxy tunnel, and an https proxy.
    const proxy = options.proxy ?? proxyFromEnv();
    for (const [name, value] of [['HTTPS_PROXY', proxy.httpsProxy], ['HTTP_PROXY', proxy.httpProxy]] as const) {
      if (value !== undefined && !URL.canParse(value)) throw new UsageError(`${name} is not a URL: ${redactUserinfo(value)}`, { hint: `set ${name} to http://HOST:PORT of the proxy` });
    }
    this.proxy = {
      httpProxy: proxy.httpProxy && redactUserinfo(proxy.httpProxy),
      httpsProxy: proxy.httpsProxy && redactUserinfo(proxy.httpsProxy),
      noProxy: proxy.noProxy,
    };
    this.rawProxy = proxy;
    this.agent = this.makeAgent(trustedContext(options.caFile), timeout);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.userAgent = options.userAgent ?? 'airlock/0.1';
  }

  /**
   * Send a request, retrying connection errors, 429 and 5xx when the body can be
   * sent again. Returns the final response whatever its status; throws a
   * RemoteError when the server cannot be reached.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const replayable = req.body === undefined || Buffer.isBuffer(req.body);
    const attempts = replayable ? this.retry.attempts : 1;
    for (let attempt = 1; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.once(req);
      } catch (err) {
        if (attempt < attempts && isRetryableNetworkError(err)) {
          await this.backoff(req, attempt, undefined, describeNetworkFailure(err));
          continue;
        }
        throw networkError(req, err, this.proxyFor(req.url));
      }
      if (attempt < attempts && isRetryableStatus(res.status)) {
        const retryAfter = parseRetryAfter(header(res, 'retry-after'));
        // Waiting minutes is no retry: the caller explains the status (a rate limit, a maintenance window).
        if (retryAfter !== undefined && retryAfter > this.retry.maxRetryAfterMs) return res;
        // A 429 whose rate-limit window is spent (RateLimit-Remaining: 0, as Docker Hub
        // answers) and that names no near time to come back will not pass in six tries.
        if (res.status === 429 && retryAfter === undefined && /^\s*0\s*(;|$)/.test(header(res, 'ratelimit-remaining') ?? '')) return res;
        await res.body.dump().catch(() => undefined);
        await this.backoff(req, attempt, retryAfter, `HTTP ${res.status}`);
        continue;
      }
      const warning = header(res, 'warning');
      if (warning && this.options.onWarning) this.options.onWarning({ what: req.what, warning });
      return res;
    }
  }

  private makeAgent(origin: SecureContext, timeout: number, proxyContext: SecureContext = origin): EnvHttpProxyAgent {
    const proxy = this.rawProxy;
    return new EnvHttpProxyAgent({
      // Empty strings, not undefined: undici would read the environment itself.
      httpProxy: proxy.httpProxy ?? '',
      httpsProxy: proxy.httpsProxy ?? '',
      noProxy: proxy.noProxy ?? '',
      connect: { secureContext: origin, timeout },
      requestTls: { secureContext: origin },
      proxyTls: { secureContext: proxyContext },
      // Plain-HTTP origins go to the proxy as absolute-URI requests (as curl
      // and docker send them): proxies often allow CONNECT to port 443 only.
      proxyTunnel: false,
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  }

  /** The pool for a host with its own TLS: its CAs added, its client certificate offered (never to the proxy). */
  private agentFor(tls: HostTls): EnvHttpProxyAgent {
    let agent = this.tlsAgents.get(tls);
    if (!agent) {
      const timeout = this.timeoutMs;
      const cas = [...trustedCAs(this.options.caFile), ...tls.ca];
      const origin = createSecureContext({ ca: cas, ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}) });
      this.tlsAgents.set(tls, (agent = this.makeAgent(origin, timeout, trustedContext(this.options.caFile))));
    }
    return agent;
  }

  /** The proxy a request to this URL goes through (credentials left out), if any. */
  proxyFor(url: URL): string | undefined {
    return proxyForUrl(url, this.proxy);
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? networkTimeoutMs();
  }

  private async once(req: HttpRequest): Promise<HttpResponse> {
    const headers: HttpHeaders = { 'user-agent': this.userAgent, ...req.headers };
    const upload = req.body !== undefined && !Buffer.isBuffer(req.body) ? this.watchedBody(req) : undefined;
    try {
      const res = await request(req.url, {
        dispatcher: req.tls ? this.agentFor(req.tls) : this.agent,
        method: req.method,
        headers,
        body: upload?.body ?? req.body,
        signal: upload?.signal,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
    } finally {
      upload?.watch.stop();
    }
  }

  /**
   * A streamed request body behind a progress watch: when the server stops
   * taking bytes for the timeout, the request is aborted with a StallError
   * (undici's header and body timeouts do not cover a body that cannot be written).
   */
  private watchedBody(req: HttpRequest): { body: Readable; signal: AbortSignal; watch: ProgressWatch } {
    const aborter = new AbortController();
    const watch = new ProgressWatch(this.timeoutMs, () => aborter.abort(new StallError(`${req.what} to ${req.url.origin}`, this.timeoutMs)));
    const body = pipeline(req.body as Readable, watch, () => undefined);
    return { body, signal: aborter.signal, watch };
  }

  private async backoff(req: HttpRequest, attempt: number, retryAfterMs: number | undefined, reason: string) {
    const delayMs = retryDelayMs(attempt, this.retry, retryAfterMs);
    this.options.onRetry?.({ what: req.what, endpoint: req.url.origin, attempt, delayMs, reason });
    await sleep(delayMs);
  }

  async close(): Promise<void> {
    await Promise.all([this.agent, ...this.tlsAgents.values()].map((a) => a.close()));
  }
}

/**
 * The proxy URL (as given, credentials included) for a request to `url`:
 * HTTPS_PROXY for https (else HTTP_PROXY, as undici does), HTTP_PROXY for
 * http, none when NO_PROXY lists the host. For clients that take an agent (S3).
 */
export function proxyForUrl(url: URL, settings: ProxySettings = proxyFromEnv()): string | undefined {
  const p = url.protocol === 'https:' ? (settings.httpsProxy ?? settings.httpProxy) : settings.httpProxy;
  if (!p || bypassesProxy(url, settings.noProxy)) return undefined;
  return p;
}

/** NO_PROXY as undici applies it: "*", host names (and their subdomains, with or without a leading dot), optional :port. */
function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.toLowerCase();
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  for (const raw of noProxy.split(/[,\s]/)) {
    if (!raw) continue;
    if (raw === '*') return true;
    const m = /^(.*?)(?::(\d+))?$/.exec(raw.replace(/^\*?\./, ''))!;
    const entry = m[1]!.toLowerCase();
    if (m[2] && Number(m[2]) !== port) continue;
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function networkError(req: HttpRequest, err: unknown, proxy?: string): RemoteError {
  if (err instanceof RemoteError) return err;
  const detail = redactUserinfo(describeNetworkFailure(err));
  const tls = networkCause(err)?.tls ?? /certificate|self[- ]signed|CERT_|SSL|TLS|wrong version number/i.test(detail);
  const viaProxy = proxy ? ` through the proxy ${proxy}` : '';
  // The server ended the handshake over the client's certificate (Go's RequireAndVerifyClientCert, HAProxy, Envoy): TLS alerts 116, 42, 43, 40.
  if (/certificate required|alert number (116|42|43)|alert (bad|unsupported|unknown) certificate|alert handshake failure/i.test(detail)) {
    return new RemoteError(`${req.what}: ${req.url.origin} refused the TLS handshake over the client certificate (mutual TLS): ${detail}`, {
      hint: mutualTlsHint(req.url.host, req.tls),
      cause: proxy ? new Error(detail) : err,
    });
  }
  const hint = tls
    ? `TLS to ${req.url.host} failed: pass the enclave's CA with --ca-file, or --plain-http if the server speaks plain HTTP`
    : proxy
      ? `check the proxy (HTTPS_PROXY / HTTP_PROXY), or list ${req.url.hostname} in NO_PROXY if it is reached directly`
      : `check that ${req.url.host} is reachable from this host`;
  // Behind a proxy the cause is replaced by its redacted text: undici's errors may carry the proxy URL with its credentials.
  const cause = proxy ? new Error(detail) : err;
  return new RemoteError(`${req.what}: cannot reach ${req.url.origin}${viaProxy}: ${detail}`, { hint, cause });
}

/** What to do when a server wants a client certificate: the one offered was refused, or none was offered. */
export function mutualTlsHint(host: string, offered: HostTls | undefined): string {
  if (offered?.cert !== undefined) return `the client certificate from ${offered.source} was refused: check that the server trusts its CA and that it is not expired`;
  return `the server wants a client certificate: pass --client-cert FILE and --client-key FILE, or put client.cert and client.key in /etc/docker/certs.d/${host}/ (the directory AIRLOCK_CERTS_D names, if set)`;
}
