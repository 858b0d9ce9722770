import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type YAMLError, type YAMLMap } from 'yaml';
import { AirlockError, UsageError } from '../shared/cli/errors.ts';
import { checkYamlShape, readYamlText } from '../shared/yaml/bounded.ts';
import type { Platform } from '../shared/oci/descriptor.ts';
import { parsePlatform } from '../shared/oci/platform.ts';
import { parseReference, type ImageReference } from '../shared/oci/reference.ts';
import { parseSetKey, type SetValue } from './helm/set-values.ts';
import type { ChartSourceSpec } from './sources/charts/index.ts';

/**
 * The bundle spec, airlock.yaml (DESIGN.md §5), parsed and validated with
 * errors that name the file, the field and the line. Relative paths resolve
 * against the spec's folder.
 */
export type ManifestSource =
  | { kind: 'path'; path: string }
  | { kind: 'url'; url: string; sha256?: string }
  | { kind: 'git'; url: string; ref?: string; path?: string }
  | { kind: 's3'; url: string };

export type ChartGitopsMode = 'rendered' | 'helmrelease';

/** One `charts:` entry: where the chart comes from and how it is rendered. */
export interface ChartSpec {
  source: ChartSourceSpec;
  /** "airlock.yaml:12", for messages. */
  where: string;
  /** As given; when absent the chart's name (known before fetching for repo and oci sources: see defaultReleaseName). */
  releaseName?: string;
  /** As given; when absent the release name. */
  namespace?: string;
  /** Values files, absolute (given relative to the spec), in order: later ones win. */
  values: string[];
  /** key path (helm --set syntax) -> scalar; wins over every values file. */
  set: Record<string, SetValue>;
  gitops: ChartGitopsMode;
  kubeVersion?: string;
  apiVersions?: string[];
}

/** The release name a chart entry has before its Chart.yaml is read: given, or the chart's name where the source names it. */
export function defaultReleaseName(chart: ChartSpec): string | undefined {
  if (chart.releaseName !== undefined) return chart.releaseName;
  if (chart.source.kind === 'repo') return chart.source.name;
  if (chart.source.kind === 'oci') return chart.source.oci.replace(/\/+$/, '').split('/').pop();
  return undefined;
}

/** Helm's rule for release names (a DNS-1123 subdomain of at most 53 characters). */
export const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CHART_FIELDS = ['releaseName', 'namespace', 'values', 'set', 'gitops', 'kubeVersion', 'apiVersions'];

export interface BundleSpec {
  file: string;
  name: string;
  version: string;
  platforms: Platform[];
  images: { reference: ImageReference; text: string; line: number }[];
  imageLists: string[];
  discoverImages: boolean;
  manifests: ManifestSource[];
  charts: ChartSpec[];
}

const TOP_FIELDS = ['name', 'version', 'platforms', 'images', 'imageLists', 'discoverImages', 'manifests', 'charts'];
const NAME = /^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/;

export async function readSpec(file: string): Promise<BundleSpec> {
  let text: string;
  try {
    text = await readYamlText(file, file, 'user');
  } catch (err) {
    if (err instanceof AirlockError) throw err;
    throw new UsageError(`cannot read the spec ${file}: ${(err as Error).message}`);
  }
  return parseSpec(text, file);
}

