import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RemoteError, UsageError, VerificationError } from '../shared/cli/errors.ts';
import type { Logger } from '../shared/cli/log.ts';
import { onShutdown } from '../shared/cli/main.ts';
import { formatBytes, formatRate, Progress, progressListener } from '../shared/cli/progress.ts';
import { loaderBundleFile } from './loader-file.ts';
import { BundleWriter, type BundleContent, type BundleFile } from '../shared/bundle/writer.ts';
import type { BundleImage } from '../shared/bundle/format.ts';
import { copyGraph, CopySession, planGraph, type GraphPlan } from '../shared/copy.ts';
import type { Descriptor, Platform } from '../shared/oci/descriptor.ts';
import { mappingConflicts } from '../shared/oci/mapping.ts';
import { isIndex, MediaType } from '../shared/oci/mediatype.ts';
import { formatPlatform, parsePlatform, requireWantedPlatform } from '../shared/oci/platform.ts';
import { RegistryClient } from '../shared/registry/client.ts';
import { credentialsFor, onePerHost } from '../shared/registry/credentials.ts';
import { checkPullBudget, RateLimitTracker } from '../shared/registry/ratelimit.ts';
import { summarizedTransport } from '../shared/registry/access.ts';
import { PreloadedContent } from '../shared/store/preloaded.ts';
import { RemoteStore } from '../shared/store/remote.ts';
import { decryptPrivateKey, signBlob } from '../shared/sign/keys.ts';
import { keyPassword } from '../shared/sign/password.ts';
import { discoverImages } from '../shared/manifests/discover.ts';
import { readYamlText } from '../shared/yaml/bounded.ts';
import { foundToSources, mergeImages, readImageList, type WantedImage } from './images.ts';
import { fetchManifests, type FetchManifestsOptions } from './sources/manifests.ts';
import { fetchGitTree } from './sources/git.ts';
import { redactUrl } from './sources/http-download.ts';
import { readSpec } from './spec.ts';
import { chartBundleContent, chartImageSources, chartsByImage, copyCharts, prepareCharts, type PackedChart } from './charts.ts';
import { findHelm, HELM_INSTALL_HINT } from './helm/helm.ts';
import { copySignatures, discoverSignatures, signatureRefs, type FoundSignatures } from './sources/signatures.ts';
import { applySince, readSinceBase, type SinceBase } from './since.ts';
import { imageRegistryEndpoints, specEndpoints } from './preflight.ts';
import { preflight } from '../shared/net/preflight.ts';
import { PhaseTimes } from '../shared/cli/phase-times.ts';

/**
 * airlock pack: spec -> manifests + images -> one signed bundle.
 *
 * 1. Read the spec, the key (the password is asked for before any network
 *    work) and the manifests; fetch and render the charts (charts.ts);
 *    gather the images (explicit, lists, discovered in manifests and charts).
 * 2. Resolve every image to a digest and read its manifests (planGraph),
 *    failing fast with the full list of missing or refused images before any
 *    layer is downloaded.
 * 3. Lay out and sign the bundle (BundleWriter), then one copyGraph per image
 *    into it under one session: every blob downloads once, in parallel,
 *    straight into its slot. Commit renames the finished file into place.
 */
export interface PackOptions {
  spec: string;
  output: string;
  key: string;
  platforms?: string[];
  mirrors?: string[];
  jobs?: number;
  caFile?: string;
  plainHttp?: boolean;
  /** What git and s3 manifest sources need: git auth, SSH key and known_hosts, the S3 endpoint. */
  sources?: Pick<FetchManifestsOptions, 'gitUsername' | 'gitPasswordEnv' | 'sshKey' | 'knownHosts' | 's3Endpoint'>;
  /** --helm: the helm binary that renders charts (default: helm on PATH). */
  helm?: string;
  /** --since: an inventory, an older bundle or its airlock.json; the bundle is then a delta against it. */
  since?: string;
  /** --include-loader: the one-file enclave loader to carry as the bundle's first entry (packer/loader-file.ts). */
  loaderFile?: string;
  json?: boolean;
  /** --with-signatures: also pack each image's cosign signatures, attestations, SBOMs and OCI 1.1 referrers. */
  withSignatures?: boolean;
  logger: Logger;
  /** Pack time (tests); default now. */
  now?: Date;
}

