import type { Logger } from '../shared/cli/log.ts';
import { progressListener, type Progress } from '../shared/cli/progress.ts';
import type { WholeBundleCheck } from '../shared/bundle/check.ts';
import { copyGraph, CopySession, type CopyEvent, type GraphPlan } from '../shared/copy.ts';
import type { RetrySummary } from '../shared/net/retry-summary.ts';
import { ManifestGate } from '../shared/store/manifest-gate.ts';
import type { ContentSource } from '../shared/store/store.ts';
import { addToReport, type ImageStatus, type LoadReport } from './load-report.ts';
import type { TargetStores } from './target-stores.ts';
import type { Target } from './targets.ts';

export interface Pushed {
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
export async function pushImages(
  source: ContentSource,
  stores: TargetStores,
  plans: Map<Target, GraphPlan>,
  wholeBundle: WholeBundleCheck,
  report: LoadReport,
  options: { jobs?: number; logger: Logger },
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

/** Each target's line: its blobs uploaded (a blob shared with an earlier target counts once, there). */
export function reportPushed(stores: TargetStores, targets: Target[], plans: Map<Target, GraphPlan>, pushed: Pushed, report: LoadReport): void {
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

