#!/usr/bin/env node
/**
 * The floor: the least a registry client must do to move an OCI image layout's
 * images, for the bench to hold airlock against. No airlock code; plain Node and
 * undici. No hashing, no checks, no files written.
 *
 *   node scripts/floor/floor.mjs pull --layout DIR --registry http://HOST:PORT [--jobs 16]
 *     GETs every manifest (each image's and its children's, by digest, in each
 *     image's repository) and every blob once (from the first repository that
 *     holds it) from the registry, discarding the bytes.
 *   node scripts/floor/floor.mjs push --layout DIR --registry http://HOST:PORT [--jobs 16]
 *     into an empty registry: every blob once (POST, then one monolithic PUT of
 *     the file), mounted (POST ?mount=&from=) into every other repository that
 *     needs it, then every child manifest, then every image manifest under its tag.
 *
 * DIR is an OCI image layout (an extracted bundle's oci/) whose index.json names
 * each image by its full reference (org.opencontainers.image.ref.name, e.g.
 * docker.io/harness/ng-manager:1.0); the repository is that name without its
 * registry (charts/NAME:VERSION stays charts/NAME). At most --jobs requests run at once, over
 * keep-alive connections. Prints one JSON line: mode, seconds, requests, bytes.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { URL } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { layout: { type: 'string' }, registry: { type: 'string' }, jobs: { type: 'string', default: '16' } },
});
const mode = positionals[0];
if ((mode !== 'pull' && mode !== 'push') || !args.layout || !args.registry) {
  process.stderr.write('usage: floor.mjs pull|push --layout DIR --registry http://HOST:PORT [--jobs N]\n');
  process.exit(2);
}
const jobs = Number(args.jobs);
const base = args.registry.replace(/\/+$/, '');
const dispatcher = new Agent({ connections: jobs, keepAliveTimeout: 30_000, pipelining: 1 });
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

const blobPath = (digest) => join(args.layout, 'blobs', ...digest.split(':'));

/** `registry/repo/path:tag` (or `@digest`) -> { repository, tag } */
function parseRefName(name) {
  const at = name.indexOf('@');
  const withoutDigest = at >= 0 ? name.slice(0, at) : name;
  const colon = withoutDigest.lastIndexOf(':');
  const hasTag = colon > withoutDigest.lastIndexOf('/');
  const path = hasTag ? withoutDigest.slice(0, colon) : withoutDigest;
  // The first component is a registry when it looks like a host (docker's rule); `charts/NAME` keeps it.
  const first = path.split('/')[0];
  const isHost = path.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return { repository: isHost ? path.slice(first.length + 1) : path, tag: hasTag ? withoutDigest.slice(colon + 1) : undefined };
}

/**
 * What to move, read from the layout: per repository, its manifests (children
 * first) and blobs. Manifests and blobs absent from the layout are left out.
 */
async function plan() {
  const index = JSON.parse(await readFile(join(args.layout, 'index.json'), 'utf8'));
  const images = [];
  const readManifest = async (digest) => {
    try {
      return JSON.parse(await readFile(blobPath(digest), 'utf8'));
    } catch {
      return undefined;
    }
  };
  for (const entry of index.manifests) {
    const name = entry.annotations?.['org.opencontainers.image.ref.name'];
    if (!name) continue;
    const { repository, tag } = parseRefName(name);
    const top = { digest: entry.digest, mediaType: entry.mediaType, size: entry.size };
    const children = [];
    const blobs = [];
    const addBlobs = (m) => {
      if (m.config) blobs.push(m.config);
      for (const l of m.layers ?? []) blobs.push(l);
    };
    const body = await readManifest(entry.digest);
    if (!body) continue;
    if (INDEX_TYPES.has(entry.mediaType)) {
      for (const c of body.manifests ?? []) {
        const child = await readManifest(c.digest);
        if (!child) continue;
        children.push({ digest: c.digest, mediaType: c.mediaType, size: c.size });
        addBlobs(child);
      }
    } else addBlobs(body);
    images.push({ repository, tag: tag ?? entry.digest, top, children, blobs });
  }
  return images;
}

/** Run fn over items, at most `jobs` at once. */
async function pool(items, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
}

let requests = 0;
let bytes = 0;

async function send(method, url, { headers, body, expect }) {
  requests++;
  const res = await request(url.startsWith('http') ? url : base + url, { method, headers, body, dispatcher });
  let received = 0;
  for await (const chunk of res.body) received += chunk.length;
  if (!expect.includes(res.statusCode)) throw new Error(`${method} ${url}: HTTP ${res.statusCode}`);
  return { res, received };
}

async function pull(images) {
  const manifests = [];
  const blobs = new Map();
  for (const img of images) {
    for (const m of [...img.children, img.top]) manifests.push({ repository: img.repository, ...m });
    for (const b of img.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, { repository: img.repository, ...b });
  }
  const accept = [...INDEX_TYPES, 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');
  const gets = [
    ...manifests.map((m) => ({ url: `/v2/${m.repository}/manifests/${m.digest}`, headers: { accept } })),
    ...[...blobs.values()].map((b) => ({ url: `/v2/${b.repository}/blobs/${b.digest}`, headers: {} })),
  ];
  await pool(gets, async (g) => {
    // Read `bytes` after the await: `bytes += await ...` would add to the value from before it and lose the others' counts.
    const { received } = await send('GET', g.url, { headers: g.headers, expect: [200] });
    bytes += received;
  });
}

async function push(images) {
  // Each blob: uploaded once into the first repository that needs it, then mounted into the others.
  const owners = new Map();
  for (const img of images) {
    for (const b of img.blobs) {
      const o = owners.get(b.digest) ?? owners.set(b.digest, { blob: b, repositories: new Set() }).get(b.digest);
      o.repositories.add(img.repository);
    }
  }
  const mounts = [];
  await pool([...owners.values()], async ({ blob, repositories }) => {
    const [first, ...others] = repositories;
    const started = await send('POST', `/v2/${first}/blobs/uploads/`, { headers: {}, expect: [202] });
    const location = new URL(started.res.headers.location, base + '/');
    location.searchParams.set('digest', blob.digest);
    await send('PUT', location.toString(), {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
      body: createReadStream(blobPath(blob.digest)),
      expect: [201],
    });
    bytes += blob.size;
    for (const repo of others) mounts.push({ repo, from: first, digest: blob.digest });
  });
  await pool(mounts, (m) => send('POST', `/v2/${m.repo}/blobs/uploads/?mount=${m.digest}&from=${m.from}`, { headers: {}, expect: [201] }));

  // Then manifests: children (by digest) before the manifests that list them (by tag).
  const putManifest = async (repository, reference, m) => {
    const body = await readFile(blobPath(m.digest));
    await send('PUT', `/v2/${repository}/manifests/${reference}`, { headers: { 'content-type': m.mediaType }, body, expect: [201] });
    bytes += body.length;
  };
  await pool(
    images.flatMap((img) => img.children.map((c) => ({ img, c }))),
    ({ img, c }) => putManifest(img.repository, c.digest, c),
  );
  await pool(images, (img) => putManifest(img.repository, img.tag, img.top));
}

const started = performance.now();
const images = await plan();
await (mode === 'pull' ? pull(images) : push(images));
await dispatcher.close();
const seconds = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({ mode, seconds, images: images.length, requests, bytes }) + '\n');
