import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PolicyError, RemoteError, UsageError } from '../shared/cli/errors.ts';
import { commitBundle, prepareBundleCommit, type CommitBundleResult, type GitOptions } from './gitops/commit.ts';
import { formatGitCommitPlan, planBundleCommit, type GitCommitPlan } from './gitops/plan.ts';
import type { Logger } from '../shared/cli/log.ts';
import { formatBytes, Progress, progressListener } from '../shared/cli/progress.ts';
import { scanBundleFile, type BundleFileScan } from '../shared/bundle/file.ts';
import type { BundleBytes } from '../shared/bundle/volumes.ts';
import { WholeBundleCheck } from '../shared/bundle/check.ts';
import { openAnyBundle } from '../shared/transfer/open.ts';
import { BundleFileSource } from '../shared/bundle/source.ts';
import { copyGraph, CopySession, planGraph, type CopyEvent, type GraphPlan } from '../shared/copy.ts';
import { chartTargets, type ChartTarget } from './chart-targets.ts';
import { imageTargets, type Target } from './targets.ts';
import { loadSignatures, signatureTargets, type LoadedSignatures } from './signatures.ts';
import { checkPushAccess } from './namespace-preflight.ts';
import { RegistryClient } from '../shared/registry/client.ts';
import { registryOptions, summarizedTransport, type RegistryAccess } from '../shared/registry/access.ts';
import { ManifestGate } from '../shared/store/manifest-gate.ts';
import { recheckThenTag } from './tags-last.ts';
import { RemoteStore } from '../shared/store/remote.ts';
import { keyFingerprint, readPublicKey } from '../shared/sign/keys.ts';
import type { ContentSource } from '../shared/store/store.ts';
import { prepareDeltaLoad, type DeltaLoadReport } from './delta.ts';
import { gitEndpoint, preflight as preflightEndpoints } from '../shared/net/preflight.ts';
import type { RetrySummary } from '../shared/net/retry-summary.ts';

/**
 * airlock load (images): verify while loading, straight from the bundle file.
 *
 * 1. Check: the signature, the canonical layout (every header and padding
 *    byte), and the git commit rendered. Nothing is sent before this.
 * 2. Preflight: each image's tag in the target registry. A tag pointing at
 *    other content is a conflict (exit 5, all listed) unless --overwrite-tags;
 *    a tag already at the image's digest means the image is there. Then each
 *    repository still to push is probed under push scope
 *    (namespace-preflight.ts): a namespace the registry will not create, or
 *    a path deeper than it takes, stops the load here (exit 4).
 * 3. One copyGraph session for every image and chart still missing (charts
 *    go to REGISTRY[/PREFIX]/charts/NAME:VERSION, chart-targets.ts, under
 *    the same policy): blobs are read by
 *    offset and hashed while they upload (HEAD first, cross-repository mounts
 *    for shared layers). Meanwhile every entry the push does not read is
 *    hashed, so load accepts exactly what verify accepts.
 *    Each image's manifests go out by digest (untagged) as soon as its blobs
 *    are in and every byte they reference checked out (ManifestGate), so a
 *    registry's garbage collection cannot take blobs nothing references.
 * 4. The whole bundle checked out: every manifest is checked to be still
 *    there (pushed again if it vanished), then the tags (tags-last.ts).
 * 5. The git commit, when asked for.
 */
export interface LoadOptions {
  bundle: string;
  key: string;
  /** HOST[:PORT][/PREFIX] */
  registry: string;
  /** --map-depth: at most this many path segments under the prefix (the rest joined with "-"). */
  mapDepth?: number;
  /** Credentials, plain HTTP, client certificate (and certs.d). */
  access: RegistryAccess;
  caFile?: string;
  /** --s3-endpoint, for s3:// bundles. */
  s3Endpoint?: string;
  overwriteTags?: boolean;
  jobs?: number;
  dryRun?: boolean;
  /** Images must already be in the registry (checked by digest); only git is written. */
  skipImages?: boolean;
  /** Commit the manifests to git (DESIGN.md §6). */
  git?: GitOptions;
  json?: boolean;
  logger: Logger;
}

export type ImageStatus = 'pushed' | 'present' | 'would push' | 'retagged' | 'would retag';

