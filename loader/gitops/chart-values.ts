import { UsageError } from '../../shared/cli/errors.ts';
import type { BundleIndex } from '../../shared/bundle/format.ts';
import type { BundleFileSource } from '../../shared/bundle/source.ts';

/**
 * The most a chart's values may weigh inline in a HelmRelease: the API server
 * stores an object of about 1.5 MiB at most, and the release carries more
 * than its values.
 */
export const MAX_INLINE_VALUES_BYTES = 1024 * 1024;

/**
 * The values entry of every `gitops: helmrelease` chart (its inline
 * spec.values), read from the bundle and checked against the signed index.
 */
export async function readChartValues(index: BundleIndex, source: BundleFileSource): Promise<Map<string, Buffer>> {
  const charts = index.charts.filter((c) => c.gitops === 'helmrelease');
  for (const c of charts) {
    const size = source.entriesUnder(c.values).find((e) => e.path === c.values)?.size ?? 0;
    if (size > MAX_INLINE_VALUES_BYTES) {
      throw new UsageError(`chart ${c.name} (release ${c.releaseName}): its values ${c.values} weigh ${size} bytes, more than a HelmRelease can carry inline (${MAX_INLINE_VALUES_BYTES})`, {
        hint: 'pack the chart with gitops: rendered instead',
      });
    }
  }
  const paths = [...new Set(charts.map((c) => c.values))];
  return new Map(await Promise.all(paths.map(async (p) => [p, await source.readEntry(p)] as const)));
}
