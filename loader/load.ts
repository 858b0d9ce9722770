import type { KeyObject } from 'node:crypto';
import { UsageError } from '../shared/cli/errors.ts';
import { commitBundle, prepareBundleCommit, type GitOptions } from './gitops/commit.ts';
import { planBundleCommit } from './gitops/plan.ts';
import { scanBundleFile, type BundleFileScan } from '../shared/bundle/file.ts';
import type { BundleBytes } from '../shared/bundle/volumes.ts';
import { WholeBundleCheck } from '../shared/bundle/check.ts';
import { BundleFileSource } from '../shared/bundle/source.ts';
import { CopySession, type GraphPlan } from '../shared/copy.ts';
import { chartTargets } from './chart-targets.ts';
import { imageTargets, type Target } from './targets.ts';
import { loadSignatures, signatureTargets, type SignatureTarget } from './signatures.ts';
import { recheckThenTag } from './tags-last.ts';
import { keyFingerprint } from '../shared/sign/keys.ts';
import { gitEndpoint, preflight as preflightEndpoints } from '../shared/net/preflight.ts';
import { openLoadContext, type LoadContext, type LoadContextOptions } from './load-context.ts';
import { emptyReport, type LoadReport } from './load-report.ts';
import { preflightTags } from './tag-preflight.ts';
import { planPush, type PushPlan } from './push-plan.ts';
import { planDryRun } from './dry-run.ts';
import { pushImages, reportPushed } from './push-images.ts';

export { formatLoadReport, type ImageStatus, type LoadedChart, type LoadedImage, type LoadReport } from './load-report.ts';

/**
 * airlock load (images): verify while loading, straight from the bundle file.
 *
 * 1. check: the signature, the canonical layout (every header and padding
 *    byte), and the git commit rendered; then each endpoint answers once
 *    (net/preflight.ts). Nothing is sent before this.
 * 2. preflight: each target's tag (tag-preflight.ts). A tag pointing at other
 *    content is a conflict (exit 5, all listed) unless --overwrite-tags; a tag
 *    already at the target's digest means the image is there.
 * 3. plan: what each missing target needs, and at the same time push access
 *    to each repository (push-plan.ts, namespace-preflight.ts): a namespace
 *    the registry will not create, or a path deeper than it takes, stops the
 *    load here (exit 4), before any byte is stored.
 * 4. push: one copyGraph session for every image and chart still missing
 *    (push-images.ts; charts go to REGISTRY[/PREFIX]/charts/NAME:VERSION):
 *    blobs read by offset and hashed while they upload, each image's
 *    manifests by digest (untagged) once every byte they reference checked
 *    out (ManifestGate). Meanwhile every entry the push does not read is
 *    hashed (WholeBundleCheck), so a load that writes accepts exactly what
 *    verify accepts.
 * 5. tags, once the whole bundle checked out (tags-last.ts); signatures.
 * 6. git: the commit, once everything it pins is in.
 *
 * A reload (every tag already at the bundle's digest) writes nothing to the
 * registry, so it hashes only what it reads to write git: the signed index,
 * the layout, one HEAD per tag, the manifests/ files of the commit.
 */
/** The bundle, key, registry access and output options (LoadContextOptions), and what to load how. */
export interface LoadOptions extends LoadContextOptions {
  /** HOST[:PORT][/PREFIX] */
  registry: string;
  /** --map-depth: at most this many path segments under the prefix (the rest joined with "-"). */
  mapDepth?: number;
  overwriteTags?: boolean;
  jobs?: number;
  dryRun?: boolean;
  /** Images must already be in the registry (checked by digest); only git is written. */
  skipImages?: boolean;
  /** Commit the manifests to git (DESIGN.md §6). */
  git?: GitOptions;
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
  const ctx = await openLoadContext(options, parseRegistryTarget(options.registry));
  const { progress } = ctx;
  let wholeBundle: WholeBundleCheck | undefined;
  try {
    progress.phase('check');
    const bundle = await checkBundle(ctx.bytes, ctx.publicKey, ctx.target, options);
    await checkEndpoints(ctx, bundle, options);
    progress.phase('preflight', { items: bundle.targets.length });
    const missing = await preflightTags(ctx.stores, bundle.targets, { ...options, host: ctx.target.host, jobs: options.jobs ?? 8, onResolved: () => progress.advance(0, 1) });
    const planned = await planPush({ ...bundle, index: bundle.scan.index, client: ctx.stores.client, missing, registry: options.registry, prefix: ctx.target.prefix, mapDepth: options.mapDepth, jobs: options.jobs ?? 8, dryRun: options.dryRun === true, progress });
    const report = emptyReport(options, bundle.scan.index);
    if (planned.delta.report) report.delta = planned.delta.report;
    const signed = options.dryRun || !options.skipImages ? signatureTargets(bundle.scan, bundle.targets, ctx.bytes.name) : [];
    // What the load writes is verified first; bytes it writes nowhere (a reload) need not be hashed.
    if (options.dryRun || missing.length > 0 || signed.length > 0) {
      wholeBundle = new WholeBundleCheck(ctx.bytes, bundle.scan, bundle.source, { name: ctx.bytes.name });
      wholeBundle.start(entriesRead(planned.plans.values()));
    }
    if (options.dryRun) await dryRun(ctx, bundle, planned, wholeBundle!, signed, report, options);
    else await pushThenTag(ctx, bundle, planned, wholeBundle, signed, report, options);
    progress.done();
    report.phases = progress.phaseSeconds();
    report.seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    return report;
  } catch (err) {
    wholeBundle?.cancel();
    progress.done();
    throw err;
  } finally {
    await ctx.close();
  }
}