export interface PackSummary {
  output: string;
  name: string;
  version: string;
  images: number;
  charts: number;
  manifestFiles: number;
  uniqueBlobs: number;
  /** Bytes of unique blobs and manifests (what the registry side needs). */
  contentBytes: number;
  /** Bytes the images reference in total, shared layers counted once per image. */
  referencedBytes: number;
  /** referencedBytes - contentBytes: what deduplication saved. */
  savedBytes: number;
  bundleBytes: number;
  seconds: number;
  /** --with-signatures: images that had any, and the signature manifests packed. */
  signatures?: { images: number; manifests: number };
  /** A delta (--since): the blobs left out because the enclave holds them. */
  delta?: { blobsLeftOut: number; bytesLeftOut: number; since?: { name: string; version: string } };
  /** sha256 (hex) of the one-file loader carried as airlock-loader.mjs (--include-loader). */
  loaderSha256?: string;
  /** Wall seconds of each phase: startup, prepare, resolve, layout, download, sync (docs/json-output.md). */
  phases: Record<string, number>;
}

interface PlannedImage {
  wanted: WantedImage;
  source: RemoteStore;
  /** The root as the registry has it (before platform filtering). */
  rootRead: Descriptor;
  plan: GraphPlan;
  platforms: string[];
}

export async function pack(options: PackOptions): Promise<PackSummary> {
  const started = performance.now();
  const phases = new PhaseTimes();
  // Node's start, module loading and argument parsing, until this call (performance.now() counts from the process start).
  phases.record('startup', 0);
  phases.start('prepare');
  const { logger } = options;
  const spec = await readSpec(options.spec);
  // Charts need the real helm: found (or refused) before any network work.
  const helm =
    spec.charts.length > 0
      ? await findHelm(options.helm).catch((err: unknown) => {
          if (err instanceof UsageError) throw new UsageError(`${spec.file}: the spec has charts: ${err.message}`, { hint: HELM_INSTALL_HINT });
          throw err;
        })
      : undefined;
  const platforms: Platform[] = options.platforms?.length ? options.platforms.map((p) => parsePlatform(p)) : spec.platforms;
  const mirrors = parseMirrors(options.mirrors ?? []);
  const output = resolve(options.output);

  const keyPem = await readFile(options.key, 'utf8').catch((err: Error) => {
    throw new UsageError(`cannot read the signing key ${options.key}: ${err.message}`);
  });
  // The key is derived off the main thread (a few hundred ms of scrypt) while the local inputs are read;
  // a wrong password still stops the run before any network work.
  const decrypting = decryptPrivateKey(keyPem, await keyPassword({ confirm: false }), options.key);
  decrypting.catch(() => undefined);
  const base: SinceBase | undefined = options.since !== undefined ? await readSinceBase(options.since) : undefined;
  const loader = options.loaderFile === undefined ? [] : [await loaderBundleFile(options.loaderFile)];
  // Every source answers once before any work: one clear error instead of a page of retries.
  const privateKey = await decrypting;
  const registryOptions = { mirrors, plainHttp: options.plainHttp, credentials: onePerHost((host) => credentialsFor(host, { warn: (m) => logger.warn(m) })) };
  await preflight(specEndpoints(spec, { registry: registryOptions, git: gitAuthOf(options.sources), s3Endpoint: options.sources?.s3Endpoint }), { caFile: options.caFile });

  const workDir = await mkdtemp(join(tmpdir(), 'airlock-pack-'));
  const removeWorkDir = onShutdown(() => rm(workDir, { recursive: true, force: true }));
  const net = summarizedTransport(options.caFile, logger);
  const { transport, retries } = net;
  const progress = new Progress({ json: options.json, summaryLine: false });
  logger.attachStatusLine(progress);
  let writer: BundleWriter | undefined;
  const abortWriter = onShutdown(() => writer?.abort());
  try {
    const clients = new Map<string, RegistryClient>();
    const rateLimits = new RateLimitTracker();
    const clientFor = (registry: string): RegistryClient => {
      let c = clients.get(registry);
      if (!c) {
        c = new RegistryClient(registry, transport, {
          mirrors,
          plainHttp: options.plainHttp,
          credentials: registryOptions.credentials,
          rateLimits,
        });
        clients.set(registry, c);
      }
      return c;
    };

    // 1. Manifests, charts and the image list.
    const manifestFiles: BundleFile[] = await fetchManifests(spec.manifests, {
      ...options.sources,
      workDir,
      transport,
      caFile: options.caFile,
      onLog: (m) => logger.warn(m),
      onResolved: (r) => logger.info(`manifests[${r.index}].git ${r.url} ${r.ref}: commit ${r.commit}`),
    });
    const charts = await prepareCharts({
      charts: spec.charts,
      helm: helm!,
      workDir,
      transport,
      ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
      registryClient: clientFor,
      manifestFolders: new Set(manifestFiles.map((f) => f.path.split('/')[1]!)),
      logger,
      fetchGitFolder: async (git, into) => {
        await mkdir(into, { recursive: true });
        const tree = await fetchGitTree(git, join(into, 'tree'), {
          workDir: into,
          transport,
          username: options.sources?.gitUsername,
          passwordEnv: options.sources?.gitPasswordEnv,
          sshKey: options.sources?.sshKey,
          knownHosts: options.sources?.knownHosts,
          label: `charts git ${redactUrl(git.url)}`,
          onLog: (m) => logger.warn(m),
        });
        logger.info(`chart from git ${redactUrl(git.url)} ${tree.ref}: commit ${tree.commit}`);
        return { dir: tree.dir, commit: tree.commit };
      },
    });
    const chartContent = chartBundleContent(charts);
    const files = [...manifestFiles, ...chartContent.files];
    const wanted = await wantedImages(
      spec.images.map((i) => ({ text: i.text, where: `${spec.file}:${i.line}` })),
      spec.imageLists,
      spec.discoverImages ? manifestFiles : [],
      spec.discoverImages ? chartImageSources(charts) : [],
    );
    if (!spec.discoverImages) warnUnpackedChartImages(charts, wanted, logger);
    if (wanted.length === 0 && files.length === 0) {
      throw new UsageError(`${spec.file}: nothing to pack: no images, image lists, discovered images, manifests or charts`);
    }
    const conflicts = mappingConflicts(wanted.map((w) => w.reference));
    if (conflicts.length > 0) {
      throw new UsageError(
        `${conflicts.length} enclave repositor${conflicts.length === 1 ? 'y' : 'ies'} would receive images from more than one source registry:\n` +
          conflicts.map((c) => `  ${c.repository} <- ${c.sources.join(', ')}`).join('\n'),
        { hint: 'the enclave name drops the source registry; pack one of each pair in another bundle, or mirror it under another path' },
      );
    }

    // 2. Resolve and plan every image before downloading any layer; each source registry (or its mirror) answers once first.
    phases.start('resolve');
    await preflight(imageRegistryEndpoints(wanted.map((w) => w.reference), registryOptions), { caFile: options.caFile });
    const session = new CopySession({ concurrency: options.jobs ?? 8, onEvent: progressListener(progress) });
    progress.phase('resolve', { items: wanted.length });
    // Registries with a pull quota (Docker Hub): refuse now, with the numbers, a plan that would exceed it.
    await checkPullBudget(wanted.map((w) => ({ client: clientFor(w.reference.registry), repository: w.reference.repository, reference: w.reference.digest ?? w.reference.tag! })), { tracker: rateLimits, platforms: platforms.length });
    const planned = await planAll(wanted, clientFor, session, platforms, () => progress.advance(0, 1));
    const signatures = options.withSignatures ? await findSignatures(planned, session, logger) : undefined;

    // 3. Lay out, sign and fill the bundle.
    phases.start('layout');
    const full = bundleContent(spec.name, spec.version, options.now ?? new Date(), platforms, planned, [...loader, ...files], charts, chartContent, signatures);
    const { referencedBytes } = full;
    // A delta leaves out the blobs the base holds: they are neither laid out nor downloaded.
    const { content, leftOut } = base ? applySince(full.content, base, blobUsers(planned, charts)) : { content: full.content, leftOut: undefined };
    const contentBytes = [...content.blobs, ...content.manifests].reduce((a, d) => a + d.size, 0);
    writer = await BundleWriter.create(output, content, (bytes) => signBlob(bytes, privateKey));
    const blobBytes = content.blobs.reduce((a, d) => a + d.size, 0);
    const manifestCount = files.filter((f) => f.path.startsWith('manifests/')).length;
    logger.info(
      `packing ${planned.length} images (${content.blobs.length} unique blobs, ${formatBytes(blobBytes)}), ${charts.length} chart${charts.length === 1 ? '' : 's'} and ${manifestCount} manifest files into ${options.output}`,
    );
    // Left-out blobs count as done when copyGraph skips them.
    progress.phase('download', { bytes: blobBytes + (leftOut?.bytesLeftOut ?? 0), items: planned.length + charts.length });
    for (const f of [...loader, ...files]) await writer.writeFile(f);
    phases.start('download');
    const bundle = writer;
    // The first failure stops the rest: the bundle is dropped anyway.
    await session.all(planned, async (p) => {
      await copyGraph(new PreloadedContent(p.source, p.plan.read), bundle, p.rootRead, { session, platforms: platforms.length > 0 ? platforms : undefined });
      progress.advance(0, 1);
    });
    if (signatures) await copySignatures(signatures, bundle, session);
    await copyCharts(charts, bundle, session);
    progress.advance(0, charts.length);
    progress.phase('sync');
    phases.start('sync');
    await writer.commit();
    const seconds = (performance.now() - started) / 1000;
    const summary: PackSummary = {
      output: options.output,
      name: spec.name,
      version: spec.version,
      images: planned.length,
      charts: charts.length,
      manifestFiles: manifestCount,
      uniqueBlobs: content.blobs.length,
      contentBytes,
      referencedBytes,
      savedBytes: referencedBytes - contentBytes,
      bundleBytes: writer.size,
      seconds: Number(seconds.toFixed(3)),
      ...(signatures ? { signatures: { images: signatures.byImage.size, manifests: [...signatures.byImage.values()].reduce((a, f) => a + f.length, 0) } } : {}),
      ...(leftOut ? { delta: leftOut } : {}),
      ...(loader[0] && { loaderSha256: loader[0].sha256 }),
      phases: phases.finish(),
    };
    progress.done();
    return summary;
  } catch (err) {
    progress.done();
    await writer?.abort();
    throw err;
  } finally {
    retries.close();
    logger.attachStatusLine(undefined);
    abortWriter();
    removeWorkDir();
    await rm(workDir, { recursive: true, force: true });
    await net.close();
  }
}

