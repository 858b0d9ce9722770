/**
 * Synthetic container images for tests: deterministic, incompressible layers that are valid
 * tar+gzip (one random file per layer, gzip "stored" blocks so nothing is compressed), real
 * image configs and OCI / Docker schema2 manifests, indexes and manifest lists, and a small
 * pusher that speaks the distribution API itself. Layers are generated as streams (never held
 * in memory): once to hash them, again to upload them.
 *
 * Test tooling only: the product's registry client lives in shared/registry and is not used here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { basicAuth, httpRequest, type HttpResponse } from './http.ts';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface Platform { os: string; architecture: string; variant?: string }
export interface BlobInfo { digest: string; size: number; mediaType: string }

export interface SyntheticManifest {
  digest: string;
  mediaType: string;
  size: number;
  platform: Platform;
  /** The exact manifest bytes (their sha256 is `digest`). */
  manifest: Buffer;
  /** Config first, then layers in order. */
  blobs: BlobInfo[];
}

export interface SyntheticImage {
  repository: string;
  tag: string;
  /** Digest of the top manifest (the index / manifest list for multi-platform images). */
  digest: string;
  mediaType: string;
  size: number;
  /** The exact bytes of the top manifest. */
  manifest: Buffer;
  /** Multi-platform images: one per platform, in the index's order. */
  children?: SyntheticManifest[];
  /** Every config and layer blob of the image (all platforms), each once. */
  blobs: BlobInfo[];
}

export interface ImageSpec {
  repository: string;
  tag: string;
  /** Total number of layers, the shared base layers included. */
  layers: number;
  /** Size in bytes of the random file in each non-base layer (the blob is ~1.6 KB bigger). */
  layerSize: number;
  /** The first N layers are the same blobs in every image (per platform). */
  sharedBaseLayers?: number;
  /** e.g. ['linux/amd64', 'linux/arm64/v8']: an OCI index / Docker manifest list. Omitted: one linux/amd64 manifest. */
  platforms?: string[];
  format?: 'oci' | 'docker';
}

export interface GenerateOptions {
  seed: number;
  images: ImageSpec[];
  /** Size of the random file in each shared base layer (default 64 KiB). */
  baseLayerSize?: number;
}

type BlobSource = { kind: 'bytes'; bytes: Buffer } | { kind: 'layer'; key: string; payloadSize: number };

/** Where each generated blob's bytes come from, for pushImages() and openBlob(). */
const sources = new WeakMap<SyntheticImage, Map<string, BlobSource>>();

// ---------------------------------------------------------------------------------------------
// Layer bytes: AES-128-CTR keystream (deterministic, incompressible) in a one-file ustar
// archive, wrapped in gzip with stored (uncompressed) deflate blocks.

const CHUNK = 60 * 1024; // < 65535, the stored-block limit

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, s: string) => h.write(s, off, len, 'latin1');
  const oct = (off: number, len: number, n: number) => put(off, len, n.toString(8).padStart(len - 1, '0') + '\0');
  put(0, 100, name);
  oct(100, 8, 0o644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, size);
  oct(136, 12, 0);
  put(148, 8, '        ');
  put(156, 1, '0');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(265, 32, 'root');
  put(297, 32, 'root');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** The uncompressed tar of a layer, in chunks of at most CHUNK bytes. */
function* tarChunks(key: string, payloadSize: number): Generator<Buffer> {
  if (payloadSize > 8 * 1024 ** 3 - 1) throw new Error('layerSize must be < 8 GiB');
  const name = `airlock-fixture/${crypto.createHash('sha256').update(key).digest('hex').slice(0, 16)}.bin`;
  yield tarHeader(name, payloadSize);
  const seed = crypto.createHash('sha256').update(`layer:${key}`).digest();
  const cipher = crypto.createCipheriv('aes-128-ctr', seed.subarray(0, 16), seed.subarray(16, 32));
  const zeros = Buffer.alloc(CHUNK);
  for (let left = payloadSize; left > 0; left -= CHUNK) {
    yield cipher.update(zeros.subarray(0, Math.min(CHUNK, left)));
  }
  const pad = (512 - (payloadSize % 512)) % 512;
  yield Buffer.alloc(pad + 1024); // end-of-archive: two zero blocks
}

