import { Readable } from 'node:stream';
import { AirlockError, RemoteError, VerificationError } from '../cli/errors.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { ContentCheck, digestOf } from '../oci/digest.ts';
import { MANIFEST_ACCEPT, parseManifest } from '../oci/mediatype.ts';
import { apiHost } from '../oci/reference.ts';
import { RegistryAuth, repositoryScope } from './auth.ts';
import { listAllTags, parseNextLink } from './catalog.ts';
import type { Credentials } from './credentials.ts';
import type { RateLimitTracker } from './ratelimit.ts';
import { describeNetworkFailure } from '../net/errors.ts';
import { DEFAULT_RETRY, isRetryableNetworkError, retryDelayMs, sleep, type RetryPolicy } from './retry.ts';
import { header, HttpTransport, mutualTlsHint, type HttpHeaders, type HttpResponse, type TransportOptions } from './transport.ts';
import type { ClientCertificates, HostTls } from './client-certs.ts';
import { damagedStorageHint, isInternalStorageFailure } from './stored-link.ts';

/**
 * A client for one registry host speaking the OCI distribution API
 * (opencontainers/distribution-spec): manifests and blobs, pull and push,
 * cross-repository mount, with authentication and streaming verification.
 * Every blob is hashed as it streams; nothing is held whole in memory.
 */

/** Where requests for a registry go: its API host, or a mirror standing in for it. */
export interface Endpoint {
  /** The registry as written in references: "docker.io", "127.0.0.1:5000". */
  registry: string;
  /** scheme://host[:port] requests are sent to. */
  origin: URL;
  /** Repository prefix on a mirror that keeps mirrored repositories under a path ("dockerhub-proxy/"). */
  repositoryPrefix: string;
}

export interface RegistryOptions extends TransportOptions {
  /** Speak plain HTTP to registries that have no mirror. Only when asked. */
  plainHttp?: boolean;
  /** registry -> mirror URL, e.g. { "docker.io": "http://127.0.0.1:5000" }. */
  mirrors?: Record<string, string>;
  /** Credentials for the host requests actually go to. */
  credentials?: (host: string) => Credentials | undefined;
  /**
   * Blobs up to this size are uploaded with one PUT; larger ones with one
   * streaming PATCH and a closing PUT, as docker pushes them.
   */
  monolithicMaxBytes?: number;
  /**
   * Upload large blobs in PATCH chunks of this size instead (registries or
   * proxies that cap a request's body). Default: one PATCH.
   */
  chunkBytes?: number;
  /** Told about the pull quotas registries announce (Docker Hub). */
  rateLimits?: RateLimitTracker;
  /** Client certificates and per-host CAs (--client-cert, certs.d) for registries behind mutual TLS. */
  clientCertificates?: ClientCertificates;
  /**
   * Look manifests up with GET instead of HEAD (resolve). undici closes the
   * connection after every HEAD (nodejs/undici#258) unless the server answers
   * `Connection: keep-alive`, which Go's HTTP/1.1 server (distribution,
   * Harbor) never does: each HEAD costs a new TCP and TLS connection. A
   * manifest is a few kB, so for the enclave's own registry (no pull quota
   * counting GETs) a GET on a kept-alive connection is the cheaper look.
   */
  lookupsByGet?: boolean;
}

/** The most a manifest may hold: distribution's own limit (4 MiB); a body that keeps coming is cut off there. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const DEFAULT_MONOLITHIC_MAX = 64 * 1024 * 1024;
/** Redirects followed for one request (registry.k8s.io answers every manifest request with one). */
const MAX_REDIRECTS = 5;
/** Repositories tried as mount sources for one blob before uploading it. */
const MAX_MOUNT_SOURCES = 3;
/** A registry that answered this many mounts with an upload session, and none with a mount, never mounts. */
const MOUNTS_BEFORE_GIVING_UP = 2;
/**
 * How long an upload session opened by probePush({ keep: true }) is taken for
 * a repository's first upload. Registries keep sessions for hours or days
 * (distribution purges them after a week); a young one is safe to use.
 */
const KEPT_UPLOAD_MAX_AGE_MS = 120_000;

type Scopes = string[];

interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path under the origin ("/v2/...") or an absolute URL (upload Location). */
  url: URL;
  headers?: HttpHeaders;
  body?: Buffer | Readable;
  scopes: Scopes;
  what: string;
  /** Return a 401 that authentication could not get past, instead of throwing (push probes). */
  keepRefusal?: boolean;
}

/** How a registry answered a push probe it refused. */
export interface PushRefusal {
  status: number;
  /** The registry's error codes and messages ("DENIED: requested access to the resource is denied"), if any. */
  detail: string;
}

export function resolveEndpoint(registry: string, options: Pick<RegistryOptions, 'mirrors' | 'plainHttp'>): Endpoint {
  const mirror = options.mirrors?.[registry];
  if (mirror !== undefined) {
    const url = new URL(mirror);
    const prefix = url.pathname.replace(/^\/+|\/+$/g, '');
    return { registry, origin: new URL(url.origin), repositoryPrefix: prefix ? `${prefix}/` : '' };
  }
  const scheme = options.plainHttp ? 'http' : 'https';
  return { registry, origin: new URL(`${scheme}://${apiHost(registry)}`), repositoryPrefix: '' };
}