function gitAuthOf(sources: PackOptions['sources']) {
  return { username: sources?.gitUsername, passwordEnv: sources?.gitPasswordEnv, sshKey: sources?.sshKey, knownHosts: sources?.knownHosts };
}

export function formatPackSummary(s: PackSummary): string {
  return [
    `packed ${s.output}: ${s.name} ${s.version}`,
    `  images          ${s.images}`,
    `  charts          ${s.charts}`,
    `  manifest files  ${s.manifestFiles}`,
    `  unique blobs    ${s.uniqueBlobs} (${formatBytes(s.contentBytes)} with manifests)`,
    `  saved by dedup  ${formatBytes(s.savedBytes)} of ${formatBytes(s.referencedBytes)} referenced`,
    ...(s.signatures ? [`  signatures      ${s.signatures.manifests} manifests for ${s.signatures.images} of ${s.images} images`] : []),
    ...(s.delta
      ? [`  left out        ${s.delta.blobsLeftOut} blobs (${formatBytes(s.delta.bytesLeftOut)}) the enclave holds${s.delta.since ? ` since ${s.delta.since.name} ${s.delta.since.version}` : ''}: a delta bundle`]
      : []),
    `  bundle          ${formatBytes(s.bundleBytes)}`,
    `  time            ${s.seconds.toFixed(1)} s (${formatRate(s.contentBytes / Math.max(s.seconds, 1e-6))})`,
    ...(s.loaderSha256 ? [`  loader          airlock-loader.mjs, sha256 ${s.loaderSha256}`] : []),
  ].join('\n');
}