export interface LoadedImage {
  source: string;
  target: string;
  digest: string;
  status: ImageStatus;
  /** Blob bytes uploaded for this image (a blob shared with an earlier image counts once, there). */
  bytes: number;
  /** Blobs the registry lacks (dry run) or that were uploaded. */
  blobs: number;
  /** Seconds from the start of the push phase until the image's content was in. */
  seconds: number;
}

/** A chart artifact pushed to REGISTRY[/PREFIX]/charts/NAME:VERSION. */
export interface LoadedChart extends LoadedImage {
  name: string;
  version: string;
  /** The releases in the bundle that deploy it. */
  releases: string[];
}

export interface LoadReport {
  bundle: string;
  name: string;
  version: string;
  registry: string;
  dryRun: boolean;
  images: LoadedImage[];
  charts: LoadedChart[];
  blobsUploaded: number;
  blobsMounted: number;
  blobsPresent: number;
  bytesUploaded: number;
  seconds: number;
  git?: CommitBundleResult;
  /** A bundle packed with --with-signatures: its signatures, pushed next to their images. */
  signatures?: LoadedSignatures;
  /** A delta bundle: the blobs it relied on, found in the registry. */
  delta?: DeltaLoadReport;
  /** --dry-run --git: the commit the load would make. */
  gitPlan?: GitCommitPlan;
}

