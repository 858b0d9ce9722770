import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { UsageError } from '../shared/cli/errors.ts';
import type { Platform } from '../shared/oci/descriptor.ts';
import { parsePlatform } from '../shared/oci/platform.ts';
import { parseReference, type ImageReference } from '../shared/oci/reference.ts';

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

export type ChartSource =
  | { kind: 'repo'; repo: string; name: string; version: string }
  | { kind: 'oci'; oci: string; version: string };

export interface BundleSpec {
  file: string;
  name: string;
  version: string;
  platforms: Platform[];
  images: { reference: ImageReference; text: string; line: number }[];
  imageLists: string[];
  discoverImages: boolean;
  manifests: ManifestSource[];
  charts: ChartSource[];
}

const TOP_FIELDS = ['name', 'version', 'platforms', 'images', 'imageLists', 'discoverImages', 'manifests', 'charts'];
const NAME = /^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/;

export async function readSpec(file: string): Promise<BundleSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the spec ${file}: ${(err as Error).message}`);
  }
  return parseSpec(text, file);
}

export function parseSpec(text: string, file: string): BundleSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const at = (node: YamlNode | null | undefined): string => {
    const offset = node?.range?.[0];
    return offset === undefined ? file : `${file}:${lines.linePos(offset).line}`;
  };
  const fail = (node: YamlNode | null | undefined, message: string): never => {
    throw new UsageError(`${at(node)}: ${message}`, { hint: 'see DESIGN.md §5 for the airlock.yaml fields' });
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new UsageError(`${file}:${e.linePos?.[0]?.line ?? '?'}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
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
    return String(node.value);
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
        if (sha256 !== undefined && !/^[a-f0-9]{64}$/.test(sha256)) fail(n.get('sha256', true) as YamlNode, 'manifests[].sha256 must be 64 lowercase hex characters');
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

  const charts = list('charts').map((n): ChartSource => {
    if (!isMap(n)) return fail(n, 'each charts entry is a mapping: { repo, name, version } or { oci, version }');
    if (n.has('oci')) {
      checkKeys(n, ['oci', 'version'], 'charts[].', fail);
      const oci = str(n, 'oci', 'charts[].', true)!;
      if (!oci.startsWith('oci://')) fail(n.get('oci', true) as YamlNode, `charts[].oci must start with oci://: ${oci}`);
      return { kind: 'oci', oci, version: str(n, 'version', 'charts[].', true)! };
    }
    checkKeys(n, ['repo', 'name', 'version'], 'charts[].', fail);
    return {
      kind: 'repo',
      repo: str(n, 'repo', 'charts[].', true)!,
      name: str(n, 'name', 'charts[].', true)!,
      version: str(n, 'version', 'charts[].', true)!,
    };
  });

  return { file, name, version, platforms, images, imageLists, discoverImages, manifests, charts };
}

function checkKeys(map: YAMLMap, allowed: string[], where: string, fail: (node: YamlNode | null | undefined, message: string) => never): void {
  for (const pair of map.items) {
    const key = pair.key as YamlNode;
    const k = isScalar(key) ? String(key.value) : '?';
    if (!allowed.includes(k)) fail(key, `unknown field ${where}${k} (allowed: ${allowed.join(', ')})`);
  }
}