export class RegistryClient {
  readonly endpoint: Endpoint;
  private readonly auth: RegistryAuth;
  private readonly retry: RetryPolicy;
  private readonly monolithicMax: number;
  private readonly chunkBytes: number | undefined;
  private readonly rateLimits: RateLimitTracker | undefined;
  private readonly lookupsByGet: boolean;
  /** Repositories of this registry known to hold a blob: candidates for a mount. */
  private readonly blobHomes = new Map<string, Set<string>>();
  /** Mounts answered 201 and 202 so far; a registry that only ever opens an upload is not asked again. */
  private readonly mounts = { linked: 0, refused: 0 };
  /** Upload sessions a push probe left open, per repository: the repository's next upload starts there. */
  private readonly keptUploads = new Map<string, { location: URL; openedAt: number }>();
  /** Anonymous authentication for the other hosts redirects lead to (registry.k8s.io -> Artifact Registry). */
  private readonly redirectAuth = new Map<string, RegistryAuth>();
  private readonly certs: ClientCertificates | undefined;
  /** "repository manifests/REF" or "repository blobs/DIGEST" whose link the registry could not read: read back once pushed again. */
  private readonly relinked = new Set<string>();

  constructor(
    registry: string,
    private readonly transport: HttpTransport,
    options: RegistryOptions = {},
  ) {
    this.endpoint = resolveEndpoint(registry, options);
    this.certs = options.clientCertificates;
    this.auth = new RegistryAuth(this.endpoint.origin.host, transport, options.credentials?.(this.endpoint.origin.host), (u) => this.tlsFor(u));
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.monolithicMax = options.monolithicMaxBytes ?? DEFAULT_MONOLITHIC_MAX;
    this.chunkBytes = options.chunkBytes;
    this.rateLimits = options.rateLimits;
    this.lookupsByGet = options.lookupsByGet === true;
  }

  /** "host/repo" as shown to users (the registry as referenced, not the mirror). */
  display(repository: string): string {
    return `${this.endpoint.registry}/${repository}`;
  }

  /**
   * GET /v2/ with authentication, once: the registry answers, its TLS is
   * trusted and the credentials are taken (a preflight before the work).
   * Throws a RemoteError (401: the credentials, 403, or no answer).
   */
  async ping(): Promise<void> {
    const res = await this.send({ method: 'GET', url: new URL('/v2/', this.endpoint.origin), scopes: [], what: `GET ${this.endpoint.origin.origin}/v2/` });
    if (res.status === 403) throw await this.failure(res, `GET ${this.endpoint.origin.origin}/v2/`);
    await res.body.dump();
  }

  // ---- manifests ----------------------------------------------------------

  /**
   * The descriptor a tag or digest points to, or undefined when the registry
   * has none. A HEAD (Docker Hub does not count it as a pull); a GET only when
   * the registry leaves the digest out of HEAD, unless `headOnly` (or first,
   * with the client's `lookupsByGet`).
   * A digest the registry answers 412 for (Harbor's pull policies) is there:
   * its descriptor has the digest and what the headers say of the rest.
   * With `refusedAsAbsent`, a refused read (401, 403) is undefined too: a
   * namespace that does not exist yet (Harbor answers 401 there), which the
   * push probe then explains.
   */
  async resolve(repository: string, reference: string, options: { headOnly?: boolean; refusedAsAbsent?: boolean } = {}): Promise<Descriptor | undefined> {
    if (this.lookupsByGet) {
      try {
        return (await this.getManifest(repository, reference, { refusedAsAbsent: options.refusedAsAbsent }))?.descriptor;
      } catch (err) {
        // Unreachable is unreachable; any other answer (Harbor's 412, a manifest this client cannot parse) is for the HEAD below to judge.
        if (err instanceof RemoteError && !(err instanceof RegistryHttpError)) throw err;
      }
    }
    const what = `resolve ${this.display(repository)}${refSuffix(reference)}`;
    const res = await this.sendFollowing({
      method: 'HEAD',
      url: this.url(repository, `manifests/${reference}`),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [repositoryScope(this.repo(repository), ['pull'])],
      what,
      keepRefusal: options.refusedAsAbsent,
    });
    await res.body.dump();
    if (res.status === 404) return undefined;
    if (res.status === 500 && (await this.brokenLink(repository, `manifests/${reference}`, what))) return undefined;
    if (options.refusedAsAbsent && (res.status === 401 || res.status === 403)) return undefined;
    if (res.status === 412) {
      const digest = header(res, 'docker-content-digest');
      if (reference.startsWith('sha256:') || digest?.startsWith('sha256:')) {
        return {
          mediaType: header(res, 'content-type')?.split(';')[0]?.trim() || 'application/vnd.oci.image.manifest.v1+json',
          digest: reference.startsWith('sha256:') ? reference : digest!,
          size: Number(header(res, 'content-length')) || 0,
        };
      }
      throw await this.failure(res, what);
    }
    if (res.status !== 200) throw await this.failure(res, what);
    const digest = header(res, 'docker-content-digest');
    const mediaType = header(res, 'content-type')?.split(';')[0]?.trim();
    const size = Number(header(res, 'content-length'));
    if (digest && mediaType && /^application\/vnd\./.test(mediaType) && Number.isSafeInteger(size) && size > 0) {
      if (reference.includes(':') && reference !== digest) {
        throw new VerificationError(`${what}: the registry reports digest ${digest} for a request by digest`);
      }
      return { mediaType, digest, size };
    }
    // Older registries leave the digest out of HEAD: fetch the manifest and hash it.
    if (options.headOnly) throw new RemoteError(`${what}: the registry's HEAD answer names no digest`);
    const m = await this.getManifest(repository, reference);
    return m?.descriptor;
  }

