import { lstat, mkdir, mkdtemp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AirlockError, ExitCode, UsageError } from '../../shared/cli/errors.ts';
import { discoverImages } from '../../shared/manifests/discover.ts';
import { readYamlText } from '../../shared/yaml/bounded.ts';
import type { ManifestFile } from '../sources/manifests.ts';
import { readChartTree } from './chart-files.ts';
import { lastLines, prepareHelmHome, runHelmToFile, type Helm } from './helm.ts';
import { annotatedImages, findingMessages, scanTemplates, type TemplateFinding } from './scan.ts';
import { writeSetValues, type SetValue } from './set-values.ts';
import { splitRendered } from './split.ts';

/**
 * Render one chart with the real Helm, as the spec asks (DESIGN.md §5 charts):
 *
 *   helm template RELEASE CHART --namespace NS --include-crds --skip-tests
 *        -f VALUES... -f <set as a values file> [--kube-version V] [--api-versions A]...
 *
 * in an isolated Helm environment (helm.ts: no user repositories, no network),
 * its output streamed to a file and split per template (split.ts) into
 *
 *   manifests/<releaseName>/<chart>/templates/<file>          the chart's own templates
 *   manifests/<releaseName>/<chart>/charts/<sub>/templates/... a subchart's
 *   manifests/<releaseName>/<chart>/crds/<file>               CRDs (--include-crds: a
 *                                                             rendered base must carry them)
 *
 * Tests (`helm.sh/hook: test`) are left out (--skip-tests): nothing runs them
 * from a GitOps base. Hooks stay: they are resources of the chart.
 *
 * Images: every container image of the rendered output (the same discovery
 * as any manifest's), plus the `helm.sh/images` / `artifacthub.io/images`
 * annotations of the chart and its subcharts, each with the chart it came
 * from. Warnings: templates that use `lookup` or upgrade hooks (scan.ts),
 * and anything helm printed on stderr while succeeding.
 *
 * A chart helm cannot render (a template error, bad values, missing
 * dependencies in charts/) is a UsageError (exit 2) naming the chart, with
 * helm's own message; the `set` values are masked in it.
 */
export interface RenderRequest {
  /** A chart folder or .tgz on disk. */
  chart: string;
  /** How messages name the chart (e.g. "charts[0] harness-delegate-ng"); default: the chart path. */
  label?: string;
  releaseName: string;
  namespace: string;
  /** Values files, in order (later ones win), resolved by the caller. */
  values?: string[];
  /** key path -> scalar, as helm --set names keys; wins over every values file. */
  set?: Record<string, SetValue>;
  kubeVersion?: string;
  apiVersions?: string[];
  /** More strings to mask in helm's messages (the spec's `set` values, when they come inside a merged values file). */
  maskValues?: string[];
}

export interface RenderOptions {
  helm: Helm;
  /** Airlock's work folder (the caller creates and removes it); this render uses a fresh folder in it. */
  workDir: string;
  /** The most rendered output helm may print (default MAX_RENDERED_BYTES). */
  maxOutputBytes?: number;
  timeoutMs?: number;
}

export interface ChartImage {
  image: string;
  /** Chart names from the rendered chart down: "harness-delegate-ng", "harness/platform/ng-manager". */
  chart: string;
  /** The manifest and container, or the annotation, that names it. */
  where: string;
  from: 'render' | 'annotation';
}

export interface RenderedChart {
  /** The rendered chart's own Chart.yaml name and version. */
  name: string;
  version: string;
  releaseName: string;
  namespace: string;
  /** "v4.1.4" */
  helmVersion: string;
  /** Sorted by path; paths "manifests/<releaseName>/...". */
  files: ManifestFile[];
  images: ChartImage[];
  findings: TemplateFinding[];
  /** For the user: lookup / upgrade hook templates, malformed image annotations, helm's own warnings. */
  warnings: string[];
}

