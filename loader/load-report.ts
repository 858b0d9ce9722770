import type { CommitBundleResult } from './gitops/commit.ts';
import { formatGitCommitPlan, type GitCommitPlan } from './gitops/plan.ts';
import { formatBytes } from '../shared/cli/progress.ts';
import type { ChartTarget } from './chart-targets.ts';
import type { LoadedSignatures } from './signatures.ts';
import type { DeltaLoadReport } from './delta.ts';
import type { TargetStores } from './target-stores.ts';
import type { Target } from './targets.ts';

/** What a load did (or, dry run, would do): the result of `airlock load`, and its text. */
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
  /** Seconds spent in each phase (check, preflight, plan, push, tags, signatures, git; dry run), in order. */
  phases?: Record<string, number>;
}

export function emptyReport(options: { bundle: string; registry: string; dryRun?: boolean }, index: { name: string; version: string }): LoadReport {
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

export function addToReport(report: LoadReport, stores: TargetStores, t: Target, status: ImageStatus, bytes = 0, blobs = 0, seconds = 0): void {
  const loaded: LoadedImage = { source: t.source, target: stores.display(t), digest: t.root.digest, status, bytes, blobs, seconds: Number(seconds.toFixed(3)) };
  if (t.kind === 'image') report.images.push(loaded);
  else report.charts.push({ ...loaded, ...(t as ChartTarget).chart });
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
