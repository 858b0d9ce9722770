import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { UsageError } from '../../shared/cli/errors.ts';
import type { HttpTransport } from '../../shared/registry/transport.ts';
import { openRemote, type GitOptions } from './commit.ts';
import { findBundleFolder, readRelease } from './promote.ts';
import { fetchTip, initRepository } from './repo.ts';

/**
 * The images (and charts) of the bundle last loaded into a git branch, as
 * `load --git` recorded them in PATH/airlock/load-report.json: where each
 * landed in the enclave registry and the digest it was loaded with.
 */
export interface LoadedContent {
  url: string;
  branch: string;
  path: string;
  name: string;
  version: string;
  /** The registry the bundle was loaded into (HOST[:PORT][/PREFIX]). */
  registry: string;
  items: LoadedItem[];
}

export interface LoadedItem {
  /** The source reference (image) or charts/NAME:VERSION. */
  source: string;
  /** Registry host as written in the target. */
  host: string;
  repository: string;
  tag?: string;
  digest: string;
}

export type GitSource = Pick<GitOptions, 'url' | 'branch' | 'path' | 'username' | 'passwordEnv' | 'sshKey' | 'knownHosts'>;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export async function readLoadedContent(source: GitSource, transport: HttpTransport): Promise<LoadedContent> {
  const remote = openRemote(source, transport);
  const gitdir = await mkdtemp(join(tmpdir(), 'airlock-inventory-'));
  try {
    await initRepository(gitdir, remote, source.branch);
    const tip = await fetchTip(gitdir, remote, source.branch);
    if (!tip) throw new UsageError(`${remote.display} has no branch ${source.branch}`, { hint: 'give the branch load --git committed to with --git-branch' });
    const path = source.path?.replace(/^\/+|\/+$/g, '') ?? (await findBundleFolder(gitdir, tip, remote, source.branch));
    const { name, version } = await readRelease(gitdir, tip, path, source.branch);
    const file = `${path}/airlock/load-report.json`;
    let text: string;
    try {
      text = Buffer.from((await git.readBlob({ fs, gitdir, oid: tip, filepath: file })).blob).toString('utf8');
    } catch {
      throw new UsageError(`${source.branch} of ${remote.display} has no ${file}`, { hint: 'load the release with airlock load --git first' });
    }
    const report = parseLoadReport(text, `${file} on ${source.branch}`);
    return { url: remote.display, branch: source.branch, path, name, version, ...report };
  } finally {
    await rm(gitdir, { recursive: true, force: true });
    await remote.close?.();
  }
}

/** The registry and the loaded images and charts of a load-report.json. */
export function parseLoadReport(text: string, what: string): { registry: string; items: LoadedItem[] } {
  const bad = (problem: string): never => {
    throw new UsageError(`${what}: ${problem}`, { hint: 'the file is written by airlock load --git: load the release again' });
  };
  let body: { registry?: unknown; images?: unknown; charts?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof body?.registry !== 'string') return bad('no "registry"');
  const items: LoadedItem[] = [];
  for (const list of ['images', 'charts'] as const) {
    const entries = body[list] ?? [];
    if (!Array.isArray(entries)) return bad(`"${list}" is not a list`);
    entries.forEach((e: { source?: unknown; target?: unknown; digest?: unknown }, i) => {
      if (typeof e?.source !== 'string' || typeof e.target !== 'string' || typeof e.digest !== 'string' || !DIGEST_RE.test(e.digest)) {
        bad(`${list}[${i}] is not {source, target, digest}`);
      }
      const target = parseTarget(e.target as string);
      if (!target) return bad(`${list}[${i}].target ${JSON.stringify(e.target)} is not HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST`);
      items.push({ source: e.source as string, ...target, digest: e.digest as string });
    });
  }
  return { registry: body.registry, items };
}

/** "host:5000/apps/nginx:1.27" or "host:5000/apps/nginx@sha256:..." */
function parseTarget(target: string): { host: string; repository: string; tag?: string } | undefined {
  const m = /^([^/]+)\/([a-z0-9._\-/]+?)(?::([\w][\w.-]{0,127})|@(sha256:[a-f0-9]{64}))$/.exec(target);
  if (!m) return undefined;
  return { host: m[1]!, repository: m[2]!, ...(m[3] !== undefined ? { tag: m[3] } : {}) };
}
