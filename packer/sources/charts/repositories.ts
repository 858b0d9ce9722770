import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { UsageError } from '../../../shared/cli/errors.ts';

/**
 * Helm's repositories.yaml (`helm repo add` writes it): per chart repository
 * URL a name, Basic credentials and a CA file. Read from
 * HELM_REPOSITORY_CONFIG, else $XDG_CONFIG_HOME/helm/repositories.yaml, else
 * ~/.config/helm/repositories.yaml. A missing file means no entries.
 * Passwords stay in memory: they are never logged or put in messages.
 */
export interface HelmRepository {
  name: string;
  /** As written, without a trailing "/". */
  url: string;
  username?: string;
  password?: string;
  caFile?: string;
}

export function repositoriesConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HELM_REPOSITORY_CONFIG) return env.HELM_REPOSITORY_CONFIG;
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'helm', 'repositories.yaml');
}

export function readHelmRepositories(file: string = repositoriesConfigPath()): HelmRepository[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UsageError(`cannot read Helm's repository config ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new UsageError(`Helm's repository config ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`, {
      hint: 'fix it, or point HELM_REPOSITORY_CONFIG at another file',
    });
  }
  const list = (doc as { repositories?: unknown } | null)?.repositories;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new UsageError(`Helm's repository config ${file}: repositories is not a list`);
  const out: HelmRepository[] = [];
  for (const r of list as unknown[]) {
    if (r === null || typeof r !== 'object') continue;
    const o = r as Record<string, unknown>;
    const s = (k: string) => (typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : undefined);
    const url = s('url');
    if (url === undefined) continue;
    out.push({
      name: s('name') ?? '',
      url: url.replace(/\/+$/, ''),
      ...(s('username') !== undefined ? { username: s('username') } : {}),
      ...(s('password') !== undefined ? { password: s('password') } : {}),
      ...(s('caFile') !== undefined ? { caFile: s('caFile') } : {}),
    });
  }
  return out;
}

/** The entry for a repository URL (trailing "/" and credentials in the URL ignored). */
export function repositoryFor(url: string, repositories: readonly HelmRepository[]): HelmRepository | undefined {
  const key = normalize(url);
  return repositories.find((r) => normalize(r.url) === key);
}

/** The entry named by a dependency's "@name" or "alias:name" repository. */
export function repositoryNamed(name: string, repositories: readonly HelmRepository[]): HelmRepository | undefined {
  return repositories.find((r) => r.name === name);
}

function normalize(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/+$/, '');
  } catch {
    return url.replace(/\/+$/, '');
  }
}