/** REGISTRY=URL pairs of --registry-mirror. */
export function parseMirrors(values: string[]): Record<string, string> {
  const mirrors: Record<string, string> = {};
  for (const v of values) {
    const m = /^([^=\s]+)=(https?:\/\/\S+)$/.exec(v);
    if (!m) throw new UsageError(`--registry-mirror ${v}: expected REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000`);
    mirrors[m[1]!] = m[2]!;
  }
  return mirrors;
}

async function wantedImages(
  explicit: { text: string; where: string }[],
  imageLists: string[],
  discoverIn: BundleFile[],
  fromCharts: { text: string; where: string }[],
): Promise<WantedImage[]> {
  const sources = [...explicit];
  for (const list of imageLists) sources.push(...(await readImageList(list)));
  for (const f of discoverIn) {
    if (!/\.ya?ml$/i.test(f.path)) continue;
    sources.push(...foundToSources(discoverImages(await readYamlText(f.file, f.path, 'source'), f.path)));
  }
  // The charts' rendered output was searched as it was rendered (and their image annotations read).
  sources.push(...fromCharts.map((c) => ({ text: c.text, where: c.where })));
  return mergeImages(sources);
}

/**
 * discoverImages off: the bundle carries only the images the spec lists, as
 * for manifests. Images the charts deploy that are not among them are named,
 * since the enclave will not have them.
 */