export const MAX_RENDERED_BYTES = 512 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
/** Helm's own rule for release names (DNS-1123 subdomain, at most 53 characters). */
const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export async function renderChart(request: RenderRequest, options: RenderOptions): Promise<RenderedChart> {
  const chart = resolve(request.chart);
  const label = request.label ?? request.chart;
  const { releaseName, namespace } = request;
  if (!RELEASE_NAME.test(releaseName) || releaseName.length > 53) {
    throw new UsageError(`chart ${label}: releaseName ${JSON.stringify(releaseName)} is not a valid Helm release name`, {
      hint: 'lower-case letters, digits, "-" and ".", starting and ending with a letter or digit, at most 53 characters',
    });
  }
  if (!NAMESPACE.test(namespace) || namespace.length > 63) {
    throw new UsageError(`chart ${label}: namespace ${JSON.stringify(namespace)} is not a valid Kubernetes namespace`, {
      hint: 'lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters',
    });
  }
  const valuesFiles = (request.values ?? []).map((v) => resolve(v));
  for (const [i, file] of valuesFiles.entries()) {
    const info = await lstat(file).catch(() => undefined);
    if (!info?.isFile()) {
      throw new UsageError(`chart ${label}: values file ${request.values![i]} not found (or not a regular file)`, { hint: 'values are files, relative to the spec' });
    }
  }

  const charts = await readChartTree(chart, label);
  const top = charts[0]!;
  const work = await mkdtemp(join(options.workDir, `helm-${releaseName}-`));
  const env = await prepareHelmHome(join(work, 'helm-home'));

  const args = ['template', `--namespace=${namespace}`, '--include-crds', '--skip-tests'];
  for (const file of valuesFiles) args.push(`--values=${file}`);
  const set = request.set ?? {};
  if (Object.keys(set).length > 0) {
    const setFile = join(work, 'set-values.yaml');
    await writeSetValues(set, setFile, `chart ${label}: set`);
    args.push(`--values=${setFile}`);
  }
  if (request.kubeVersion !== undefined) args.push(`--kube-version=${request.kubeVersion}`);
  for (const api of request.apiVersions ?? []) args.push(`--api-versions=${api}`);
  args.push('--', releaseName, chart);

  const renderedFile = join(work, 'rendered.yaml');
  const run = await runHelmToFile(options.helm.path, args, {
    env,
    cwd: work,
    stdoutFile: renderedFile,
    maxStdoutBytes: options.maxOutputBytes ?? MAX_RENDERED_BYTES,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
  // helm's advice to rerun with --debug is not something an airlock user can do.
  const said = mask(run.stderr, [...Object.values(set), ...(request.maskValues ?? [])])
    .split('\n')
    .filter((l) => !/^Use --debug flag/.test(l.trim()))
    .join('\n');
  if (run.overflow) {
    throw new UsageError(`chart ${label}: helm template printed more than ${options.maxOutputBytes ?? MAX_RENDERED_BYTES} bytes; stopped`, {
      hint: 'check the values: a chart this large is not what they meant',
    });
  }
  if (run.timedOut) throw new UsageError(`chart ${label}: helm template did not finish in ${(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000} s; stopped`);
  if (run.code !== 0) {
    if (run.code === null) throw new AirlockError(ExitCode.Internal, `chart ${label}: helm ${options.helm.version} was killed (${run.signal}) while rendering: ${lastLines(said, 5)}`);
    throw new UsageError(`chart ${label}: helm template failed (helm ${options.helm.version}, exit ${run.code}): ${lastLines(said, 8) || 'no message'}`, {
      hint: "fix the chart's values (values files, set) or the chart; its dependencies must be in its charts/ folder",
    });
  }

  const outDir = join(work, 'manifests', releaseName);
  await mkdir(outDir, { recursive: true });
  const split = await splitRendered(renderedFile, outDir, label);
  const files: ManifestFile[] = split.map((f) => ({ path: `manifests/${releaseName}/${f.rel}`, size: f.size, sha256: f.sha256, file: f.file }));

  const warnings: string[] = [];
  const images: ChartImage[] = [];
  for (const f of files) {
    const chartOf = chartOfSource(f.path.slice(`manifests/${releaseName}/`.length));
    for (const found of discoverImages(await readYamlText(f.file, f.path, 'source'), f.path)) images.push({ image: found.image, chart: chartOf, where: found.where, from: 'render' });
  }
  for (const a of annotatedImages(charts, (m) => warnings.push(`chart ${label}: ${m}`))) images.push({ image: a.image, chart: a.chart, where: a.where, from: 'annotation' });

  const findings = scanTemplates(charts);
  warnings.push(...findingMessages(label, findings));
  for (const line of said.split('\n').map((l) => l.trim())) if (line !== '') warnings.push(`chart ${label}: helm: ${line}`);

  return { name: top.name, version: top.version, releaseName, namespace, helmVersion: options.helm.version, files, images, findings, warnings };
}

/** "harness/charts/platform/charts/ng-manager/templates/x.yaml" -> "harness/platform/ng-manager" */
export function chartOfSource(rel: string): string {
  const parts = rel.split('/');
  const chain = [parts[0]!];
  for (let i = 1; i + 1 < parts.length && parts[i] === 'charts'; i += 2) chain.push(parts[i + 1]!);
  return chain.join('/');
}

/** `set` strings (4 characters or more) masked in helm's messages: they may be secrets (tokens, passwords). */
function mask(text: string, values: SetValue[]): string {
  let out = text;
  for (const v of values) if (typeof v === 'string' && v.length >= 4) out = out.split(v).join('***');
  return out;
}