/** gzip with stored deflate blocks around tarChunks(); fully deterministic. `onTar` sees the tar bytes. */
function* layerChunks(key: string, payloadSize: number, onTar?: (b: Buffer) => void): Generator<Buffer> {
  // magic, CM=deflate, no flags, mtime 0, XFL 0, OS 255 (unknown)
  yield Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  let crc = 0;
  let isize = 0;
  for (const tar of tarChunks(key, payloadSize)) {
    onTar?.(tar);
    crc = zlib.crc32(tar, crc);
    isize = (isize + tar.length) >>> 0;
    for (let off = 0; off < tar.length; off += 65535) {
      const part = tar.subarray(off, off + 65535);
      const hdr = Buffer.alloc(5);
      hdr[0] = 0; // BFINAL=0, BTYPE=00 (stored), rest of the byte is padding
      hdr.writeUInt16LE(part.length, 1);
      hdr.writeUInt16LE(~part.length & 0xffff, 3);
      yield hdr;
      yield part;
    }
  }
  const end = Buffer.alloc(13);
  end.set([1, 0, 0, 0xff, 0xff], 0); // final empty stored block
  end.writeUInt32LE(crc >>> 0, 5);
  end.writeUInt32LE(isize, 9);
  yield end;
}

async function hashLayer(key: string, payloadSize: number): Promise<{ digest: string; diffId: string; size: number }> {
  const gz = crypto.createHash('sha256');
  const tar = crypto.createHash('sha256');
  let size = 0;
  let sinceYield = 0;
  for (const b of layerChunks(key, payloadSize, (t) => tar.update(t))) {
    gz.update(b);
    size += b.length;
    sinceYield += b.length;
    if (sinceYield > 8 * 1024 * 1024) {
      sinceYield = 0;
      await new Promise((r) => setImmediate(r)); // let servers in this process breathe
    }
  }
  return { digest: `sha256:${gz.digest('hex')}`, diffId: `sha256:${tar.digest('hex')}`, size };
}

const sha256 = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