function warnUnpackedChartImages(charts: PackedChart[], wanted: WantedImage[], logger: Logger): void {
  const packed = new Set(wanted.map((w) => w.canonical));
  const missing = [...chartsByImage(charts)].filter(([ref]) => !packed.has(ref));
  if (missing.length === 0) return;
  logger.warn(
    `${missing.length} image(s) the charts deploy are not in images or imageLists and discoverImages is off, so they are not packed: ` +
      missing.map(([ref, releases]) => `${ref} (${releases.join(', ')})`).join(', ') +
      '; list them, or set discoverImages: true',
  );
}

/**
 * Resolve and plan every image, all of them even when some fail, so that one
 * run names every missing, refused or unusable image.
 */
async function planAll(
  wanted: WantedImage[],
  clientFor: (registry: string) => RegistryClient,
  session: CopySession,
  platforms: Platform[],
  onPlanned: () => void,
): Promise<PlannedImage[]> {
  const failures: { image: WantedImage; error: unknown }[] = [];
  const planned = await Promise.all(
    wanted.map(async (image): Promise<PlannedImage | undefined> => {
      const ref = image.reference;
      const source = new RemoteStore(clientFor(ref.registry), ref.repository);
      try {
        // One GET resolves the reference and reads its manifest; planGraph reuses the bytes.
        const root = await session.limit(() => source.fetchReference(ref.digest ?? ref.tag!));
        const rootRead = root.descriptor;
        const plan = await planGraph(new PreloadedContent(source, new Map([[rootRead.digest, root.bytes]])), rootRead, {
          session,
          platforms: platforms.length > 0 ? platforms : undefined,
        });
        const imagePlatforms = await platformsOf(source, plan, session, platforms);
        onPlanned();
        return { wanted: image, source, rootRead, plan, platforms: imagePlatforms };
      } catch (error) {
        failures.push({ image, error });
        return undefined;
      }
    }),
  );
  if (failures.length === 0) return planned as PlannedImage[];
  const order = new Map(wanted.map((w, i) => [w, i]));
  failures.sort((a, b) => order.get(a.image)! - order.get(b.image)!);
  const lines = failures.map(({ image, error }) => `  ${image.canonical}: ${messageOf(error)} (wanted by ${image.from.slice(0, 2).join(', ')}${image.from.length > 2 ? ', ...' : ''})`);
  const message = `${failures.length} of ${wanted.length} images cannot be packed; nothing was downloaded:\n${lines.join('\n')}`;
  const first = failures[0]!.error;
  if (failures.every((f) => f.error instanceof UsageError)) throw new UsageError(message, { hint: hintOf(first) });
  if (failures.every((f) => f.error instanceof VerificationError)) throw new VerificationError(message, { hint: hintOf(first) });
  const hints = new Set(failures.map((f) => hintOf(f.error)));
  throw new RemoteError(message, {
    hint: hints.size === 1 && hintOf(first) !== undefined ? hintOf(first) : 'check each reference, that the registry is reachable, and the credentials (--registry-mirror, ~/.docker/config.json)',
  });
}

/** --with-signatures: what signs each image; the index signatures that platform filtering leaves behind are named. */
async function findSignatures(planned: PlannedImage[], session: CopySession, logger: Logger): Promise<FoundSignatures> {
  const found = await discoverSignatures(
    planned.map((p) => ({ canonical: p.wanted.canonical, source: p.source, rootRead: p.rootRead, plan: p.plan })),
    session,
    logger,
  );
  if (found.filteredIndexes.length > 0) {
    logger.warn(
      `${found.filteredIndexes.length} image index(es) were cut to the requested platforms, so they have a new digest and signatures of the whole index do not apply; their platforms' signatures are packed: ${found.filteredIndexes.join(', ')}`,
    );
  }
  return found;
}

function messageOf(err: unknown): string {
  return (err as Error).message.split('\n')[0]!;
}

function hintOf(err: unknown): string | undefined {
  return (err as { hint?: string }).hint;
}