  /**
   * Fetch a manifest or index. Its digest is computed over the exact bytes and
   * checked against the reference (when by digest) and Docker-Content-Digest.
   */
  async getManifest(repository: string, reference: string, options: { refusedAsAbsent?: boolean } = {}): Promise<{ descriptor: Descriptor; bytes: Buffer } | undefined> {
    const what = `get manifest ${this.display(repository)}${refSuffix(reference)}`;
    // A body cut short (the connection dropped after the headers) is tried again, as a blob is.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.getManifestOnce(repository, reference, what, options);
      } catch (err) {
        if (err instanceof AirlockError) throw err;
        if (!isRetryableNetworkError(err) || attempt >= this.retry.attempts) {
          throw new RemoteError(`${what}: ${describeNetworkFailure(err)}`, { cause: err });
        }
        await sleep(retryDelayMs(attempt, this.retry));
      }
    }
  }

  private async getManifestOnce(repository: string, reference: string, what: string, options: { refusedAsAbsent?: boolean }): Promise<{ descriptor: Descriptor; bytes: Buffer } | undefined> {
    const res = await this.sendFollowing({
      method: 'GET',
      url: this.url(repository, `manifests/${reference}`),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [repositoryScope(this.repo(repository), ['pull'])],
      what,
      keepRefusal: options.refusedAsAbsent,
    });
    if (res.status === 404 || (options.refusedAsAbsent && (res.status === 401 || res.status === 403))) {
      await res.body.dump();
      return undefined;
    }
    if (res.status !== 200) throw await this.failure(res, what);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, what);
    const digest = digestOf(bytes);
    const claimed = header(res, 'docker-content-digest');
    if (reference.startsWith('sha256:') && reference !== digest) {
      throw new VerificationError(`${what}: content has digest ${digest}, not the requested ${reference}`);
    }
    if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new VerificationError(`${what}: content has digest ${digest}, the registry claims ${claimed}`);
    }
    const { mediaType } = parseManifest(bytes, header(res, 'content-type'), what);
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  /** Store a manifest under a tag or its digest. Returns the digest of the bytes sent. */
  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const digest = digestOf(bytes);
    const what = `push manifest ${this.display(repository)}${refSuffix(reference)}`;
    // Its bytes as a blob first (stored-link.ts): they land whole or not at all, and the PUT only links them.
    if (!this.blobHomes.get(digest)?.has(repository)) await this.pushBlob(repository, { mediaType: 'application/octet-stream', digest, size: bytes.length }, Readable.from([bytes]));
    const res = await this.send({
      method: 'PUT',
      url: this.url(repository, `manifests/${reference}`),
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: [repositoryScope(this.repo(repository), ['pull', 'push'])],
      what,
    });
    if (res.status !== 201 && res.status !== 200) throw await this.failure(res, what);
    await res.body.dump();
    const stored = header(res, 'docker-content-digest');
    if (stored && stored !== digest) {
      throw new VerificationError(`${what}: the registry stored digest ${stored}, we sent ${digest}`);
    }
    if (this.relinked.delete(`${repository} manifests/${reference}`)) await this.readBackManifest(repository, reference, digest, what);
    return digest;
  }

  /** A manifest whose link was damaged, once pushed again: the registry must now serve it. */
  private async readBackManifest(repository: string, reference: string, digest: string, what: string): Promise<void> {
    const back = await this.getManifest(repository, reference).catch(() => undefined);
    if (back?.descriptor.digest !== digest) {
      throw new RemoteError(`${what}: the registry took the push but still cannot read the manifest back`, { hint: damagedStorageHint(digest) });
    }
  }

  // ---- tags ---------------------------------------------------------------

  /**
   * Every tag of a repository (GET /v2/<name>/tags/list, following the Link
   * header's pages), or [] when the repository does not exist. Capped at
   * maxTags: a chart's versions, not a registry's worth of names.
   */
  async listTags(repository: string, maxTags = 100_000): Promise<string[]> {
    return listAllTags(this, this.repo(repository), { maxEntries: maxTags });
  }

  /**
   * One page of a listing (the catalog, a repository's tags): the JSON of a
   * 200 and the next page the Link header names, or the status of a refusal
   * (401 once authentication was tried, 403, 404). Other answers are errors.
   */
  async listingPage(url: URL, scopes: Scopes, what: string): Promise<{ status: 200; body: unknown; next?: URL } | { status: 401 | 403 | 404 }> {
    let res: HttpResponse;
    try {
      res = await this.send({ method: 'GET', url, headers: { accept: 'application/json' }, scopes, what });
    } catch (err) {
      if (err instanceof RegistryHttpError && err.status === 401) return { status: 401 };
      throw err;
    }
    if (res.status === 403 || res.status === 404) {
      await res.body.dump();
      return { status: res.status };
    }
    if (res.status !== 200) throw await this.failure(res, what);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, what).catch((err: unknown) => {
      throw err instanceof AirlockError ? err : new RemoteError(`${what}: ${describeNetworkFailure(err)}`, { cause: err });
    });
    try {
      return { status: 200, body: JSON.parse(bytes.toString('utf8')) as unknown, next: parseNextLink(header(res, 'link'), res.url) };
    } catch {
      throw new RemoteError(`${what}: the registry's answer is not JSON`);
    }
  }

  // ---- referrers ----------------------------------------------------------

  /**
   * One page of the referrers API (GET /v2/<name>/referrers/<digest>): its
   * body and the next page's URL (Link rel="next"), or undefined when the
   * registry answers 404: a registry with the API never does (distribution-spec
   * "Listing Referrers"), so the caller falls back to the referrers tag. A 405
   * (a route some registries reserve for other methods) counts the same.
   */
  async referrersPage(repository: string, digest: string, page?: URL): Promise<{ bytes: Buffer; next?: URL } | undefined> {
    const what = `list referrers of ${this.display(repository)}@${digest}`;
    const url = page ?? this.url(repository, `referrers/${digest}`);
    const res = await this.send({ method: 'GET', url, headers: { accept: 'application/vnd.oci.image.index.v1+json' }, scopes: [repositoryScope(this.repo(repository), ['pull'])], what });
    if (res.status === 404 || res.status === 405) {
      await res.body.dump();
      return undefined;
    }
    if (res.status !== 200) throw await this.failure(res, what);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, what);
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '')?.[1];
    const next = link === undefined ? undefined : new URL(link, res.url);
    if (next !== undefined && next.origin !== this.endpoint.origin.origin) throw new RemoteError(`${what}: the registry's next page is on another host`);
    return { bytes, ...(next ? { next } : {}) };
  }

  // ---- blobs --------------------------------------------------------------

  async blobExists(repository: string, desc: Descriptor): Promise<boolean> {
    const what = `check blob ${shortDigest(desc.digest)} in ${this.display(repository)}`;
    const res = await this.send({
      method: 'HEAD',
      url: this.url(repository, `blobs/${desc.digest}`),
      scopes: [repositoryScope(this.repo(repository), ['pull'])],
      what,
    });
    await res.body.dump();
    if (res.status === 404) return false;
    if (res.status === 500 && (await this.brokenLink(repository, `blobs/${desc.digest}`, what))) return false;
    if (res.status !== 200 && res.status !== 307) throw await this.failure(res, what);
    const len = header(res, 'content-length');
    if (res.status === 200 && len !== undefined && Number(len) !== desc.size) {
      throw new VerificationError(`${what}: the registry holds ${len} bytes, the descriptor says ${desc.size}`);
    }
    this.remember(repository, desc.digest);
    return true;
  }

  /**
   * The blob's bytes as a stream, verified against desc while they flow.
   * A dropped connection is resumed with a Range request from the last byte
   * received; the verifier holds back the final chunk until the digest matched.
   */
  fetchBlob(repository: string, desc: Descriptor): Readable {
    const what = `blob ${shortDigest(desc.digest)} of ${this.display(repository)}`;
    // The check runs in the generator itself: one stream per blob, not a pipeline of three.
    return Readable.from(this.blobChunks(repository, desc, what, new ContentCheck(desc, what)), { objectMode: false });
  }

  private async *blobChunks(repository: string, desc: Descriptor, what: string, check: ContentCheck): AsyncGenerator<Buffer> {
    let offset = 0;
    for (let attempt = 1; ; attempt++) {
      const res = await this.openBlob(repository, desc, offset, what);
      // A server that ignores Range answers 200 with the whole blob: skip what we have.
      let skip = res.status === 200 ? offset : 0;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          let c = chunk;
          if (skip > 0) {
            if (c.length <= skip) {
              skip -= c.length;
              continue;
            }
            c = c.subarray(skip);
            skip = 0;
          }
          offset += c.length;
          const pass = check.accept(c);
          if (pass) yield pass;
        }
        if (offset >= desc.size) {
          const last = check.end();
          if (last) yield last;
          return;
        }
        throw Object.assign(new Error(`connection closed after ${offset} of ${desc.size} bytes`), {
          code: 'ECONNRESET',
        });
      } catch (err) {
        res.body.destroy();
        if (err instanceof AirlockError || !isRetryableNetworkError(err) || attempt >= this.retry.attempts) {
          if (err instanceof AirlockError) throw err;
          throw new RemoteError(`${what}: download failed at byte ${offset} of ${desc.size}: ${describeNetworkFailure(err)}`, {
            cause: err,
          });
        }
        await sleep(retryDelayMs(attempt, this.retry));
      }
    }
  }

  /** GET the blob from `offset`, following a redirect to storage without our credentials. */
  private async openBlob(repository: string, desc: Descriptor, offset: number, what: string): Promise<HttpResponse> {
    const range: HttpHeaders = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const res = await this.sendFollowing({
      method: 'GET',
      url: this.url(repository, `blobs/${desc.digest}`),
      headers: range,
      scopes: [repositoryScope(this.repo(repository), ['pull'])],
      what,
    });
    if (res.status === 200 || (res.status === 206 && offset > 0)) {
      // A registry that announces another length than the descriptor's is lying about the content: no retry will help.
      const len = header(res, 'content-length');
      const expected = res.status === 200 ? desc.size : desc.size - offset;
      if (len !== undefined && Number(len) !== expected) {
        res.body.destroy();
        throw new VerificationError(`${what}: the registry answers ${len} bytes, the descriptor says ${expected}${offset > 0 ? ` (from byte ${offset})` : ''}`);
      }
      return res;
    }
    if (res.status === 404) {
      await res.body.dump();
      throw new RemoteError(`${what}: not found in the registry (HTTP 404)`, {
        hint: 'the image may have been deleted or garbage-collected since its manifest was read',
      });
    }
    throw await this.failure(res, what);
  }

  /**
   * Mount a blob from another repository of this registry. True when the
   * registry linked it (201); false when it did not (it then opened an upload, cancelled here).
   */
  async mountBlob(repository: string, desc: Descriptor, from: string): Promise<boolean> {
    if (this.neverMounts()) return false;
    const what = `mount blob ${shortDigest(desc.digest)} from ${from} into ${this.display(repository)}`;
    const url = this.url(repository, 'blobs/uploads/');
    url.searchParams.set('mount', desc.digest);
    url.searchParams.set('from', this.repo(from));
    let res: HttpResponse;
    try {
      res = await this.send({
        method: 'POST',
        url,
        headers: { 'content-length': '0' },
        scopes: [repositoryScope(this.repo(repository), ['pull', 'push']), repositoryScope(this.repo(from), ['pull'])],
        what,
      });
    } catch (err) {
      // A mount refused at the door (no pull on the source, 401/403) is only a missed shortcut: upload instead.
      if (err instanceof RemoteError) return false;
      throw err;
    }
    await res.body.dump();
    if (res.status === 201) {
      this.mounts.linked++;
      this.remember(repository, desc.digest);
      return true;
    }
    if (res.status === 202) {
      this.mounts.refused++;
      const location = header(res, 'location');
      if (location) await this.cancelUpload(repository, new URL(location, res.url));
      return false;
    }
    // 401, 403, 404, 405, 5xx...: the registry does not mount this blob; the upload will tell what is wrong, if anything.
    return false;
  }

  /**
   * Repositories of this registry where the blob was seen, other than
   * `except`: at most 3, and none once the registry showed that it never
   * mounts (it answered every mount with an upload session).
   */
  mountSources(digest: string, except: string): string[] {
    if (this.neverMounts()) return [];
    return [...(this.blobHomes.get(digest) ?? [])].filter((r) => r !== except).slice(0, MAX_MOUNT_SOURCES);
  }

  /**
   * Upload a blob from a stream. Small blobs go in one PUT, large ones in one
   * streaming PATCH (or PATCH chunks of chunkBytes, when set) and a closing
   * PUT with the digest, sent only after the body ended cleanly. On any
   * failure the upload session is cancelled, so nothing partial is ever
   * committed. A closing PUT that fails (5xx, a dropped connection) may have
   * committed behind a proxy: the blob is looked for before giving up.
   */
  async pushBlob(repository: string, desc: Descriptor, body: Readable): Promise<void> {
    const what = `push blob ${shortDigest(desc.digest)} to ${this.display(repository)}`;
    const scopes = [repositoryScope(this.repo(repository), ['pull', 'push'])];
    let location = await this.startUpload(repository, scopes, what);
    const reader = new ChunkReader(body);
    try {
      if (desc.size <= this.monolithicMax) {
        location = await this.finishUpload(repository, location, desc, reader.stream(desc.size), desc.size, scopes, what);
        await reader.expectEnd();
      } else {
        const chunk = this.chunkBytes ?? desc.size;
        for (let start = 0; start < desc.size; ) {
          const len = Math.min(chunk, desc.size - start);
          const res = await this.send({
            method: 'PATCH',
            url: location,
            headers: {
              'content-type': 'application/octet-stream',
              'content-length': String(len),
              // One streaming PATCH, as docker sends it, has no range; chunks do.
              ...(this.chunkBytes !== undefined ? { 'content-range': `${start}-${start + len - 1}` } : {}),
            },
            body: reader.stream(len),
            scopes,
            what: `${what} (bytes ${start}-${start + len - 1})`,
          });
          // 202 in the spec; ECR answers 201.
          if (res.status !== 202 && res.status !== 201) throw await this.failure(res, what);
          await res.body.dump();
          location = nextLocation(res, what);
          start += len;
        }
        await reader.expectEnd();
        location = await this.finishUpload(repository, location, desc, undefined, 0, scopes, what);
      }
    } catch (err) {
      await this.cancelUpload(repository, location);
      // The source's own failure (a digest mismatch, a broken download) is the real cause.
      throw reader.error ?? err;
    }
    if (this.relinked.delete(`${repository} blobs/${desc.digest}`) && !(await this.committedAnyway(repository, desc))) {
      throw new RemoteError(`${what}: the registry took the upload but still cannot read the blob back`, { hint: damagedStorageHint(desc.digest) });
    }
    this.remember(repository, desc.digest);
  }

  /**
   * Whether the registry takes a push to `repository`: opens an upload, asking
   * for push scope (Quay creates a repository only when push is requested;
   * Harbor and GitLab grant it only where the project exists and the path is
   * one they accept). Nothing is stored. Returns the refusal, or undefined
   * when the push would be taken. The session is cancelled at once, or with
   * `keep` left open for the repository's first upload (one request fewer per
   * repository and no DELETE); cancelKeptUploads() closes what no upload took.
   */
  async probePush(repository: string, options: { keep?: boolean } = {}): Promise<PushRefusal | undefined> {
    const res = await this.send({
      method: 'POST',
      url: this.url(repository, 'blobs/uploads/'),
      headers: { 'content-length': '0' },
      scopes: [repositoryScope(this.repo(repository), ['pull', 'push'])],
      what: `check push to ${this.display(repository)}`,
      keepRefusal: true,
    });
    if (res.status === 202) {
      await res.body.dump();
      const location = header(res, 'location');
      if (!location) return undefined;
      const url = new URL(location, res.url);
      if (options.keep && !this.keptUploads.has(repository)) this.keptUploads.set(repository, { location: url, openedAt: performance.now() });
      else await this.cancelUpload(repository, url);
      return undefined;
    }
    return { status: res.status, detail: describeRegistryErrors(await readText(res, 4096)) };
  }

  /** Cancel the upload sessions probePush kept that no upload took (a load that ends, or fails). */
  async cancelKeptUploads(): Promise<void> {
    const kept = [...this.keptUploads];
    this.keptUploads.clear();
    await Promise.all(kept.map(([repository, k]) => this.cancelUpload(repository, k.location)));
  }

  /** The session a probe kept for this repository, while young enough (an older one is cancelled). */
  private takeKeptUpload(repository: string): URL | undefined {
    const kept = this.keptUploads.get(repository);
    if (!kept) return undefined;
    this.keptUploads.delete(repository);
    if (performance.now() - kept.openedAt <= KEPT_UPLOAD_MAX_AGE_MS) return kept.location;
    void this.cancelUpload(repository, kept.location);
    return undefined;
  }

  private async startUpload(repository: string, scopes: Scopes, what: string): Promise<URL> {
    const kept = this.takeKeptUpload(repository);
    if (kept) return kept;
    const res = await this.send({
      method: 'POST',
      url: this.url(repository, 'blobs/uploads/'),
      headers: { 'content-length': '0' },
      scopes,
      what,
    });
    await res.body.dump();
    if (res.status !== 202) throw await this.failure(res, what);
    return nextLocation(res, what);
  }

  private async finishUpload(
    repository: string,
    location: URL,
    desc: Descriptor,
    body: Readable | undefined,
    length: number,
    scopes: Scopes,
    what: string,
  ): Promise<URL> {
    const url = new URL(location);
    url.searchParams.set('digest', desc.digest);
    let res: HttpResponse;
    try {
      res = await this.send({
        method: 'PUT',
        url,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
        // The closing PUT of a PATCHed upload is sent once: a retry of a PUT that committed finds no session.
        body: body ?? Readable.from([]),
        scopes,
        what,
      });
    } catch (err) {
      if (err instanceof RemoteError && (await this.committedAnyway(repository, desc))) return url;
      throw err;
    }
    if (res.status === 201) {
      await res.body.dump();
      return url;
    }
    if ((res.status >= 500 || res.status === 404 || res.status === 408) && (await this.committedAnyway(repository, desc))) {
      await res.body.dump();
      return url;
    }
    throw await this.failure(res, what);
  }

  /**
   * After a HEAD answered 500 (past its retries): whether a GET of the same fails inside
   * the registry too (500 UNKNOWN), as on a link file a full disk left empty
   * (stored-link.ts). Such an item counts as absent, so that it is pushed again, which
   * rewrites the link; it is read back after that push.
   */
  private async brokenLink(repository: string, path: string, what: string): Promise<boolean> {
    const res = await this.sendFollowing({
      method: 'GET',
      url: this.url(repository, path),
      headers: path.startsWith('blobs/') ? { range: 'bytes=0-0' } : { accept: MANIFEST_ACCEPT },
      scopes: [repositoryScope(this.repo(repository), ['pull'])],
      what: `${what} (read it once more)`,
    });
    const text = res.status === 500 ? await readText(res, 4096) : '';
    if (res.status !== 500) await res.body.dump();
    if (!isInternalStorageFailure(text)) return false;
    this.relinked.add(`${repository} ${path}`);
    return true;
  }

  /** After a failed closing PUT: whether the blob is in the repository anyway (the PUT committed, its answer got lost). */
  private async committedAnyway(repository: string, desc: Descriptor): Promise<boolean> {
    try {
      return await this.blobExists(repository, desc);
    } catch {
      return false;
    }
  }

  private async cancelUpload(repository: string, location: URL): Promise<void> {
    try {
      const res = await this.send({
        method: 'DELETE',
        url: location,
        scopes: [repositoryScope(this.repo(repository), ['pull', 'push'])],
        what: `cancel upload to ${this.display(repository)}`,
      });
      await res.body.dump();
    } catch {
      // Best effort: the registry purges abandoned uploads itself.
    }
  }

  // ---- plumbing -----------------------------------------------------------

  /** The registry answered mounts with upload sessions only, so far: it does not mount (mounts disabled, GAR). */
  private neverMounts(): boolean {
    return this.mounts.linked === 0 && this.mounts.refused >= MOUNTS_BEFORE_GIVING_UP;
  }

  private remember(repository: string, digest: string): void {
    let homes = this.blobHomes.get(digest);
    if (!homes) this.blobHomes.set(digest, (homes = new Set()));
    homes.add(repository);
  }

  private repo(repository: string): string {
    return this.endpoint.repositoryPrefix + repository;
  }

  private url(repository: string, rest: string): URL {
    return new URL(`/v2/${this.repo(repository)}/${rest}`, this.endpoint.origin);
  }

  /** Send with authentication: answer a 401 challenge once, then give up with a clear error. */
  private async send(req: RegistryRequest): Promise<HttpResponse> {
    return this.sendAuthenticated(req, this.auth, this.endpoint.origin.host);
  }

  private async sendAuthenticated(req: RegistryRequest, auth: RegistryAuth, host: string): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const authorization = await auth.authorization(req.scopes);
      const headers = { ...req.headers };
      if (authorization) headers.authorization = authorization;
      const res = await this.transport.send({ method: req.method, url: req.url, headers, body: req.body, what: req.what, tls: this.tlsFor(req.url) });
      if (this.rateLimits && /\/manifests\//.test(req.url.pathname)) this.rateLimits.observe(this.endpoint.registry, res);
      if (res.status !== 401) return res;
      const replayable = req.body === undefined || Buffer.isBuffer(req.body);
      if (attempt > 0 || !replayable) return this.refused(req, res, host);
      // A 401 without a challenge (some proxies drop it): the API root names the scheme.
      const challenge = header(res, 'www-authenticate') ?? (await this.pingForChallenge(req.url, req.what));
      if (!auth.onUnauthorized(challenge, req.scopes, authorization)) return this.refused(req, res, host);
      await res.body.dump();
    }
  }

  /** The client certificate and CAs for a request to `url` (certs.d is per host; the flags' certificate only for this registry). */
  private tlsFor(url: URL): HostTls | undefined {
    return this.certs?.for(url.host, url.host === this.endpoint.origin.host);
  }

  /** A 401 authentication could not get past: the answer itself for a probe, else a clear error. */
  private async refused(req: RegistryRequest, res: HttpResponse, host: string): Promise<HttpResponse> {
    if (req.keepRefusal) return res;
    throw await this.failure(res, req.what, host);
  }

  private async pingForChallenge(url: URL, what: string): Promise<string | undefined> {
    const res = await this.transport.send({ method: 'GET', url: new URL('/v2/', url), what: `${what} (ask ${url.host} how to authenticate)`, tls: this.tlsFor(url) });
    await res.body.dump();
    return res.status === 401 ? header(res, 'www-authenticate') : undefined;
  }

  /**
   * GET or HEAD following redirects (301, 302, 303, 307, 308), at most 5:
   * credentials only to the registry's own origin (distribution-spec), and a
   * redirect from https to plain http refused. Another host that asks for a
   * token gets an anonymous one (registry.k8s.io redirects to Artifact Registry).
   */
  private async sendFollowing(req: RegistryRequest): Promise<HttpResponse> {
    let res = await this.send(req);
    for (let hops = 0; isRedirect(res.status); hops++) {
      const location = header(res, 'location');
      await res.body.dump();
      if (!location) throw new RemoteError(`${req.what}: ${res.url.host} answered HTTP ${res.status} without a Location`);
      if (hops >= MAX_REDIRECTS) throw new RemoteError(`${req.what}: more than ${MAX_REDIRECTS} redirects, the last to ${redactQuery(location)}`);
      const target = new URL(location, res.url);
      if (res.url.protocol === 'https:' && target.protocol !== 'https:') {
        throw new RemoteError(`${req.what}: ${res.url.host} redirects to ${redactQuery(target.href)}, from https to ${target.protocol.replace(':', '')}`, {
          hint: 'a redirect may not leave TLS; ask the registry operator to fix the redirect',
        });
      }
      const next: RegistryRequest = { ...req, url: target };
      if (target.origin === this.endpoint.origin.origin) {
        res = await this.send(next);
      } else {
        let auth = this.redirectAuth.get(target.origin);
        if (!auth) this.redirectAuth.set(target.origin, (auth = new RegistryAuth(target.host, this.transport, undefined, (u) => this.tlsFor(u))));
        const scopes = scopeOfPath(target) ?? [];
        res = await this.sendAuthenticated({ ...next, scopes }, auth, target.host);
      }
    }
    return res;
  }

  /**
   * Whether a 400 is nginx's answer to a missing or refused client
   * certificate (ssl_verify_client). A HEAD has no body to say so: the API
   * root is asked with a GET.
   */
  private async wantsClientCertificate(text: string, url: URL): Promise<boolean> {
    const NGINX = /No required SSL certificate was sent|The SSL certificate error/i;
    if (text !== '') return NGINX.test(text);
    try {
      const res = await this.transport.send({ method: 'GET', url: new URL('/v2/', url), what: `ask ${url.host} why it answered HTTP 400`, tls: this.tlsFor(url) });
      return res.status === 400 && NGINX.test(await readText(res, 4096));
    } catch {
      return false;
    }
  }

  /** A RemoteError naming the registry, the operation, the HTTP status and the registry's error codes. */
  private async failure(res: HttpResponse, what: string, host = this.endpoint.origin.host): Promise<AirlockError> {
    const text = res.status === 0 ? '' : await readText(res, 4096);
    const detail = describeRegistryErrors(text);
    const base = `${what}: registry ${host} answered HTTP ${res.status}${detail ? ` ${detail}` : ''}`;
    if (res.status === 400 && (await this.wantsClientCertificate(text, res.url))) {
      return new RemoteError(`${what}: ${host} wants a client certificate (mutual TLS) and answered HTTP 400 No required SSL certificate was sent`, {
        hint: mutualTlsHint(host, this.tlsFor(res.url)),
      });
    }
    switch (res.status) {
      case 401:
        return new RegistryHttpError(res.status, base, {
          hint: 'authentication failed: check --registry-username / --registry-password-env or ~/.docker/config.json',
        });
      case 403:
        return new RegistryHttpError(res.status, base, { hint: 'the credentials are valid but lack permission for this action' });
      case 405:
        return new RegistryHttpError(res.status, base, {
          hint: 'the registry refuses writes (read-only or maintenance mode); ask its operator to allow the loader identity',
        });
      case 412:
        return new RegistryHttpError(res.status, `${base}: the manifest is there, but the registry's policy forbids reading it`, {
          hint: "Harbor answers 412 when a project's vulnerability or signature policy blocks pulls of an artifact; ask the registry operator to allow it or exempt the loader identity",
        });
      case 429: {
        const remaining = header(res, 'ratelimit-remaining');
        const limit = header(res, 'ratelimit-limit');
        const retryAfter = header(res, 'retry-after');
        const numbers = [limit && `limit ${limit}`, remaining && `remaining ${remaining}`, retryAfter && `retry after ${retryAfter} s`].filter(Boolean).join(', ');
        return new RegistryHttpError(res.status, `${base}${numbers ? ` (${numbers})` : ''}: the pull rate limit is spent`, {
          hint: `log in for a higher limit (docker login ${this.endpoint.registry}, or --registry-username with --registry-password-env), pack through a mirror (--registry-mirror ${this.endpoint.registry}=URL), or try again after the window resets`,
        });
      }
      default:
        return new RegistryHttpError(res.status, base);
    }
  }
}