function parsePlatform(p: string): Platform {
  const [os, architecture, variant] = p.split('/');
  if (!os || !architecture) throw new Error(`bad platform ${p}`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

// ---------------------------------------------------------------------------------------------

/**
 * Build the images' configs and manifests and hash their layers (streaming). Deterministic for
 * a given seed and spec. Layer bytes are not kept: pushImages() and openBlob() regenerate them.
 */
export async function generateImages(opts: GenerateOptions): Promise<SyntheticImage[]> {
  const layerCache = new Map<string, { digest: string; diffId: string; size: number }>();
  const baseSize = opts.baseLayerSize ?? 64 * 1024;

  const out: SyntheticImage[] = [];
  for (const spec of opts.images) {
    const format = spec.format ?? 'oci';
    const M =
      format === 'oci'
        ? { manifest: MEDIA.ociManifest, index: MEDIA.ociIndex, config: MEDIA.ociConfig, layer: MEDIA.ociLayer }
        : { manifest: MEDIA.dockerManifest, index: MEDIA.dockerList, config: MEDIA.dockerConfig, layer: MEDIA.dockerLayer };
    const shared = spec.sharedBaseLayers ?? 0;
    if (shared > spec.layers) throw new Error(`${spec.repository}: sharedBaseLayers > layers`);
    const src = new Map<string, BlobSource>();
    const allBlobs = new Map<string, BlobInfo>();

    const buildManifest = async (platform: Platform): Promise<SyntheticManifest> => {
      const plat = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
      const layers: (BlobInfo & { diffId: string })[] = [];
      for (let i = 0; i < spec.layers; i++) {
        const base = i < shared;
        const key = base
          ? `${opts.seed}|base|${plat}|${i}|${baseSize}`
          : `${opts.seed}|${spec.repository}:${spec.tag}|${plat}|${i}|${spec.layerSize}`;
        const payloadSize = base ? baseSize : spec.layerSize;
        let h = layerCache.get(key);
        if (!h) {
          h = await hashLayer(key, payloadSize);
          layerCache.set(key, h);
        }
        layers.push({ digest: h.digest, size: h.size, mediaType: M.layer, diffId: h.diffId });
        src.set(h.digest, { kind: 'layer', key, payloadSize });
      }
      const config = Buffer.from(
        JSON.stringify({
          created: '2024-01-01T00:00:00Z',
          architecture: platform.architecture,
          os: platform.os,
          ...(platform.variant ? { variant: platform.variant } : {}),
          config: {
            Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
            Cmd: ['/bin/sh'],
            Labels: { 'dev.airlock.fixture': `${spec.repository}:${spec.tag}`, 'dev.airlock.seed': String(opts.seed) },
          },
          rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
          history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `airlock fixture layer ${i}` })),
        }),
      );
      const configDesc: BlobInfo = { digest: sha256(config), size: config.length, mediaType: M.config };
      src.set(configDesc.digest, { kind: 'bytes', bytes: config });
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: M.manifest,
          config: { mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
          layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
        }),
      );
      const blobs: BlobInfo[] = [configDesc, ...layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType }))];
      for (const b of blobs) allBlobs.set(b.digest, b);
      return { digest: sha256(manifest), mediaType: M.manifest, size: manifest.length, platform, manifest, blobs };
    };

    let image: SyntheticImage;
    if (!spec.platforms) {
      const m = await buildManifest({ os: 'linux', architecture: 'amd64' });
      image = { repository: spec.repository, tag: spec.tag, digest: m.digest, mediaType: m.mediaType, size: m.size, manifest: m.manifest, blobs: [...allBlobs.values()] };
    } else {
      const children: SyntheticManifest[] = [];
      for (const p of spec.platforms) children.push(await buildManifest(parsePlatform(p)));
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: M.index,
          manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size, platform: c.platform })),
        }),
      );
      image = {
        repository: spec.repository,
        tag: spec.tag,
        digest: sha256(index),
        mediaType: M.index,
        size: index.length,
        manifest: index,
        children,
        blobs: [...allBlobs.values()],
      };
    }
    sources.set(image, src);
    out.push(image);
  }
  return out;
}

/** The bytes of one config or layer blob of a generated image, as a stream. */
export function openBlob(images: SyntheticImage[], digest: string): Readable {
  for (const img of images) {
    const s = sources.get(img)?.get(digest);
    if (s) return s.kind === 'bytes' ? Readable.from([s.bytes]) : Readable.from(layerChunks(s.key, s.payloadSize));
  }
  throw new Error(`openBlob: ${digest} is not a blob of these images`);
}

// ---------------------------------------------------------------------------------------------
// Pushing

export interface PushOptions {
  username?: string;
  password?: string;
  /** PEM path of the CA to trust for an https registry (only this CA is trusted). */
  caFile?: string;
  /** Blob uploads in flight per image (default 4). */
  concurrency?: number;
}

class Pusher {
  private readonly ca?: Buffer;
  private authHeader = new Map<string, string | undefined>(); // per repository

  constructor(
    private readonly base: string,
    private readonly opts: PushOptions,
  ) {
    this.ca = opts.caFile ? fs.readFileSync(opts.caFile) : undefined;
  }

  private fail(what: string, r: HttpResponse): never {
    throw new Error(`${what}: HTTP ${r.status} ${r.body.toString('utf8').slice(0, 500)}`);
  }

