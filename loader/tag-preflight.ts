import { PolicyError, RemoteError } from '../shared/cli/errors.ts';
import { CopySession } from '../shared/copy.ts';
import type { TargetStores } from './target-stores.ts';
import type { Target } from './targets.ts';

export interface TagPreflightOptions {
  /** The registry's host, for messages. */
  host: string;
  jobs: number;
  overwriteTags?: boolean;
  skipImages?: boolean;
  /** Told after each target looked at (progress). */
  onResolved?: () => void;
}

/**
 * Where each target's tag points now (one HEAD each). A tag at other content
 * is a conflict (exit 5, all listed) unless --overwrite-tags; with
 * --skip-images, anything missing is exit 4. Sets each target's `current`
 * and returns the targets still to push: a tag already at the bundle's
 * digest means the image is there, whole (the load tagged it last).
 */
export async function preflightTags(stores: TargetStores, targets: Target[], options: TagPreflightOptions): Promise<Target[]> {
  const { host } = options;
  const limit = new CopySession({ concurrency: options.jobs }).limit;
  await Promise.all(
    targets.map((t) =>
      limit(async () => {
        t.current = (await stores.client.resolve(t.repository, t.tag ?? t.root.digest, { refusedAsAbsent: true }))?.digest;
        options.onResolved?.();
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

/** "image", "charts", "images or charts": what a list of targets holds. */
function kindsOf(targets: readonly Target[]): string {
  const one = targets.length === 1;
  const charts = targets.filter((t) => t.kind === 'chart').length;
  if (charts === 0) return one ? 'image' : 'images';
  if (charts === targets.length) return one ? 'chart' : 'charts';
  return 'images or charts';
}