/** A registry's failure answer, with its HTTP status. */
export class RegistryHttpError extends RemoteError {
  constructor(
    readonly status: number,
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Reads a stream in exact-length pieces, without copying, for chunked uploads. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;
  /** The body's own error, when it failed (it wins over the HTTP error it caused). */
  error: unknown;

  constructor(body: Readable) {
    this.it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  stream(length: number): Readable {
    return Readable.from(this.take(length), { objectMode: false });
  }

  private async *take(length: number): AsyncGenerator<Buffer> {
    let remaining = length;
    while (remaining > 0) {
      const chunk = this.leftover ?? (await this.next());
      if (chunk === undefined) throw new VerificationError(`the blob ended ${remaining} bytes short`);
      if (chunk.length > remaining) {
        this.leftover = chunk.subarray(remaining);
        yield chunk.subarray(0, remaining);
        return;
      }
      this.leftover = undefined;
      remaining -= chunk.length;
      yield chunk;
    }
  }

  /** The source must end exactly where the descriptor says (this also lets its verifier finish). */
  async expectEnd(): Promise<void> {
    const extra = this.leftover ?? (await this.next());
    if (extra !== undefined) throw new VerificationError('the blob is longer than its descriptor says');
  }

  private async next(): Promise<Buffer | undefined> {
    try {
      const r = await this.it.next();
      return r.done ? undefined : r.value;
    } catch (err) {
      this.error = err;
      throw err;
    }
  }
}

function nextLocation(res: HttpResponse, what: string): URL {
  const location = header(res, 'location');
  if (!location) throw new RemoteError(`${what}: the registry answered ${res.status} without a Location header`);
  return new URL(location, res.url);
}

/** The pull scope a redirected registry URL needs: /v2/<name>/manifests/... or /v2/<name>/blobs/... */
function scopeOfPath(url: URL): string[] | undefined {
  const m = /^\/v2\/(.+)\/(?:manifests|blobs)\/[^/]+$/.exec(url.pathname);
  return m ? [repositoryScope(decodeURIComponent(m[1]!), ['pull'])] : undefined;
}

/** A URL for messages, its query (signed storage URLs carry credentials there) left out. */
function redactQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?...`;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function refSuffix(reference: string): string {
  return reference.includes(':') ? `@${reference}` : `:${reference}`;
}

export function shortDigest(digest: string): string {
  return digest.length > 19 ? digest.slice(0, 19) : digest;
}

async function readLimited(res: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const declared = Number(header(res, 'content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    res.body.destroy();
    throw new VerificationError(`${what}: manifest of ${declared} bytes exceeds the ${limit / (1024 * 1024)} MiB limit`);
  }
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.body.destroy();
      throw new VerificationError(`${what}: the answer ran past the ${limit / (1024 * 1024)} MiB a manifest may hold`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

async function readText(res: HttpResponse, limit: number): Promise<string> {
  try {
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (total < limit) parts.push(chunk);
      total += chunk.length;
    }
    return Buffer.concat(parts).toString('utf8').slice(0, limit);
  } catch {
    return '';
  }
}

/** "DENIED: requested access to the resource is denied" from a distribution error body. */
export function describeRegistryErrors(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '';
  try {
    const body = JSON.parse(trimmed) as { errors?: { code?: string; message?: string }[] };
    if (Array.isArray(body.errors) && body.errors.length > 0) {
      return body.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    }
  } catch {
    // not JSON: show the start of the text
  }
  return `(${trimmed.replace(/\s+/g, ' ').slice(0, 160)})`;
}