/** The registry (when there is something for it) and git answer once: one clear error instead of a page of retries. */
async function checkEndpoints(ctx: LoadContext, bundle: CheckedBundle, options: LoadOptions): Promise<void> {
  await preflightEndpoints(
    [
      ...(bundle.targets.length > 0 ? [{ kind: 'registry' as const, label: `registry ${ctx.target.host}`, registry: ctx.target.host, options: ctx.registryOptions }] : []),
      ...(options.git ? [gitEndpoint('--git', options.git)] : []),
    ],
    { caFile: options.caFile },
  );
}

/** --dry-run: the whole bundle checked, what each target would need, the signatures and the git commit it would push; nothing written. */
async function dryRun(ctx: LoadContext, bundle: CheckedBundle, planned: PushPlan, wholeBundle: WholeBundleCheck, signed: SignatureTarget[], report: LoadReport, options: LoadOptions): Promise<void> {
  const jobs = options.jobs ?? 8;
  await wholeBundle.finish();
  ctx.progress.phase('dry run', { items: planned.plans.size });
  await planDryRun(ctx.stores, bundle.targets, planned.plans, report, jobs, ctx.progress, planned.delta.required);
  if (signed.length > 0) report.signatures = await loadSignatures(signed, { client: ctx.stores.client, source: bundle.source, session: new CopySession({ concurrency: jobs }), dryRun: true, logger: options.logger });
  if (bundle.gitCommit) {
    ctx.progress.phase('git');
    report.gitPlan = await planBundleCommit(bundle.gitCommit, ctx.transport);
  }
}

/** Push what is missing, the whole bundle checked out, then the tags, the signatures and the git commit. */
async function pushThenTag(ctx: LoadContext, bundle: CheckedBundle, planned: PushPlan, wholeBundle: WholeBundleCheck | undefined, signed: SignatureTarget[], report: LoadReport, options: LoadOptions): Promise<void> {
  const { progress, stores } = ctx;
  const jobs = options.jobs ?? 8;
  let session = new CopySession({ concurrency: jobs });
  if (planned.plans.size > 0) {
    const pushed = await pushImages(planned.delta.source, stores, planned.plans, wholeBundle!, report, options, progress, ctx.retries);
    session = pushed.session;
    progress.phase('check');
    await wholeBundle!.finish();
    progress.phase('tags', { items: planned.plans.size });
    const { repushed } = await recheckThenTag({ source: planned.delta.source, store: (r) => stores.for(r).remote, plans: planned.plans, concurrency: jobs });
    if (repushed.length > 0) {
      options.logger.warn(`${repushed.length} manifest${repushed.length === 1 ? '' : 's'} vanished from the registry during the load (garbage collection?) and went again: ${repushed.join(', ')}`);
    }
    reportPushed(stores, bundle.targets, planned.plans, pushed, report);
  } else {
    reportPushed(stores, bundle.targets, planned.plans, { uploaded: new Map(), finished: new Map(), session }, report);
  }
  if (signed.length > 0) {
    if (wholeBundle && planned.plans.size === 0) await wholeBundle.finish();
    progress.phase('signatures', { items: signed.length });
    report.signatures = await loadSignatures(signed, { client: stores.client, source: bundle.source, session, overwriteTags: options.overwriteTags, logger: options.logger });
  }
  if (bundle.gitCommit) {
    progress.phase('git');
    report.git = await commitBundle(bundle.gitCommit, ctx.transport);
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

/** Bundle paths of every blob and manifest the plans will read. */
function entriesRead(plans: Iterable<GraphPlan>): Set<string> {
  const paths = new Set<string>();
  for (const p of plans) for (const d of [...p.blobs, ...p.manifests.map((m) => m.descriptor)]) paths.add(`oci/blobs/sha256/${d.digest.slice('sha256:'.length)}`);
  return paths;
}