const IMAGE_CONFIGS = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** The platforms an image provides: its index's (as filtered), else its config's os/architecture, which must be a wanted one. */
async function platformsOf(source: RemoteStore, plan: GraphPlan, session: CopySession, wanted: Platform[]): Promise<string[]> {
  const root = plan.root;
  if (isIndex(root.descriptor.mediaType)) {
    return root.children.filter((c) => c.platform).map((c) => formatPlatform(c.platform!));
  }
  const config = root.children[0];
  if (!config || !IMAGE_CONFIGS.has(config.mediaType) || config.size > MAX_CONFIG_BYTES) return [];
  const bytes = await session.limit(async () => {
    const parts: Buffer[] = [];
    for await (const chunk of (await source.fetch(config)) as AsyncIterable<Buffer>) parts.push(chunk);
    return Buffer.concat(parts);
  });
  // Kept: the download phase writes it from memory instead of fetching it again.
  plan.read.set(config.digest, bytes);
  let c: { os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    c = JSON.parse(bytes.toString('utf8')) as typeof c;
  } catch {
    return [];
  }
  if (typeof c.os !== 'string' || typeof c.architecture !== 'string' || !c.os || !c.architecture) return [];
  const offered: Platform = { os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) };
  requireWantedPlatform(offered, wanted);
  return [formatPlatform(offered)];
}

/** Who uses each blob: an image's source repository (HOST/PATH), a chart's charts/NAME. */
function blobUsers(planned: PlannedImage[], charts: PackedChart[]): { repository: string; blobs: Descriptor[] }[] {
  return [
    ...planned.map((p) => ({ repository: `${p.wanted.reference.registry}/${p.wanted.reference.repository}`, blobs: p.plan.blobs })),
    ...charts.map((c) => ({ repository: `charts/${c.fetched.name}`, blobs: [c.fetched.artifact.config, ...c.fetched.artifact.layers].map((b) => b.descriptor) })),
  ];
}

/** What goes into the bundle: every image's blobs and manifests once, in DESIGN.md §2 order. */
function bundleContent(
  name: string,
  version: string,
  created: Date,
  platforms: Platform[],
  planned: PlannedImage[],
  files: BundleFile[],
  charts: PackedChart[],
  chartContent: ReturnType<typeof chartBundleContent>,
  signatures?: FoundSignatures,
): { content: BundleContent; referencedBytes: number } {
  const blobs = new Map<string, Descriptor>();
  const manifests = new Map<string, Descriptor>();
  const indexes = new Map<string, Descriptor>();
  let referencedBytes = 0;
  const signaturePlans = [...(signatures?.byImage.values() ?? [])].flat().map((s) => s.plan);
  for (const p of [...planned.map((i) => i.plan), ...signaturePlans]) {
    for (const b of p.blobs) {
      referencedBytes += b.size;
      if (!blobs.has(b.digest)) blobs.set(b.digest, b);
    }
    for (const m of p.manifests) {
      referencedBytes += m.descriptor.size;
      const group = isIndex(m.descriptor.mediaType) ? indexes : manifests;
      if (!group.has(m.descriptor.digest)) group.set(m.descriptor.digest, m.descriptor);
    }
  }
  for (const b of chartContent.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
  for (const m of chartContent.manifests) if (!manifests.has(m.digest)) manifests.set(m.digest, m);
  const deployedBy = chartsByImage(charts);
  const images: BundleImage[] = planned.map((p) => ({
    ref: p.wanted.canonical,
    digest: p.plan.root.descriptor.digest,
    mediaType: p.plan.root.descriptor.mediaType,
    ...(p.platforms.length > 0 ? { platforms: p.platforms } : {}),
    ...(deployedBy.has(p.wanted.canonical) ? { charts: deployedBy.get(p.wanted.canonical)! } : {}),
    ...(signatures?.byImage.has(p.wanted.canonical) ? { signatures: signatures.byImage.get(p.wanted.canonical)!.map((f) => f.entry) } : {}),
  }));
  return {
    referencedBytes,
    content: {
      name,
      version,
      created,
      platforms: platforms.map(formatPlatform),
      images,
      charts: chartContent.index,
      files,
      blobs: [...blobs.values()],
      manifests: [...manifests.values(), ...indexes.values()],
      refs: [
        ...planned.map((p) => ({ ref: p.wanted.canonical, descriptor: p.plan.root.descriptor })),
        ...chartContent.refs,
        ...signatureRefs(signatures),
      ],
    },
  };
}