export function parseSpec(text: string, file: string): BundleSpec {
  checkYamlShape(text, file, 'user');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const at = (node: YamlNode | null | undefined): string => {
    const offset = node?.range?.[0];
    return offset === undefined ? file : `${file}:${lines.linePos(offset).line}`;
  };
  const fail = (node: YamlNode | null | undefined, message: string): never => {
    throw new UsageError(`${at(node)}: ${message}`, { hint: 'docs/spec.md lists every airlock.yaml field' });
  };
  if (doc.errors.length > 0) throw yamlSyntaxError(file, text, doc.errors[0]!);
  const root = doc.contents;
  if (!isMap(root)) return fail(root, 'the spec must be a mapping of fields (name, version, images, ...)');
  const base = dirname(resolve(file));

  checkKeys(root, TOP_FIELDS, '', fail);
  const str = (map: YAMLMap, key: string, where: string, required: boolean): string | undefined => {
    const node = map.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) {
      return required ? fail(map, `missing required field ${where}${key}`) : undefined;
    }
    if (!isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number')) {
      return fail(node, `${where}${key} must be a string`);
    }
    // A number keeps the text it was written as: "1.10" is not "1.1".
    return typeof node.value === 'number' && node.source !== undefined ? node.source : String(node.value);
  };
  const list = (key: string): YamlNode[] => {
    const node = root.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) return fail(node, `${key} must be a list`);
    return node.items as YamlNode[];
  };

  const name = str(root, 'name', '', true)!;
  if (!NAME.test(name)) fail(root.get('name', true) as YamlNode, `name ${JSON.stringify(name)} must be lowercase letters, digits, '.', '_' or '-'`);
  const version = str(root, 'version', '', true)!;

  const platforms = list('platforms').map((n) => {
    if (!isScalar(n) || typeof n.value !== 'string') return fail(n, 'platforms entries must be strings like linux/amd64');
    try {
      return parsePlatform(n.value);
    } catch (err) {
      return fail(n, (err as Error).message);
    }
  });

  const images = list('images').map((n) => {
    if (!isScalar(n) || typeof n.value !== 'string') return fail(n, 'images entries must be image references');
    try {
      return { reference: parseReference(n.value), text: n.value, line: lines.linePos(n.range![0]).line };
    } catch (err) {
      return fail(n, (err as Error).message);
    }
  });

  const imageLists = list('imageLists').map((n) => {
    if (!isScalar(n) || typeof n.value !== 'string') return fail(n, 'imageLists entries must be file paths');
    return resolve(base, n.value);
  });

  const discoverNode = root.get('discoverImages', true) as YamlNode | undefined;
  let discoverImages = false;
  if (discoverNode !== undefined) {
    if (!isScalar(discoverNode) || typeof discoverNode.value !== 'boolean') fail(discoverNode, 'discoverImages must be true or false');
    discoverImages = (discoverNode as { value: boolean }).value;
  }

  const manifests = list('manifests').map((n): ManifestSource => {
    if (!isMap(n)) return fail(n, 'each manifests entry is a mapping with one of path, url, git, s3');
    const kinds = ['path', 'url', 'git', 's3'].filter((k) => n.has(k));
    if (kinds.length !== 1) return fail(n, 'each manifests entry has exactly one of path, url, git, s3');
    switch (kinds[0]) {
      case 'path':
        checkKeys(n, ['path'], 'manifests[].', fail);
        return { kind: 'path', path: resolve(base, str(n, 'path', 'manifests[].', true)!) };
      case 'url': {
        checkKeys(n, ['url', 'sha256'], 'manifests[].', fail);
        const url = str(n, 'url', 'manifests[].', true)!;
        if (!/^https?:\/\//.test(url)) fail(n.get('url', true) as YamlNode, `manifests[].url must be http(s): ${url}`);
        const sha256 = str(n, 'sha256', 'manifests[].', false);
        if (sha256 !== undefined && !/^[a-f0-9]{64}$/.test(sha256)) {
          const node = n.get('sha256', true) as YamlNode;
          const number = isScalar(node) && typeof node.value === 'number';
          fail(node, `manifests[].sha256 must be 64 lowercase hex characters${number ? `; YAML read ${sha256} as a number: put the digest in quotes (sha256: "...")` : ''}`);
        }
        return { kind: 'url', url, ...(sha256 ? { sha256 } : {}) };
      }
      case 'git': {
        checkKeys(n, ['git'], 'manifests[].', fail);
        const g = n.get('git', true) as YamlNode;
        if (!isMap(g)) return fail(g, 'manifests[].git is a mapping with url, ref, path');
        checkKeys(g, ['url', 'ref', 'path'], 'manifests[].git.', fail);
        const ref = str(g, 'ref', 'manifests[].git.', false);
        const path = str(g, 'path', 'manifests[].git.', false);
        return { kind: 'git', url: str(g, 'url', 'manifests[].git.', true)!, ...(ref ? { ref } : {}), ...(path ? { path } : {}) };
      }
      default: {
        checkKeys(n, ['s3'], 'manifests[].', fail);
        const url = str(n, 's3', 'manifests[].', true)!;
        if (!url.startsWith('s3://')) fail(n.get('s3', true) as YamlNode, `manifests[].s3 must start with s3://: ${url}`);
        return { kind: 's3', url };
      }
    }
  });

  const chartNodes = list('charts');
  const charts = chartNodes.map((n) => parseChart(n));
  // Release names are unique: each has its own manifests/<releaseName>/ and values. Names
  // known only from Chart.yaml (path and git sources) are checked again once fetched.
  const releases = new Map<string, number>();
  charts.forEach((c, i) => {
    const release = defaultReleaseName(c);
    if (release === undefined) return;
    const before = releases.get(release);
    if (before !== undefined) {
      const node = chartNodes[i] as YAMLMap;
      fail((node.get('releaseName', true) as YamlNode | undefined) ?? node, `release name ${JSON.stringify(release)} is already used by the chart at ${charts[before]!.where}; give each chart its own releaseName`);
    }
    releases.set(release, i);
  });

  function parseChart(n: YamlNode): ChartSpec {
    const what = 'each charts entry is a mapping with exactly one of repo (with name), oci, path, git';
    if (!isMap(n)) return fail(n, what);
    const kinds = ['repo', 'oci', 'path', 'git'].filter((k) => n.has(k));
    if (kinds.length !== 1) return fail(n, what);
    const where = at(n);
    const w = 'charts[].';
    let source: ChartSourceSpec;
    switch (kinds[0]) {
      case 'repo': {
        checkKeys(n, ['repo', 'name', 'version', ...CHART_FIELDS], w, fail);
        const repo = str(n, 'repo', w, true)!;
        if (!/^https?:\/\//.test(repo)) fail(n.get('repo', true) as YamlNode, `charts[].repo must be an http(s) chart repository URL: ${repo}`);
        source = { kind: 'repo', repo, name: str(n, 'name', w, true)!, version: str(n, 'version', w, true)! };
        break;
      }
      case 'oci': {
        checkKeys(n, ['oci', 'version', ...CHART_FIELDS], w, fail);
        const oci = str(n, 'oci', w, true)!;
        if (!oci.startsWith('oci://')) fail(n.get('oci', true) as YamlNode, `charts[].oci must start with oci://: ${oci}`);
        source = { kind: 'oci', oci, version: str(n, 'version', w, true)! };
        break;
      }
      case 'path':
        checkKeys(n, ['path', ...CHART_FIELDS], w, fail);
        source = { kind: 'path', path: resolve(base, str(n, 'path', w, true)!) };
        break;
      default: {
        checkKeys(n, ['git', ...CHART_FIELDS], w, fail);
        const g = n.get('git', true) as YamlNode;
        if (!isMap(g)) return fail(g, 'charts[].git is a mapping with url, ref, path');
        checkKeys(g, ['url', 'ref', 'path'], 'charts[].git.', fail);
        const ref = str(g, 'ref', 'charts[].git.', false);
        const path = str(g, 'path', 'charts[].git.', false);
        source = { kind: 'git', git: { url: str(g, 'url', 'charts[].git.', true)!, ...(ref ? { ref } : {}), ...(path ? { path } : {}) } };
      }
    }

    const releaseName = str(n, 'releaseName', w, false);
    if (releaseName !== undefined && (!RELEASE_NAME.test(releaseName) || releaseName.length > 53)) {
      fail(n.get('releaseName', true) as YamlNode, `charts[].releaseName ${JSON.stringify(releaseName)} is not a valid Helm release name (lower-case letters, digits, "-" and ".", at most 53 characters)`);
    }
    const namespace = str(n, 'namespace', w, false);
    if (namespace !== undefined && (!NAMESPACE.test(namespace) || namespace.length > 63)) {
      fail(n.get('namespace', true) as YamlNode, `charts[].namespace ${JSON.stringify(namespace)} is not a valid Kubernetes namespace (lower-case letters, digits and "-", at most 63 characters)`);
    }
    const values = stringList(n, 'values', w).map((v) => resolve(base, v));
    const set: Record<string, SetValue> = {};
    const setNode = n.get('set', true) as YamlNode | undefined;
    if (setNode !== undefined && !(isScalar(setNode) && setNode.value === null)) {
      if (!isMap(setNode)) fail(setNode, 'charts[].set must be a mapping of key: value (keys as helm --set takes them: a.b.c, list[0].name)');
      for (const pair of (setNode as YAMLMap).items) {
        const key = pair.key as YamlNode;
        if (!isScalar(key) || (typeof key.value !== 'string' && typeof key.value !== 'number')) return fail(key, 'charts[].set keys must be strings');
        const k = String(key.value);
        try {
          parseSetKey(k, 'charts[].set');
        } catch (err) {
          return fail(key, (err as Error).message);
        }
        const v = pair.value as YamlNode | null;
        if (v === null || (isScalar(v) && v.value === null)) set[k] = null;
        else if (isScalar(v) && ['string', 'number', 'boolean'].includes(typeof v.value)) set[k] = v.value as string | number | boolean;
        else return fail(v, `charts[].set.${k} must be a scalar (a string, number, true/false or null); put lists and mappings in a values file`);
      }
    }
    const gitops = str(n, 'gitops', w, false) ?? 'rendered';
    if (gitops !== 'rendered' && gitops !== 'helmrelease') fail(n.get('gitops', true) as YamlNode, `charts[].gitops must be rendered or helmrelease, not ${JSON.stringify(gitops)}`);
    const kubeVersion = str(n, 'kubeVersion', w, false);
    if (kubeVersion !== undefined && !/^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.+-]*)?$/.test(kubeVersion)) {
      fail(n.get('kubeVersion', true) as YamlNode, `charts[].kubeVersion ${JSON.stringify(kubeVersion)} is not a Kubernetes version like 1.30.0`);
    }
    const apiVersions = n.has('apiVersions') ? stringList(n, 'apiVersions', w) : undefined;
    return {
      source,
      where,
      ...(releaseName !== undefined ? { releaseName } : {}),
      ...(namespace !== undefined ? { namespace } : {}),
      values,
      set,
      gitops: gitops as ChartGitopsMode,
      ...(kubeVersion !== undefined ? { kubeVersion } : {}),
      ...(apiVersions !== undefined ? { apiVersions } : {}),
    };
  }

  function stringList(map: YAMLMap, key: string, where: string): string[] {
    const node = map.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) return fail(node, `${where}${key} must be a list`);
    return (node.items as YamlNode[]).map((item) => {
      if (!isScalar(item) || (typeof item.value !== 'string' && typeof item.value !== 'number') || String(item.value) === '') return fail(item, `${where}${key} entries must be strings`);
      return String(item.value);
    });
  }

  return { file, name, version, platforms, images, imageLists, discoverImages, manifests, charts };
}

/** A YAML syntax error as file:line:column, the message, and the line itself with a caret under the column. */
function yamlSyntaxError(file: string, text: string, e: YAMLError): UsageError {
  const pos = e.linePos?.[0];
  const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  if (!pos) return new UsageError(`${file}: invalid YAML: ${what}`);
  const line = (text.split(/\r?\n/)[pos.line - 1] ?? '').replace(/\t/g, ' ');
  return new UsageError(`${file}:${pos.line}: invalid YAML: ${what} (column ${pos.col})\n  ${line}\n  ${' '.repeat(Math.max(0, pos.col - 1))}^`, {
    hint: 'YAML nests by indentation (spaces, not tabs): check that line and the one before it',
  });
}

function checkKeys(map: YAMLMap, allowed: string[], where: string, fail: (node: YamlNode | null | undefined, message: string) => never): void {
  for (const pair of map.items) {
    const key = pair.key as YamlNode;
    const k = isScalar(key) ? String(key.value) : '?';
    if (!allowed.includes(k)) fail(key, `unknown field ${where}${k} (allowed: ${allowed.join(', ')})`);
  }
}
