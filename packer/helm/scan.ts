import { parseYamlValue } from '../../shared/yaml/bounded.ts';
import type { ChartMeta } from './chart-files.ts';

/**
 * What airlock reads in a chart's own files, beside the render:
 *
 * - templates a static render cannot honour: `lookup` (it returns nothing
 *   under `helm template`) and upgrade hooks (`helm.sh/hook` with pre-upgrade
 *   or post-upgrade: only `helm upgrade` runs them). Scanned in every
 *   template (helpers included) of the chart and its subcharts, whatever the
 *   values turn on: a warning, never a failure.
 * - the images the charts declare in Chart.yaml annotations `helm.sh/images`
 *   (HIP-0015) and `artifacthub.io/images`: YAML lists of `{name, image, ...}`.
 */
export interface TemplateFinding {
  /** "harness/platform" (chart names from the top chart down). */
  chart: string;
  /** "templates/_helpers.tpl" */
  template: string;
  kind: 'lookup' | 'upgrade-hook';
}

export interface AnnotatedImage {
  image: string;
  chart: string;
  /** "harness/platform Chart.yaml annotation helm.sh/images" */
  where: string;
}

export const IMAGE_ANNOTATIONS = ['helm.sh/images', 'artifacthub.io/images'] as const;

/** Template actions: `{{ ... }}`, across lines, comments excluded below. */
const ACTION = /\{\{([\s\S]*?)\}\}/g;
/** `lookup` called as a function: at the start of a pipeline, after "(" or "|" or ":=" / "=". */
const LOOKUP_CALL = /(^|[\s(|=])lookup\s/;
const HOOK_ANNOTATION = /["']?helm\.sh\/hook["']?\s*:\s*(.*)$/gm;

export function scanTemplates(charts: ChartMeta[]): TemplateFinding[] {
  const found: TemplateFinding[] = [];
  for (const chart of charts) {
    const name = chart.chain.join('/');
    for (const [template, text] of chart.templates) {
      if (usesLookup(text)) found.push({ chart: name, template, kind: 'lookup' });
      if (hasUpgradeHook(text)) found.push({ chart: name, template, kind: 'upgrade-hook' });
    }
  }
  return found;
}

export function usesLookup(text: string): boolean {
  for (const m of text.matchAll(ACTION)) {
    const body = m[1]!.replace(/^-?\s*/, '');
    if (body.startsWith('/*')) continue;
    if (LOOKUP_CALL.test(` ${body}`)) return true;
  }
  return false;
}

export function hasUpgradeHook(text: string): boolean {
  for (const m of text.matchAll(HOOK_ANNOTATION)) {
    if (/\b(pre|post)-upgrade\b/.test(m[1]!)) return true;
  }
  return false;
}

/**
 * One message per kind for a chart: the templates by name and what to do.
 * `top` names the chart as the spec does.
 */
export function findingMessages(top: string, findings: TemplateFinding[]): string[] {
  const list = (kind: TemplateFinding['kind']) =>
    findings
      .filter((f) => f.kind === kind)
      .map((f) => `${f.chart}/${f.template}`)
      .sort();
  const messages: string[] = [];
  const lookups = list('lookup');
  if (lookups.length > 0) {
    messages.push(
      `chart ${top}: ${lookups.length} template(s) use lookup, which reads the live cluster and returns nothing in a static render: ${lookups.join(', ')}; ` +
        'consider gitops: helmrelease for this chart, so Helm renders it in the cluster',
    );
  }
  const hooks = list('upgrade-hook');
  if (hooks.length > 0) {
    messages.push(
      `chart ${top}: ${hooks.length} template(s) declare upgrade hooks (helm.sh/hook pre-upgrade/post-upgrade), which only helm upgrade runs: ${hooks.join(', ')}; ` +
        'consider gitops: helmrelease for this chart',
    );
  }
  return messages;
}

/** Images from the image annotations of every chart; `warn` gets annotations that are not such a list. */
export function annotatedImages(charts: ChartMeta[], warn: (message: string) => void): AnnotatedImage[] {
  const out: AnnotatedImage[] = [];
  for (const chart of charts) {
    const name = chart.chain.join('/');
    for (const key of IMAGE_ANNOTATIONS) {
      const text = chart.annotations[key];
      if (text === undefined) continue;
      const where = `${name} Chart.yaml annotation ${key}`;
      let list: unknown;
      try {
        list = parseYamlValue(text, where, 'source');
      } catch (err) {
        warn(`${where}: not YAML (${(err as Error).message.split('\n')[0]}); ignored`);
        continue;
      }
      if (!Array.isArray(list)) {
        warn(`${where}: not a list of {name, image}; ignored`);
        continue;
      }
      for (const item of list) {
        const image = typeof item === 'object' && item !== null ? (item as Record<string, unknown>).image : undefined;
        if (typeof image === 'string' && image.trim() !== '') out.push({ image: image.trim(), chart: name, where });
        else warn(`${where}: an entry without an image; ignored`);
      }
    }
  }
  return out;
}
