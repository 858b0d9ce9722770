import type { Readable } from 'node:stream';
import { copyGraph, CopySession, type CopyEvent, type GraphPlan } from '../shared/copy.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import type { ContentSink, ContentSource } from '../shared/store/store.ts';
import type { RemoteStore } from '../shared/store/remote.ts';
import type { Target } from './targets.ts';

/**
 * The end of a load, once the whole bundle checked out. The manifests went
 * out by digest as each image's blobs came in (ManifestGate); a long load
 * gives the registry time to lose some: Harbor's garbage collection deletes
 * untagged artifacts, Quay expires what nothing tags. So, before any tag:
 *
 * 1. HEAD every manifest each target needs;
 * 2. copy again the targets that lost one (blobs checked, and re-uploaded
 *    from the bundle where they went too; the vanished manifests pushed);
 * 3. then the tags, each pointing at a complete image.
 */
export interface TagsLastInput {
  source: ContentSource;
  store: (repository: string) => RemoteStore;
  /** The targets pushed, with the plan of what each needs. */
  plans: ReadonlyMap<Target, GraphPlan>;
  concurrency: number;
  onEvent?: (event: CopyEvent) => void;
}

export interface TagsLastResult {
  /** "repository@digest" of every manifest that had vanished and was pushed again. */
  repushed: string[];
}

export async function recheckThenTag(input: TagsLastInput): Promise<TagsLastResult> {
  const vanished = await findVanished(input);
  const repushed = await pushAgain(input, vanished);
  await tagAll(input);
  return { repushed };
}

/** Step 1: per target, the manifests of its graph the registry no longer has. */
async function findVanished(input: TagsLastInput): Promise<Map<Target, Set<string>>> {
  const limit = new CopySession({ concurrency: input.concurrency }).limit;
  const found = new Map<Target, Set<string>>();
  await Promise.all(
    [...input.plans].flatMap(([t, plan]) =>
      plan.manifests.map((m) =>
        limit(async () => {
          if (await input.store(t.repository).exists(m.descriptor)) return;
          let set = found.get(t);
          if (!set) found.set(t, (set = new Set()));
          set.add(m.descriptor.digest);
        }),
      ),
    ),
  );
  return found;
}

/** Step 2: copy the targets that lost a manifest again, through the vanished manifests (and the root above them). */
async function pushAgain(input: TagsLastInput, vanished: ReadonlyMap<Target, Set<string>>): Promise<string[]> {
  if (vanished.size === 0) return [];
  // A new session: the first one remembers every node as done.
  const session = new CopySession({ concurrency: input.concurrency, onEvent: input.onEvent });
  const repushed: string[] = [];
  await session.all([...vanished], async ([t, digests]) => {
    const remote = input.store(t.repository);
    await copyGraph(input.source, new ForgetVanished(remote, new Set([...digests, t.root.digest])), t.root, { session });
    for (const d of digests) repushed.push(`${remote.name}@${d}`);
  });
  return repushed;
}

/** Step 3: the tags, last. */
async function tagAll(input: TagsLastInput): Promise<void> {
  const limit = new CopySession({ concurrency: input.concurrency }).limit;
  await Promise.all([...input.plans.keys()].filter((t) => t.tag).map((t) => limit(() => input.store(t.repository).tag(t.root, t.tag!))));
}

/**
 * The registry's store, except that the manifests found missing (and the
 * root above them) count as absent: copyGraph would otherwise stop at a
 * root that is still there and never reach the child that vanished.
 */
class ForgetVanished implements ContentSink {
  readonly name: string;
  constructor(
    private readonly remote: RemoteStore,
    private readonly absent: ReadonlySet<string>,
  ) {
    this.name = remote.name;
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.absent.has(desc.digest) ? Promise.resolve(false) : this.remote.exists(desc);
  }

  push(desc: Descriptor, body: Readable): Promise<void> {
    return this.remote.push(desc, body);
  }

  mount(desc: Descriptor): Promise<boolean> {
    return this.remote.mount(desc);
  }

  tag(desc: Descriptor, reference: string): Promise<void> {
    return this.remote.tag(desc, reference);
  }
}
