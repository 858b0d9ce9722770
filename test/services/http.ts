import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

export interface HttpResponse { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /** A Buffer/string is sent with Content-Length; a stream is piped (set Content-Length yourself or it is chunked). */
  body?: Buffer | string | Readable;
  /** PEM text of the CA to trust for https URLs. Only this CA is trusted (environment CA variables are ignored). */
  ca?: string | Buffer;
  /** Defaults to a fresh connection per request (no keep-alive), so tests never leave sockets open. */
  agent?: http.Agent | false;
  timeoutMs?: number;
}

/**
 * One HTTP(S) request with node:http/https, whole response body buffered.
 * Rejects on network errors and on a response body cut short (`Error('response aborted ...')`).
 */
export function httpRequest(url: string | URL, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  const isHttps = u.protocol === 'https:';
  const headers: Record<string, string | number> = { ...(opts.headers ?? {}) };
  if (Buffer.isBuffer(opts.body) || typeof opts.body === 'string') {
    headers['content-length'] ??= Buffer.byteLength(opts.body);
  }
  return new Promise((resolve, reject) => {
    if (isHttps && opts.ca === undefined) {
      reject(new Error(`httpRequest: https URL ${u.href} needs an explicit ca`));
      return;
    }
    const reqOpts: https.RequestOptions = {
      method: opts.method ?? 'GET',
      headers,
      agent: opts.agent ?? false,
      ...(isHttps ? { ca: opts.ca } : {}),
    };
    const req = (isHttps ? https : http).request(u, reqOpts, (res) => {
      const chunks: Buffer[] = [];
      let done = false;
      const fail = (why: string) => {
        if (done) return;
        done = true;
        const e = new Error(`response aborted (${why}) after ${chunks.reduce((n, c) => n + c.length, 0)} bytes: ${req.method} ${u.href}`);
        Object.assign(e, { status: res.statusCode, received: Buffer.concat(chunks) });
        reject(e);
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => fail('aborted'));
      res.on('error', (e) => fail(e.message));
      res.on('end', () => {
        if (done) return;
        if (!res.complete) return fail('incomplete');
        done = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error(`timeout: ${u.href}`)));
    req.on('error', reject);
    if (opts.body instanceof Readable) {
      opts.body.on('error', (e) => req.destroy(e));
      opts.body.pipe(req);
    } else {
      req.end(opts.body);
    }
  });
}

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