export function parseRegistryTarget(value: string, flag = '--registry'): { host: string; prefix: string } {
  if (/^[a-z]+:\/\//i.test(value)) {
    throw new UsageError(`${flag} ${value}: give HOST[:PORT][/PREFIX] without a scheme`, { hint: `HTTPS is the default; add ${flag === '--registry' ? '--plain-http' : `${flag}-plain-http`} for plain HTTP` });
  }
  const [host, ...rest] = value.replace(/\/+$/, '').split('/');
  if (!host || !/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(host)) throw new UsageError(`${flag} ${value}: not HOST[:PORT][/PREFIX]`);
  const prefix = rest.join('/');
  if (prefix !== '' && !/^[a-z0-9]+(?:[._-][a-z0-9]+)*(\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(prefix)) {
    throw new UsageError(`${flag} ${value}: the prefix ${prefix} is not a valid repository path (lowercase letters, digits, . _ - and /)`);
  }
  return { host, prefix };
}

export async function load(options: LoadOptions): Promise<LoadReport> {
  const started = performance.now();
  const { logger } = options;
  const target = parseRegistryTarget(options.registry);
  const keyPem = await readFile(options.key, 'utf8').catch((err: Error) => {
    throw new UsageError(`cannot read the public key ${options.key}: ${err.message}`);
  });
  const publicKey = readPublicKey(keyPem, options.key);
  const bytes = await openAnyBundle(options.bundle, { s3: { endpoint: options.s3Endpoint, caFile: options.caFile } });

  const registry = registryOptions(target.host, options.access, logger);
  const progress = new Progress({ json: options.json, summaryLine: false });
  logger.attachStatusLine(progress);
  const net = summarizedTransport(options.caFile, logger);
  const { transport, retries } = net;
  const client = new RegistryClient(target.host, transport, registry);
  let wholeBundle: WholeBundleCheck | undefined;
  try {
    // 1. Check the bundle (and render the git commit) before anything is sent.
    progress.phase('check');
    const bundle = await checkBundle(bytes, publicKey, target, options);
    const { scan, source, targets } = bundle;
    // The registry (when there is something for it) and git answer once: one clear error instead of a page of retries.
    await preflightEndpoints(
      [
        ...(targets.length > 0 ? [{ kind: 'registry' as const, label: `registry ${target.host}`, registry: target.host, options: registry }] : []),
        ...(options.git ? [gitEndpoint('--git', options.git)] : []),
      ],
      { caFile: options.caFile },
    );
    const stores = new TargetStores(client);

    // 2. Preflight: where each tag points now; conflicts stop the load here.
    progress.phase('preflight', { items: targets.length });
    const missing = await preflight(client, stores, targets, options, progress);

    // Plans read the manifests (verified) of what is missing; everything else is hashed meanwhile (load == verify).
    const plans = new Map(
      await Promise.all(missing.map(async (t) => [t, await planGraph(source, t.root, { session: new CopySession({ concurrency: 4 }) })] as const)),
    );
    // A delta: every blob it requires must be in the registry already (exit 5 if not), before anything is written.
    const delta = await prepareDeltaLoad(scan.index, source, plans, { client, prefix: target.prefix, registry: options.registry, jobs: options.jobs ?? 8 });
    // Push access per repository (a registry refusing a namespace stops the load here, nothing stored).
    if (!options.dryRun && missing.length > 0) {
      const repositories = [...new Set(missing.map((t) => t.repository))];
      progress.phase('push access', { items: repositories.length });
      await checkPushAccess(client, repositories, { jobs: options.jobs ?? 8, prefix: target.prefix, mapDepth: options.mapDepth, onProbed: () => progress.advance(0, 1) });
    }
    wholeBundle = new WholeBundleCheck(bytes, scan, source, { name: bytes.name });
    wholeBundle.start(entriesRead(plans.values()));
    const report = emptyReport(options, scan.index);
    if (delta.report) report.delta = delta.report;

    if (options.dryRun) {
      await wholeBundle.finish();
      progress.phase('dry run', { items: missing.length });
      await planDryRun(stores, targets, plans, report, options.jobs ?? 8, progress, delta.required);
      const signed = signatureTargets(scan, targets, bytes.name);
      if (signed.length > 0) report.signatures = await loadSignatures(signed, { client, source, session: new CopySession({ concurrency: options.jobs ?? 8 }), dryRun: true, logger });
      if (bundle.gitCommit) {
        progress.phase('git');
        report.gitPlan = await planBundleCommit(bundle.gitCommit, transport);
      }
    } else {
      // 3. Push every image (manifests by digest once their bytes checked out); 4. the whole bundle checked out; then tags.
      const pushed = await pushImages(delta.source, stores, plans, wholeBundle, report, options, progress, retries);
      progress.phase('check');
      await wholeBundle.finish();
      progress.phase('tags');
      await tagLast(delta.source, stores, plans, options);
      reportPushed(stores, targets, plans, pushed, report);
      const signed = options.skipImages ? [] : signatureTargets(scan, targets, bytes.name);
      if (signed.length > 0) {
        progress.phase('signatures', { items: signed.length });
        report.signatures = await loadSignatures(signed, { client, source, session: pushed.session, overwriteTags: options.overwriteTags, logger });
      }
      // 6. The git commit, once everything it pins is in.
      if (bundle.gitCommit) {
        progress.phase('git');
        report.git = await commitBundle(bundle.gitCommit, transport);
      }
    }
    report.seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    progress.done();
    return report;
  } catch (err) {
    wholeBundle?.cancel();
    progress.done();
    throw err;
  } finally {
    logger.attachStatusLine(undefined);
    await net.close();
    await bytes.close();
  }
}

interface CheckedBundle {
  scan: BundleFileScan;
  source: BundleFileSource;
  targets: Target[];
  gitCommit?: Awaited<ReturnType<typeof prepareBundleCommit>>;
}

/** The signature and the canonical layout, the targets, and the git commit rendered (so a problem with the manifests stops the load now). */
async function checkBundle(bytes: BundleBytes, publicKey: KeyObject, target: { host: string; prefix: string }, options: LoadOptions): Promise<CheckedBundle> {
  const { host, prefix } = target;
  const scan = await scanBundleFile(bytes, publicKey, bytes.name);
  const source = new BundleFileSource(bytes, scan, bytes.name);
  const images = imageTargets(scan, prefix, bytes.name, options.mapDepth);
  const charts = chartTargets(scan, prefix, bytes.name, images, options.mapDepth);
  const gitCommit = options.git
    ? await prepareBundleCommit({
        git: options.git,
        scan,
        source,
        registry: { host, prefix, ...(options.mapDepth !== undefined ? { mapDepth: options.mapDepth } : {}) },
        plainHttp: options.access.plainHttp,
        report: {
          bundle: scan.index.name,
          version: scan.index.version,
          registry: options.registry,
          // The key the bundle's signature was checked with: promote's review text names it.
          signer: keyFingerprint(publicKey),
          images: images.map((t) => ({ source: t.source, target: `${host}/${t.repository}${t.tag ? `:${t.tag}` : `@${t.root.digest}`}`, digest: t.root.digest })),
          // Only when there are charts: the report of a bundle without charts stays as it was, so reloading it commits nothing.
          ...(charts.length > 0 ? { charts: charts.map((t) => ({ source: t.source, target: `${host}/${t.repository}:${t.tag!}`, digest: t.root.digest })) } : {}),
        },
      })
    : undefined;
  return { scan, source, targets: [...images, ...charts], ...(gitCommit ? { gitCommit } : {}) };
}

/** One RemoteStore per target repository. */
class TargetStores {
  private readonly stores = new Map<string, { remote: RemoteStore }>();
  constructor(readonly client: RegistryClient) {}

  for(repository: string): { remote: RemoteStore } {
    let s = this.stores.get(repository);
    if (!s) this.stores.set(repository, (s = { remote: new RemoteStore(this.client, repository) }));
    return s;
  }

  display(t: Target): string {
    return this.client.display(t.repository) + (t.tag ? `:${t.tag}` : `@${t.root.digest}`);
  }
}

/**
 * Where each target's tag points now. A tag at other content is a conflict
 * (exit 5, all listed) unless --overwrite-tags; with --skip-images, anything
 * missing is exit 4. Returns the targets still to push.
 */
async function preflight(client: RegistryClient, stores: TargetStores, targets: Target[], options: LoadOptions, progress: Progress): Promise<Target[]> {
  const { host } = parseRegistryTarget(options.registry);
  const limit = new CopySession({ concurrency: options.jobs ?? 8 }).limit;
  await Promise.all(
    targets.map((t) =>
      limit(async () => {
        t.current = (await client.resolve(t.repository, t.tag ?? t.root.digest, { refusedAsAbsent: true }))?.digest;
        progress.advance(0, 1);
      }),
    ),
  );
  const conflicts = targets.filter((t) => t.tag && t.current && t.current !== t.root.digest);
  if (conflicts.length > 0 && !options.overwriteTags) {
    throw new PolicyError(
      `${conflicts.length} tag${conflicts.length === 1 ? '' : 's'} in ${host} already point${conflicts.length === 1 ? 's' : ''} at other content; nothing was written:\n` +
        conflicts.map((t) => `  ${stores.display(t)} is ${t.current}, the bundle has ${t.root.digest} (${t.source})`).join('\n'),
      { hint: 'tags are treated as immutable; pass --overwrite-tags to move them' },
    );
  }
  // An image whose tag already points at its digest is there, whole: copyGraph would stop at its root anyway.
  const missing = targets.filter((t) => t.current !== t.root.digest);
  if (options.skipImages && missing.length > 0) {
    throw new RemoteError(
      `--skip-images: ${missing.length} ${kindsOf(missing)} ${missing.length === 1 ? 'is' : 'are'} not in ${host} with the bundle's digest:\n` +
        missing.map((t) => `  ${stores.display(t)} (${t.current ? `is ${t.current}` : 'missing'}, the bundle has ${t.root.digest})`).join('\n'),
      { hint: 'load the images and charts first: the same command without --skip-images' },
    );
  }
  return missing;
}

function emptyReport(options: LoadOptions, index: { name: string; version: string }): LoadReport {
  return {
    bundle: options.bundle,
    name: index.name,
    version: index.version,
    registry: options.registry,
    dryRun: options.dryRun === true,
    images: [],
    charts: [],
    blobsUploaded: 0,
    blobsMounted: 0,
    blobsPresent: 0,
    bytesUploaded: 0,
    seconds: 0,
  };
}

function addToReport(report: LoadReport, stores: TargetStores, t: Target, status: ImageStatus, bytes = 0, blobs = 0, seconds = 0): void {
  const loaded: LoadedImage = { source: t.source, target: stores.display(t), digest: t.root.digest, status, bytes, blobs, seconds: Number(seconds.toFixed(3)) };
  if (t.kind === 'image') report.images.push(loaded);
  else report.charts.push({ ...loaded, ...(t as ChartTarget).chart });
}

/** --dry-run: what each target would need (its blobs the registry lacks), nothing written. */
async function planDryRun(stores: TargetStores, targets: Target[], plans: Map<Target, GraphPlan>, report: LoadReport, jobs: number, progress: Progress, required: ReadonlySet<string>): Promise<void> {
  const limit = new CopySession({ concurrency: jobs }).limit;
  for (const t of targets) {
    const plan = plans.get(t);
    if (!plan) {
      addToReport(report, stores, t, 'present');
      continue;
    }
    const remote = stores.for(t.repository).remote;
    const rootThere = await remote.exists(t.root);
    const absent = rootThere ? [] : (await Promise.all(plan.blobs.filter((b) => !required.has(b.digest)).map(async (b) => ((await limit(() => remote.exists(b))) ? undefined : b)))).filter((b) => b !== undefined);
    addToReport(report, stores, t, rootThere ? 'would retag' : 'would push', absent.reduce((a, b) => a + b.size, 0), absent.length);
    progress.advance(0, 1);
  }
}

interface Pushed {
  /** "REPOSITORY DIGEST" -> bytes uploaded there. */
  uploaded: Map<string, number>;
  /** Seconds from the start of the push until each target's content was in. */
  finished: Map<Target, number>;
  /** The push's copy session: later pushes (signatures) share its mount and upload state. */
  session: CopySession;
}

/**
 * One copyGraph session for every missing target: blobs read by offset and
 * hashed while they upload (HEAD first, mounts for shared layers); each
 * manifest pushed by digest once every blob it references checked out.
 */
async function pushImages(
  source: ContentSource,
  stores: TargetStores,
  plans: Map<Target, GraphPlan>,
  wholeBundle: WholeBundleCheck,
  report: LoadReport,
  options: LoadOptions,
  progress: Progress,
  retries: RetrySummary,
): Promise<Pushed> {
  // Per repository: a layer two repositories share is uploaded to one and mounted into the other; both count as done.
  const perRepository = new Map<string, number>();
  for (const [t, p] of plans) for (const b of p.blobs) perRepository.set(`${t.repository} ${b.digest}`, b.size);
  const bytesTotal = [...perRepository.values()].reduce((a, n) => a + n, 0);
  progress.phase('push', { bytes: bytesTotal, items: plans.size });
  const uploaded = new Map<string, number>();
  const onEvent = progressListener(progress);
  const session = new CopySession({
    concurrency: options.jobs ?? 8,
    onEvent: (e: CopyEvent) => {
      onEvent(e);
      if (e.type === 'blob-done') {
        report.blobsUploaded++;
        report.bytesUploaded += e.bytes;
        uploaded.set(`${e.destination} ${e.descriptor.digest}`, e.bytes);
      } else if (e.type === 'blob-mount') report.blobsMounted++;
      else if (e.type === 'blob-skip') report.blobsPresent++;
      else if (e.type === 'retry') {
        options.logger.debug(`retrying ${e.descriptor.digest} to ${e.destination} (attempt ${e.attempt}): ${e.reason}`);
        retries.record(stores.client.endpoint.origin.origin, e.reason);
      }
    },
  });
  const started = performance.now();
  const finished = new Map<Target, number>();
  await session.all([...plans.keys()], async (t) => {
    await copyGraph(source, new ManifestGate(stores.for(t.repository).remote, (blobs) => wholeBundle.verifyBlobs(blobs)), t.root, { session });
    finished.set(t, (performance.now() - started) / 1000);
    progress.advance(0, 1);
  });
  return { uploaded, finished, session };
}

/** Every manifest still there (pushed again if the registry lost it), then the tags. */
async function tagLast(source: ContentSource, stores: TargetStores, plans: Map<Target, GraphPlan>, options: LoadOptions): Promise<void> {
  const { repushed } = await recheckThenTag({ source, store: (r) => stores.for(r).remote, plans, concurrency: options.jobs ?? 8 });
  if (repushed.length > 0) {
    options.logger.warn(`${repushed.length} manifest${repushed.length === 1 ? '' : 's'} vanished from the registry during the load (garbage collection?) and went again: ${repushed.join(', ')}`);
  }
}

/** Each target's line: its blobs uploaded (a blob shared with an earlier target counts once, there). */
function reportPushed(stores: TargetStores, targets: Target[], plans: Map<Target, GraphPlan>, pushed: Pushed, report: LoadReport): void {
  const counted = new Set<string>();
  for (const t of targets) {
    const plan = plans.get(t);
    if (!plan) {
      addToReport(report, stores, t, 'present');
      continue;
    }
    let bytes = 0;
    let blobs = 0;
    for (const b of plan.blobs) {
      const key = `${stores.client.display(t.repository)} ${b.digest}`;
      const n = pushed.uploaded.get(key);
      if (n !== undefined && !counted.has(key)) {
        counted.add(key);
        bytes += n;
        blobs++;
      }
    }
    const status: ImageStatus = t.current && t.current !== t.root.digest ? 'retagged' : 'pushed';
    addToReport(report, stores, t, status, bytes, blobs, pushed.finished.get(t) ?? 0);
  }
}

/** Bundle paths of every blob and manifest the plans will read. */
function entriesRead(plans: Iterable<GraphPlan>): Set<string> {
  const paths = new Set<string>();
  for (const p of plans) for (const d of [...p.blobs, ...p.manifests.map((m) => m.descriptor)]) paths.add(`oci/blobs/sha256/${d.digest.slice('sha256:'.length)}`);
  return paths;
}

/** "image", "charts", "images or charts": what a list of targets holds. */
function kindsOf(targets: readonly Target[]): string {
  const one = targets.length === 1;
  const charts = targets.filter((t) => t.kind === 'chart').length;
  if (charts === 0) return one ? 'image' : 'images';
  if (charts === targets.length) return one ? 'chart' : 'charts';
  return 'images or charts';
}

export function formatLoadReport(r: LoadReport): string {
  const charts = r.charts;
  const width = Math.min(60, Math.max(...[...r.images, ...charts].map((i) => i.target.length), 6));
  const row = (i: LoadedImage, source: string) =>
    `  ${i.target.padEnd(width)}  ${i.status.padEnd(11)}  ${String(i.blobs).padStart(5)}  ${formatBytes(i.bytes).padStart(10)}  ${i.seconds.toFixed(1).padStart(6)}  ${source}`;
  const lines = [
    `${r.dryRun ? 'plan for' : 'loaded'} ${r.name} ${r.version} into ${r.registry}${r.dryRun ? ' (dry run: nothing was written)' : ''}`,
    `  ${'target'.padEnd(width)}  ${'status'.padEnd(11)}  ${'blobs'.padStart(5)}  ${'bytes'.padStart(10)}  ${'s'.padStart(6)}  source`,
    ...r.images.map((i) => row(i, i.source)),
    ...charts.map((c) => row(c, `chart ${c.name} ${c.version} (release${c.releases.length === 1 ? '' : 's'} ${c.releases.join(', ')})`)),
  ];
  if (r.delta) {
    lines.push(
      `delta${r.delta.since ? ` since ${r.delta.since.name} ${r.delta.since.version}` : ''}: relies on ${r.delta.requires} blobs (${formatBytes(r.delta.bytes)}); ` +
        `the images needed ${r.delta.present + r.delta.mountable}: ${r.delta.present} already in place, ${r.delta.mountable} ${r.dryRun ? 'to mount' : 'mounted'} from other repositories`,
    );
  }
  if (r.git) {
    lines.push(
      r.git.commit
        ? `git: committed ${r.git.commit.slice(0, 12)} to ${r.git.branch}${r.git.createdBranch ? ' (new branch)' : ''} under ${r.git.path}/ in ${r.git.url}`
        : `git: ${r.git.path}/ on ${r.git.branch} in ${r.git.url} already matches this bundle; no commit`,
    );
  }
  if (r.signatures) lines.push(formatLoadedSignatures(r.signatures, r.dryRun));
  if (r.gitPlan) lines.push(formatGitCommitPlan(r.gitPlan));
  if (!r.dryRun) {
    lines.push(
      `${r.images.length} images: ${r.images.filter((i) => i.status === 'present').length} already present; ` +
        (charts.length > 0 ? `${charts.length} chart${charts.length === 1 ? '' : 's'}: ${charts.filter((c) => c.status === 'present').length} already present; ` : '') +
        `${r.blobsUploaded} blobs uploaded (${formatBytes(r.bytesUploaded)}), ${r.blobsMounted} mounted, ${r.blobsPresent} already there; ${r.seconds.toFixed(1)} s`,
    );
  }
  return lines.join('\n');
}

function formatLoadedSignatures(s: LoadedSignatures, dryRun: boolean): string {
  const referrers = s.referrersApi === undefined ? '' : s.referrersApi ? '; referrers indexed by the registry' : `; ${s.fallbackIndexes} referrers fallback index${s.fallbackIndexes === 1 ? '' : 'es'} written`;
  const kept = s.kept.length > 0 ? `; ${s.kept.length} tag${s.kept.length === 1 ? '' : 's'} left at other content` : '';
  return `signatures: ${s.manifests} manifests for ${s.images} images: ${s.pushed} ${dryRun ? 'would push' : 'pushed'}, ${s.present} already present${referrers}${kept}`;
}
