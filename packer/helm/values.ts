import { createHash } from 'node:crypto';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { stringify, type Tags } from 'yaml';
import { AirlockError, UsageError } from '../../shared/cli/errors.ts';
import { parseYamlValue, yamlLimits } from '../../shared/yaml/bounded.ts';
import { setToValues, type SetValue } from './set-values.ts';

/**
 * The values a chart is rendered with, as ONE file: the spec's values files
 * merged in order, then `set`. Pack passes only this file to helm and carries
 * the same bytes in the bundle (charts/<releaseName>/values.yaml), so what was
 * rendered is provably what is carried, and a HelmRelease can inline it.
 *
 * The merge is helm's own for `-f a -f b` (pkg/cli/values mergeMaps): a
 * mapping merges key by key into the one before it; anything else (a list, a
 * scalar, null) replaces what was there. null is kept, so it still removes a
 * chart default when helm coalesces. `set` merges last (setToValues: the
 * same tree helm builds from a values file).
 *
 * YAML is read and written as helm reads values (go-yaml, YAML 1.1): `yes`,
 * `no`, `on`, `off` are booleans, `0755` is octal, a timestamp stays a
 * string; a string that would read as something else is quoted when written.
 * Numbers are JavaScript numbers (float64), as helm's are once parsed.
 */
export const MAX_VALUES_FILE_BYTES = 16 * 1024 * 1024;

export interface MergedValues {
  /** Bytes written to `out`. */
  size: number;
  /** hex */
  sha256: string;
}

type Values = Record<string, unknown>;

/** go-yaml v2 decodes a timestamp into a string when the target is an interface{}: so do we. */
const noTimestamps = (tags: Tags): Tags => tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:timestamp');

export async function mergeValuesFiles(files: string[], set: Record<string, SetValue>, out: string, label: string): Promise<MergedValues> {
  let merged: Values = {};
  for (const file of files) merged = mergeMaps(merged, await readValuesFile(file, label));
  if (Object.keys(set).length > 0) merged = mergeMaps(merged, setToValues(set, `${label}: set`));
  const text = Object.keys(merged).length === 0 ? '{}\n' : stringify(merged, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false });
  const bytes = Buffer.from(text);
  // The values may hold secrets (tokens, passwords): owner-only, like helm's own files.
  await writeFile(out, bytes, { mode: 0o600 });
  return { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** One values file: a mapping (an empty file is an empty one). */
export async function readValuesFile(file: string, label: string): Promise<Values> {
  const info = await lstat(file).catch(() => undefined);
  if (!info?.isFile()) {
    throw new UsageError(`${label}: values file ${file} not found (or not a regular file)`, { hint: 'values files are relative to the spec file' });
  }
  if (info.size > MAX_VALUES_FILE_BYTES) {
    throw new UsageError(`${label}: values file ${file} is ${info.size} bytes, more than ${MAX_VALUES_FILE_BYTES}`);
  }
  let doc: unknown;
  try {
    const what = `${label}: values file ${file}`;
    doc = parseYamlValue(await readFile(file, 'utf8'), what, 'user', { version: '1.1', customTags: noTimestamps, uniqueKeys: true }, { ...yamlLimits(), maxAliasCount: 1000 });
  } catch (err) {
    if (err instanceof AirlockError) throw err;
    throw new UsageError(`${label}: values file ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isMap(doc)) throw new UsageError(`${label}: values file ${file} must be a mapping of values at its top level`);
  return doc;
}

/** helm's mergeMaps(a, b): b wins; mappings merge recursively. Neither argument is changed. */
export function mergeMaps(a: Values, b: Values): Values {
  const out: Values = {};
  for (const [k, v] of Object.entries(a)) put(out, k, v);
  for (const [k, v] of Object.entries(b)) {
    const before = Object.hasOwn(out, k) ? out[k] : undefined;
    put(out, k, isMap(v) && isMap(before) ? mergeMaps(before, v) : v);
  }
  return out;
}

/** An own, enumerable property even for "__proto__". */
function put(o: Values, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function isMap(v: unknown): v is Values {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