  /** Work out the Authorization header for a repository once (GET /v2/, then Basic or a Bearer token). */
  async auth(repo: string): Promise<string | undefined> {
    if (this.authHeader.has(repo)) return this.authHeader.get(repo);
    const { username, password } = this.opts;
    const r = await httpRequest(`${this.base}/v2/`, { ca: this.ca });
    let header: string | undefined;
    if (r.status === 401) {
      const challenge = String(r.headers['www-authenticate'] ?? '');
      if (/^basic/i.test(challenge)) {
        if (username === undefined) throw new Error('registry wants Basic auth; no credentials given');
        header = basicAuth(username, password ?? '');
      } else if (/^bearer/i.test(challenge)) {
        const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
        const tokenUrl = new URL(params.realm);
        if (params.service) tokenUrl.searchParams.set('service', params.service);
        tokenUrl.searchParams.append('scope', `repository:${repo}:pull,push`);
        const t = await httpRequest(tokenUrl, {
          ca: this.ca,
          headers: username !== undefined ? { authorization: basicAuth(username, password ?? '') } : {},
        });
        if (t.status !== 200) this.fail('token request', t);
        const body = JSON.parse(t.body.toString('utf8')) as { token?: string; access_token?: string };
        header = `Bearer ${body.token ?? body.access_token}`;
      } else {
        this.fail('GET /v2/', r);
      }
    } else if (r.status !== 200) {
      this.fail('GET /v2/', r);
    }
    this.authHeader.set(repo, header);
    return header;
  }

  private async req(repo: string, url: string | URL, o: Parameters<typeof httpRequest>[1] = {}): Promise<HttpResponse> {
    const a = await this.auth(repo);
    return httpRequest(url, { ...o, ca: this.ca, headers: { ...(o.headers ?? {}), ...(a ? { authorization: a } : {}) } });
  }

  async pushBlob(repo: string, blob: BlobInfo, open: () => Readable): Promise<void> {
    const head = await this.req(repo, `${this.base}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
    if (head.status === 200) return;
    const start = await this.req(repo, `${this.base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
    if (start.status !== 202 || !start.headers.location) this.fail(`start upload ${repo}`, start);
    const put = new URL(start.headers.location, `${this.base}/v2/${repo}/blobs/uploads/`);
    put.searchParams.set('digest', blob.digest);
    const done = await this.req(repo, put, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': blob.size },
      body: open(),
    });
    if (done.status !== 201) this.fail(`upload ${repo}@${blob.digest}`, done);
  }

  async pushManifest(repo: string, ref: string, mediaType: string, bytes: Buffer): Promise<void> {
    const r = await this.req(repo, `${this.base}/v2/${repo}/manifests/${ref}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    if (r.status !== 201) this.fail(`put manifest ${repo}:${ref}`, r);
  }
}

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Push generated images to a registry (`http(s)://host:port`) with plain distribution API calls:
 * HEAD to skip blobs already there, POST + monolithic PUT ?digest= for the rest, child manifests
 * by digest, then the top manifest by tag. Handles anonymous, Basic and Bearer-token registries.
 */
export async function pushImages(registryUrl: string, images: SyntheticImage[], opts: PushOptions = {}): Promise<SyntheticImage[]> {
  const pusher = new Pusher(registryUrl.replace(/\/+$/, ''), opts);
  for (const img of images) {
    const src = sources.get(img);
    if (!src) throw new Error(`pushImages: ${img.repository}:${img.tag} was not made by generateImages`);
    await pool(img.blobs, opts.concurrency ?? 4, (b) =>
      pusher.pushBlob(img.repository, b, () => openBlob([img], b.digest)),
    );
    for (const c of img.children ?? []) await pusher.pushManifest(img.repository, c.digest, c.mediaType, c.manifest);
    await pusher.pushManifest(img.repository, img.tag, img.mediaType, img.manifest);
  }
  return images;
}
