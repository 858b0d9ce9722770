import type { Progress } from '../shared/cli/progress.ts';
import { CopySession, type GraphPlan } from '../shared/copy.ts';
import { addToReport, type LoadReport } from './load-report.ts';
import type { TargetStores } from './target-stores.ts';
import type { Target } from './targets.ts';

/** --dry-run: what each target would need (its blobs the registry lacks), nothing written. */
export async function planDryRun(stores: TargetStores, targets: Target[], plans: Map<Target, GraphPlan>, report: LoadReport, jobs: number, progress: Progress, required: ReadonlySet<string>): Promise<void> {
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

