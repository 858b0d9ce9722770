import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { RemoteError, UsageError } from '../cli/errors.ts';
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
 * the trusted CAs, retries with backoff. Knows nothing about registries.
 */
export interface TransportOptions {
  /** PEM file of extra trusted CAs (the enclave's CA), added to the system ones. */
  caFile?: string;
  retry?: RetryPolicy;
  /** Give up on a response whose headers or body stall this long (ms). */
  timeoutMs?: number;
  userAgent?: string;
  /** Told about each retry, for the log. */
  onRetry?: (info: { what: string; attempt: number; delayMs: number; reason: string }) => void;
  /** Told about `Warning: 299` headers, which registries use to talk to users. */
  onWarning?: (info: { what: string; warning: string }) => void;
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
  private readonly agent: Agent;
  private readonly retry: RetryPolicy;
  private readonly userAgent: string;

  constructor(private readonly options: TransportOptions = {}) {
    const timeout = options.timeoutMs ?? 120_000;
    this.agent = new Agent({
      // One TLS context for every connection: building one from a few hundred
      // CA certificates costs tens of milliseconds of CPU each time.
      connect: { secureContext: createSecureContext({ ca: trustedCAs(options.caFile) }) },
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
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
          await this.backoff(req, attempt, undefined, describeNetworkError(err));
          continue;
        }
        throw networkError(req, err);
      }
      if (attempt < attempts && isRetryableStatus(res.status)) {
        const retryAfter = parseRetryAfter(header(res, 'retry-after'));
        await res.body.dump().catch(() => undefined);
        if (retryAfter !== undefined && retryAfter > this.retry.maxRetryAfterMs) {
          throw new RemoteError(
            `${req.what}: ${req.url.host} answered HTTP ${res.status} and asks to retry after ${Math.round(retryAfter / 1000)} s`,
            { hint: 'the server is rate limiting or overloaded; try again later' },
          );
        }
        await this.backoff(req, attempt, retryAfter, `HTTP ${res.status}`);
        continue;
      }
      const warning = header(res, 'warning');
      if (warning && this.options.onWarning) this.options.onWarning({ what: req.what, warning });
      return res;
    }
  }

  private async once(req: HttpRequest): Promise<HttpResponse> {
    const headers: HttpHeaders = { 'user-agent': this.userAgent, ...req.headers };
    const res = await request(req.url, {
      dispatcher: this.agent,
      method: req.method,
      headers,
      body: req.body,
    });
    return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
  }

  private async backoff(req: HttpRequest, attempt: number, retryAfterMs: number | undefined, reason: string) {
    const delayMs = retryDelayMs(attempt, this.retry, retryAfterMs);
    this.options.onRetry?.({ what: req.what, attempt, delayMs, reason });
    await sleep(delayMs);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function describeNetworkError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    parts.push(code ? `${e.message} (${code})` : e.message);
  }
  return parts.join(': ') || String(err);
}

function networkError(req: HttpRequest, err: unknown): RemoteError {
  if (err instanceof RemoteError) return err;
  const detail = describeNetworkError(err);
  const tls = /certificate|self[- ]signed|CERT_|SSL|TLS|wrong version number/i.test(detail);
  const hint = tls
    ? `TLS to ${req.url.host} failed: pass the enclave's CA with --ca-file, or --plain-http if the server speaks plain HTTP`
    : `check that ${req.url.host} is reachable from this host`;
  return new RemoteError(`${req.what}: cannot reach ${req.url.origin}: ${detail}`, { hint, cause: err });
}
