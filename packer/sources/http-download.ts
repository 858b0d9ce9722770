import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirlockError, RemoteError } from '../../shared/cli/errors.ts';
import { header, type HttpHeaders, type HttpTransport } from '../../shared/registry/transport.ts';

/**
 * One HTTP(S) GET streamed to a local file: redirects followed (never from
 * https down to http), a size cap enforced on the declared length and on the
 * bytes as they arrive, the sha256 computed on the way. Credentials (Basic)
 * go to the first URL's origin only, never to a host a redirect leads to.
 * Nothing is held in memory; on any failure the partial file is removed.
 * Used by url: manifest sources and by chart repositories.
 */
export interface DownloadOptions {
  transport: HttpTransport;
  /** Names the source in messages: "manifests[0].url https://host/a.tgz". */
  from: string;
  maxBytes: number;
  /** The error for content over maxBytes. */
  tooBig: () => AirlockError;
  /**
   * Basic credentials for the URL's origin. Without them, credentials written
   * in the URL (https://user:password@host/...) are used the same way.
   */
  basicAuth?: { username: string; password: string };
  /** The hint for HTTP 401/403. */
  deniedHint?: string;
  /** Accept header (default any). */
  accept?: string;
}

export interface Downloaded {
  /** hex */
  sha256: string;
  size: number;
}

export const MAX_REDIRECTS = 5;

/** GET `url` into `file` (created; it must not exist). */
export async function downloadToFile(url: URL, file: string, options: DownloadOptions): Promise<Downloaded> {
  const { from } = options;
  const auth = basicAuthorization(url, options.basicAuth);
  const origin = url.origin;
  let target = new URL(url);
  target.username = '';
  target.password = '';
  for (let hop = 0; ; hop++) {
    const headers: HttpHeaders = { accept: options.accept ?? '*/*', 'accept-encoding': 'identity' };
    if (auth && target.origin === origin) headers.authorization = auth;
    const res = await options.transport.send({ method: 'GET', url: target, headers, what: `${from}: GET ${redactUrl(target)}` });
    const location = header(res, 'location');
    if ([301, 302, 303, 307, 308].includes(res.status) && location) {
      await res.body.dump().catch(() => undefined);
      if (hop >= MAX_REDIRECTS) throw new RemoteError(`${from}: more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, target);
      if (target.protocol === 'https:' && next.protocol !== 'https:') {
        throw new RemoteError(`${from}: refused a redirect from https to ${redactUrl(next)}`, { hint: 'use a URL that stays on https' });
      }
      target = next;
      continue;
    }
    if (res.status !== 200) {
      await res.body.dump().catch(() => undefined);
      const denied = res.status === 401 || res.status === 403;
      throw new RemoteError(`${from}: GET ${redactUrl(target)} answered HTTP ${res.status}`, {
        hint: denied
          ? (options.deniedHint ?? 'the server refused access: check the credentials')
          : 'check the URL and that this host may read it',
      });
    }
    const length = Number(header(res, 'content-length'));
    if (Number.isFinite(length) && length > options.maxBytes) {
      res.body.destroy();
      throw options.tooBig();
    }
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, cb) {
        size += chunk.length;
        if (size > options.maxBytes) return cb(options.tooBig());
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    const out = createWriteStream(file, { flags: 'wx' });
    let writeError: Error | undefined;
    out.once('error', (err) => (writeError ??= err));
    try {
      await pipeline(res.body, meter, out);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') await rm(file, { force: true });
      if (err instanceof AirlockError) throw err;
      if (writeError) throw new Error(`cannot write ${file}: ${writeError.message}`, { cause: writeError });
      throw new RemoteError(`${from}: the download broke off after ${size} bytes: ${(err as Error).message}`, { hint: 'try again', cause: err });
    }
    return { sha256: hash.digest('hex'), size };
  }
}

/** "Basic ..." from explicit credentials, else from the URL's user info; undefined when neither. */
function basicAuthorization(url: URL, explicit: DownloadOptions['basicAuth']): string | undefined {
  // undici ignores credentials in a URL: they are sent as a header, to this origin only.
  const pair = explicit
    ? `${explicit.username}:${explicit.password}`
    : url.username || url.password
      ? `${safeDecode(url.username)}:${safeDecode(url.password)}`
      : undefined;
  return pair === undefined ? undefined : `Basic ${Buffer.from(pair).toString('base64')}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The URL without user info or query (they may carry secrets): for messages. */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`; // not u.origin: it is "null" for s3://
  } catch {
    return '(invalid URL)';
  }
}
