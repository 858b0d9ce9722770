import type { Readable } from 'node:stream';
import { copyGraph, CopySession, type CopyEvent, type GraphPlan } from '../shared/copy.ts';
import type { Descriptor } from '../shared/oci/descriptor.ts';
import type { ContentSink, ContentSource } from '../shared/store/store.ts';
import type { RemoteStore } from '../shared/store/remote.ts';
import { RegistryHttpError } from '../shared/registry/client.ts';
import type { Target } from './targets.ts';

/**
 * The end of a load, once the whole bundle checked out. The manifests went
 * out by digest as each image's blobs came in (ManifestGate); a long load
 * gives the registry time to lose some: Harbor's garbage collection deletes
 * untagged artifacts, Quay expires what nothing tags. Tagging is a PUT of the
 * manifest's bytes, and the registry checks that PUT itself: distribution
 * (and Harbor, GitLab, Quay, ECR) refuses a manifest whose blobs or child
 * manifests it does not hold (MANIFEST_BLOB_UNKNOWN), and a manifest that
 * vanished with its blobs still there is simply stored again. So:
 *
 * 1. tag every tagged target (no look first: one request per tag);
 * 2. a target whose tag the registry refused as incomplete, and a target
 *    loaded by digest only (no tag PUT to check it), gets its manifests
 *    looked at (HEAD), and is copied again through the vanished ones and its
 *    root (blobs checked, and re-uploaded from the bundle where they went
 *    too);
 * 3. then its tag again, pointing at a complete image.
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
  const refused = await tagAll(input, [...input.plans.keys()].filter((t) => t.tag));
  const suspects = new Map([...input.plans].filter(([t]) => !t.tag || refused.has(t)));
  if (suspects.size === 0) return { repushed: [] };
  const vanished = await findVanished({ ...input, plans: suspects });
  const again = new Map<Target, Lost>();
  for (const [t, digests] of vanished) again.set(t, { vanished: digests, forget: digests });
  // A refused tag: every manifest of the image goes again, so that copyGraph looks at every blob below them.
  for (const t of refused.keys()) again.set(t, { vanished: vanished.get(t) ?? new Set(), forget: new Set(input.plans.get(t)!.manifests.map((m) => m.descriptor.digest)) });
  const repushed = await pushAgain(input, again);
  const still = await tagAll(input, [...refused.keys()]);
  if (still.size > 0) throw [...still.values()][0]!;
  return { repushed };
}

/** A target to copy again: the manifests found gone, and those to push whether there or not. */
interface Lost {
  vanished: Set<string>;
  forget: Set<string>;
}

/** Tag each target; returns the ones the registry refused because it lacks content the manifest references. */
async function tagAll(input: TagsLastInput, targets: readonly Target[]): Promise<Map<Target, Error>> {
  const limit = new CopySession({ concurrency: input.concurrency }).limit;
  const refused = new Map<Target, Error>();
  await Promise.all(
    targets.map((t) =>
      limit(async () => {
        try {
          await input.store(t.repository).tag(t.root, t.tag!);
        } catch (err) {
          if (!lacksReferencedContent(err)) throw err;
          refused.set(t, err as Error);
        }
      }),
    ),
  );
  return refused;
}

/** The registry refused a manifest PUT because a blob or child manifest it references is not there. */
function lacksReferencedContent(err: unknown): boolean {
  return err instanceof RegistryHttpError && (err.status === 400 || err.status === 404) && /\b(MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN|MANIFEST_UNKNOWN)\b/.test(err.message);
}

/** Per target, the manifests of its graph the registry no longer has. */
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

/** Copy the targets that lost a manifest (or a blob) again, through the manifests to forget (and the root above them). */
async function pushAgain(input: TagsLastInput, lost: ReadonlyMap<Target, Lost>): Promise<string[]> {
  if (lost.size === 0) return [];
  // A new session: the first one remembers every node as done.
  const session = new CopySession({ concurrency: input.concurrency, onEvent: input.onEvent });
  const repushed: string[] = [];
  await session.all([...lost], async ([t, { vanished, forget }]) => {
    const remote = input.store(t.repository);
    await copyGraph(input.source, new ForgetVanished(remote, new Set([...forget, ...vanished, t.root.digest])), t.root, { session });
    for (const d of vanished) repushed.push(`${remote.name}@${d}`);
  });
  return repushed;
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
