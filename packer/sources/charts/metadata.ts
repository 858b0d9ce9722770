import { readFile } from 'node:fs/promises';
import { AirlockError, VerificationError } from '../../../shared/cli/errors.ts';
import { parseYamlValue } from '../../../shared/yaml/bounded.ts';
import { parseChartVersion } from './version.ts';

/**
 * Chart.yaml and Chart.lock, read as Helm reads them (helm/helm pkg/chart/v2
 * Metadata, Dependency, Lock). Only what airlock needs is typed; the whole
 * Chart.yaml object is kept for the OCI config (artifact.ts).
 */
export interface ChartDependency {
  name: string;
  /** A version or a range; "" means any (latest stable). */
  version: string;
  /** "https://...", "oci://...", "file://...", "@repo-name" / "alias:repo-name", or "" (vendored). */
  repository: string;
  alias?: string;
}

export interface ChartMetadata {
  name: string;
  version: string;
  apiVersion: string;
  dependencies: ChartDependency[];
  /** Chart.yaml as parsed. */
  raw: Record<string, unknown>;
}

export interface ChartLock {
  dependencies: { name: string; version: string; repository: string }[];
}

/** Chart and dependency names Helm accepts (a file name, no path). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function parseChartYaml(text: string, where: string): ChartMetadata {
  const raw = parseYamlMapping(text, where);
  const field = (key: string): string => {
    const v = raw[key];
    return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
  };
  const name = field('name');
  const version = field('version');
  const apiVersion = field('apiVersion') || 'v1';
  if (!NAME.test(name)) throw bad(where, `name ${JSON.stringify(name)} is missing or not a chart name`);
  if (parseChartVersion(version) === undefined) throw bad(where, `version ${JSON.stringify(version)} is missing or not a SemVer version`);
  const deps = raw.dependencies;
  if (deps !== undefined && deps !== null && !Array.isArray(deps)) throw bad(where, 'dependencies is not a list');
  const dependencies = ((deps as unknown[] | null | undefined) ?? []).map((d, i) => parseDependency(d, `${where}: dependencies[${i}]`));
  const seen = new Set<string>();
  for (const d of dependencies) {
    const key = d.alias ?? d.name;
    if (seen.has(key)) throw bad(where, `more than one dependency named ${JSON.stringify(key)}`);
    seen.add(key);
  }
  return { name, version, apiVersion, dependencies, raw };
}

function parseDependency(d: unknown, where: string): ChartDependency {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new VerificationError(`${where}: not a mapping`);
  const o = d as Record<string, unknown>;
  const str = (key: string): string => {
    const v = o[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string' && typeof v !== 'number') throw new VerificationError(`${where}: ${key} is not a string`);
    return String(v).trim();
  };
  const name = str('name');
  if (!NAME.test(name)) throw new VerificationError(`${where}: name ${JSON.stringify(name)} is missing or not a chart name`);
  const alias = str('alias');
  if (alias !== '' && !NAME.test(alias)) throw new VerificationError(`${where}: alias ${JSON.stringify(alias)} is not a chart name`);
  return { name, version: str('version'), repository: str('repository'), ...(alias ? { alias } : {}) };
}

export function parseChartLock(text: string, where: string): ChartLock {
  const raw = parseYamlMapping(text, where);
  const deps = raw.dependencies;
  if (deps === undefined || deps === null) return { dependencies: [] };
  if (!Array.isArray(deps)) throw bad(where, 'dependencies is not a list');
  return {
    dependencies: deps.map((d, i) => {
      const dep = parseDependency(d, `${where}: dependencies[${i}]`);
      return { name: dep.name, version: dep.version, repository: dep.repository };
    }),
  };
}

export async function readChartYaml(file: string, where: string): Promise<ChartMetadata> {
  return parseChartYaml(await readText(file, where), where);
}

/** Chart.lock next to a Chart.yaml, or undefined when there is none. */
export async function readChartLock(file: string, where: string): Promise<ChartLock | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseChartLock(text, where);
}

async function readText(file: string, where: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VerificationError(`${where}: missing`, { hint: 'a chart holds Chart.yaml at its top' });
    throw err;
  }
}

function parseYamlMapping(text: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseYamlValue(text, where, 'source');
  } catch (err) {
    if (err instanceof AirlockError) throw err;
    throw bad(where, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(where, 'not a YAML mapping');
  return value as Record<string, unknown>;
}

function bad(where: string, why: string): VerificationError {
  return new VerificationError(`${where}: ${why}`, { hint: 'the chart is malformed: check it with helm lint' });
}
