import type { BundleFileSource } from '../shared/bundle/source.ts';
import type { Progress } from '../shared/cli/progress.ts';
import { CopySession, planGraph, type GraphPlan } from '../shared/copy.ts';
import type { RegistryClient } from '../shared/registry/client.ts';
import { prepareDeltaLoad } from './delta.ts';
import { checkPushAccess } from './namespace-preflight.ts';
import type { Target } from './targets.ts';

export interface PushPlanInput {
  source: BundleFileSource;
  index: Parameters<typeof prepareDeltaLoad>[0];
  client: RegistryClient;
  /** The targets the tag preflight found missing. */
  missing: Target[];
  /** HOST[:PORT][/PREFIX] as given, and its prefix. */
  registry: string;
  prefix: string;
  mapDepth?: number;
  jobs: number;
  dryRun: boolean;
  progress: Progress;
}

export interface PushPlan {
  /** What each missing target needs (its manifests read from the bundle, verified). */
  plans: Map<Target, GraphPlan>;
  delta: Awaited<ReturnType<typeof prepareDeltaLoad>>;
}

/**
 * Before any byte is stored, at the same time:
 * - the plan of each missing target (its manifests, read and verified), and
 *   for a delta bundle every blob it relies on found in the registry (exit 5);
 * - push access to each repository to push to (namespace-preflight.ts; exit
 *   4), each probe's upload session kept for the repository's first blob.
 * A planning failure is reported before a refusal, as when they ran in turn.
 * For a delta bundle the probes follow the check of what it relies on.
 */
export async function planPush(input: PushPlanInput): Promise<PushPlan> {
  const repositories = [...new Set(input.missing.map((t) => t.repository))];
  const probing = !input.dryRun && repositories.length > 0;
  input.progress.phase('plan', { items: input.missing.length + (probing ? repositories.length : 0) });
  const planning = (async (): Promise<PushPlan> => {
    const plans = new Map(
      await Promise.all(
        input.missing.map(async (t) => {
          const plan = await planGraph(input.source, t.root, { session: new CopySession({ concurrency: 4 }) });
          input.progress.advance(0, 1);
          return [t, plan] as const;
        }),
      ),
    );
    const delta = await prepareDeltaLoad(input.index, input.source, plans, { client: input.client, prefix: input.prefix, registry: input.registry, jobs: input.jobs });
    return { plans, delta };
  })();
  const probe = () =>
    checkPushAccess(input.client, repositories, {
      jobs: input.jobs,
      prefix: input.prefix,
      mapDepth: input.mapDepth,
      keepSessions: true,
      onProbed: () => input.progress.advance(0, 1),
    });
  // A delta bundle's missing blobs (exit 5) are found before the registry sees so much as an upload session.
  const delta = input.index.requires !== undefined;
  const access = probing && !delta ? probe() : Promise.resolve();
  const [planned, probed] = await Promise.allSettled([planning, access]);
  if (planned.status === 'fulfilled' && probing && delta) await probe();
  if (planned.status === 'rejected') throw planned.reason;
  if (probed.status === 'rejected') throw probed.reason;
  return planned.value;
}
