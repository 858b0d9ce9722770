import fs from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import git, { type GitHttpResponse, type HttpClient, type ServerRef, type TreeEntry } from 'isomorphic-git';
import { RemoteError, UsageError, VerificationError } from '../../shared/cli/errors.ts';
import { gitRemoteCall, openGitRemote, type GitRemote } from '../../shared/git/remote.ts';
import { DEFAULT_RETRY } from '../../shared/registry/retry.ts';
import type { HttpTransport } from '../../shared/registry/transport.ts';

/**
 * One folder of one commit of a git repository, written out as plain files:
 * the source behind `git:` entries of the spec (manifests, and charts).
 *
 * Nothing is cloned. A temporary bare repository under the work folder
 * fetches exactly one ref (a branch, a tag, or a full commit sha) at depth 1,
 * one branch, no tags; the tree under `path` is then written from git objects.
 * What a bundle can carry and what it cannot:
 *
 *   regular files (100644, 100755)  -> written, mode 0644
 *   symbolic links (120000)         -> refused, exit 3, naming the file and its target
 *   submodules (gitlinks, 160000)   -> skipped, each one reported through onLog
 *   a name git itself would refuse  -> refused, exit 3 ("..", ".git", a slash, NUL)
 *
 * Links are refused rather than skipped: a manifest folder that silently
 * lacks a file renders differently in the enclave, and a link to outside the
 * folder may be a trap. The written tree is capped in files and bytes as url
 * archives are, and the fetch itself (isomorphic-git holds the received pack
 * in memory) is capped in bytes.
 */
export interface GitTreeSource {
  /** https://host/path.git, ssh://user@host[:port]/path or user@host:path */
  url: string;
  /** A branch, a tag (short or refs/...), or a full 40-hex commit sha; default: the remote's HEAD. */
  ref?: string;
  /** Folder inside the repository; default: the whole tree. */
  path?: string;
}

export interface FetchGitTreeOptions {
  /** Where the temporary repository goes (under airlock's own work folder; removed before returning). */
  workDir: string;
  /** For https: the packer's transport (TLS trust with --ca-file, retries). */
  transport: HttpTransport;
  /** --git-username, with the password in the environment variable --git-password-env names. */
  username?: string;
  passwordEnv?: string;
  /** For SSH: --ssh-key, --known-hosts; the passphrase defaults to AIRLOCK_SSH_PASSPHRASE. */
  sshKey?: string;
  knownHosts?: string;
  sshPassphrase?: string;
  /** How the source is named in messages, e.g. "manifests[2].git". */
  label?: string;
  /** Skipped submodules and similar notes. */
  onLog?: (message: string) => void;
  /** Caps on the written tree and on the fetched pack (defaults below). */
  maxBytes?: number;
  maxFiles?: number;
  maxFetchBytes?: number;
}

export interface GitTree {
  /** The commit the tree was read from (a tag is peeled to its commit). */
  commit: string;
  /** The full ref that was fetched ("refs/tags/v1.2.0"), or the sha when a sha was asked for. */
  ref: string;
  /** The folder holding the tree (`dest`). */
  dir: string;
  files: number;
  bytes: number;
  /** Submodules (gitlinks) that were skipped, as paths relative to `dir`. */
  skippedSubmodules: string[];
}

export const MAX_GIT_TREE_BYTES = 512 * 1024 * 1024;
export const MAX_GIT_TREE_FILES = 100_000;
export const MAX_GIT_FETCH_BYTES = 512 * 1024 * 1024;
const MiB = 1024 * 1024;
const SHA = /^[0-9a-f]{40}$/;
/** Refs shown when the asked-for one does not exist. */
const REFS_SHOWN = 8;

/**
 * Fetch `source` and write its tree under `path` into `dest` (created; it
 * must not hold anything yet). Returns the commit it came from.
 */
export async function fetchGitTree(source: GitTreeSource, dest: string, options: FetchGitTreeOptions): Promise<GitTree> {
  const label = options.label ?? 'git';
  const segments = treePath(source.path, label);
  const opened = openGitRemote(
    { url: source.url, username: options.username, passwordEnv: options.passwordEnv, sshKey: options.sshKey, knownHosts: options.knownHosts, sshPassphrase: options.sshPassphrase },
    options.transport,
    `${label}.url`,
  );
  const cap = new CappedHttp(opened.http, options.maxFetchBytes ?? MAX_GIT_FETCH_BYTES, label, opened.display);
  const remote: GitRemote = { ...opened, http: cap.http };
  const gitdir = await mkdtemp(join(options.workDir, 'git-'));
  try {
    const wanted = await cap.check(() => resolveRef(remote, source.ref, label));
    await git.init({ fs, gitdir, bare: true });
    await git.addRemote({ fs, gitdir, remote: 'origin', url: remote.url });
    const notServed = (err?: unknown) =>
      new RemoteError(`${label}: ${remote.display} did not serve commit ${wanted.ref}`, {
        hint: 'check that the commit exists there; servers hand out commits by sha only when they allow it (git: uploadpack.allowReachableSHA1InWant), else name a branch or tag',
        cause: err,
      });
    let fetchHead: string | null | undefined;
    try {
      ({ fetchHead } = await cap.check(() =>
        gitRemoteCall(remote, `fetch ${wanted.shown}`, () =>
          git.fetch({ fs, http: remote.http, gitdir, remote: 'origin', ref: wanted.ref, remoteRef: wanted.ref, singleBranch: true, tags: false, depth: 1 }),
          { retry: DEFAULT_RETRY },
        ),
      ));
    } catch (err) {
      const text = `${(err as Error).message} ${(err as { cause?: Error }).cause?.message ?? ''}`;
      if (wanted.kind === 'sha' && /not our ref|unadvertised|not valid|NotFoundError|Could not find/i.test(text)) throw notServed(err);
      throw err;
    }
    const cache = {};
    // What the fetch resolved the ref to (the branch may have moved since it was listed).
    const fetched = fetchHead ?? wanted.oid ?? wanted.ref;
    if (!(await hasObject(gitdir, cache, fetched))) {
      if (wanted.kind === 'sha') throw notServed();
      throw new RemoteError(`${label}: ${remote.display} did not send ${wanted.shown} (${fetched})`, { hint: 'try again; if it persists, the server is not serving the ref it advertises' });
    }
    const commit = await peelToCommit(gitdir, cache, fetched, label);
    if (wanted.kind === 'sha' && commit !== wanted.ref) {
      throw new VerificationError(`${label}: asked for commit ${wanted.ref}, ${remote.display} sent ${commit}`);
    }
    const root = (await git.readCommit({ fs, gitdir, oid: commit, cache })).commit.tree;
    const tree = await descend(gitdir, cache, root, segments, label, wanted.shown);
    await mkdir(dest, { recursive: true });
    const writer = new TreeWriter(gitdir, cache, label, options);
    await writer.write(tree, dest, '');
    return { commit, ref: wanted.ref, dir: dest, files: writer.files, bytes: writer.bytes, skippedSubmodules: writer.submodules };
  } finally {
    await remote.close?.();
    await rm(gitdir, { recursive: true, force: true });
  }
}

/** The repository's name from its URL ("https://host/org/app.git" -> "app"), for folder names. */
export function repositoryName(url: string): string | undefined {
  const path = /^[^@/:\s]+@[^:/\s]+:(?!\/\/)(.+)$/.exec(url)?.[1] ?? safePathname(url);
  const last = path?.replace(/\/+$/, '').split('/').pop()?.replace(/\.git$/, '');
  return last && last !== '.' && last !== '..' ? last : undefined;
}

function safePathname(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).pathname);
  } catch {
    return undefined;
  }
}

/** `path` as tree segments; "", "/" and undefined are the whole tree. */
function treePath(path: string | undefined, label: string): string[] {
  const segments = (path ?? '').split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s === '.' || s.includes('\\') || s.includes('\0'))) {
    throw new UsageError(`${label}.path ${JSON.stringify(path)}: not a folder inside the repository`, { hint: 'give a relative path such as deploy/prod, without ".."' });
  }
  return segments;
}

interface WantedRef {
  kind: 'branch' | 'tag' | 'ref' | 'sha';
  /** What git.fetch is asked for: a full ref or a sha. */
  ref: string;
  /** The advertised object (a tag object for annotated tags), when advertised. */
  oid?: string;
  /** For messages. */
  shown: string;
}

/** Which ref to fetch: checked against what the server advertises (a sha is taken as it is). */
async function resolveRef(remote: GitRemote, ref: string | undefined, label: string): Promise<WantedRef> {
  if (ref !== undefined && SHA.test(ref)) return { kind: 'sha', ref, shown: `commit ${ref}` };
  const refs = await gitRemoteCall(remote, 'list refs', () => git.listServerRefs({ http: remote.http, url: remote.url, symrefs: true, peelTags: true }), { retry: DEFAULT_RETRY });
  const byName = new Map(refs.map((r) => [r.ref, r]));
  if (ref === undefined) {
    const head = byName.get('HEAD');
    const target = head?.target;
    if (target && byName.has(target)) return { kind: 'branch', ref: target, oid: byName.get(target)!.oid, shown: `${target} (the remote's HEAD)` };
    throw new UsageError(`${label}: ${remote.display} has no default branch to fetch`, { hint: `name a ref in the spec (ref: ...); it has ${listRefs(refs)}` });
  }
  if (ref.startsWith('refs/')) {
    const exact = byName.get(ref);
    if (exact) return { kind: ref.startsWith('refs/tags/') ? 'tag' : ref.startsWith('refs/heads/') ? 'branch' : 'ref', ref, oid: exact.oid, shown: ref };
  } else {
    const branch = byName.get(`refs/heads/${ref}`);
    const tag = byName.get(`refs/tags/${ref}`);
    if (branch && tag) {
      throw new UsageError(`${label}: ${ref} is both a branch and a tag at ${remote.display}`, { hint: `write ref: refs/heads/${ref} or ref: refs/tags/${ref}` });
    }
    if (branch) return { kind: 'branch', ref: branch.ref, oid: branch.oid, shown: `branch ${ref}` };
    if (tag) return { kind: 'tag', ref: tag.ref, oid: tag.oid, shown: `tag ${ref}` };
  }
  const short = /^[0-9a-f]{4,39}$/.test(ref) ? '; a commit is named by its full 40-character sha' : '';
  throw new UsageError(`${label}: ${remote.display} has no branch or tag ${JSON.stringify(ref)}`, {
    hint: `it has ${listRefs(refs)}${short}`,
  });
}

/** A few of the remote's branches and tags, for messages. */
function listRefs(refs: ServerRef[]): string {
  const names = refs
    .map((r) => r.ref)
    .filter((r) => r.startsWith('refs/heads/') || r.startsWith('refs/tags/'))
    .map((r) => (r.startsWith('refs/heads/') ? `branch ${r.slice(11)}` : `tag ${r.slice(10)}`));
  if (names.length === 0) return 'no branches or tags';
  return names.slice(0, REFS_SHOWN).join(', ') + (names.length > REFS_SHOWN ? `, and ${names.length - REFS_SHOWN} more` : '');
}

async function hasObject(gitdir: string, cache: object, oid: string): Promise<boolean> {
  try {
    await git.readObject({ fs, gitdir, oid, cache, format: 'deflated' });
    return true;
  } catch {
    return false;
  }
}

/** Follow annotated tags down to the commit. */
async function peelToCommit(gitdir: string, cache: object, oid: string, label: string): Promise<string> {
  for (let hops = 0; hops < 10; hops++) {
    let object;
    try {
      object = await git.readObject({ fs, gitdir, oid, cache, format: 'parsed' });
    } catch (err) {
      throw new RemoteError(`${label}: the server did not send ${oid}, which the ref points to`, { cause: err });
    }
    if (object.type === 'commit') return oid;
    if (object.type !== 'tag') throw new UsageError(`${label}: the ref names a ${object.type}, not a commit`, { hint: 'name a branch, a tag of a commit, or a commit' });
    oid = (object.object as { object: string }).object;
  }
  throw new VerificationError(`${label}: a chain of more than 10 tags`);
}

/** The tree at `segments` below `root`. */
async function descend(gitdir: string, cache: object, root: string, segments: string[], label: string, shown: string): Promise<string> {
  let tree = root;
  for (const [i, name] of segments.entries()) {
    const here = segments.slice(0, i + 1).join('/');
    const entries = (await git.readTree({ fs, gitdir, oid: tree, cache })).tree;
    const entry = entries.find((e) => e.path === name);
    if (!entry) {
      const folders = entries.filter((e) => e.type === 'tree').map((e) => e.path);
      throw new UsageError(`${label}.path: ${shown} has no ${here}`, {
        hint: folders.length > 0 ? `folders there: ${folders.slice(0, 12).join(', ')}${folders.length > 12 ? ', ...' : ''}` : 'check the path and the ref',
      });
    }
    if (entry.mode === '120000') throw new VerificationError(`${label}.path: ${here} is a symbolic link in ${shown}; bundles carry regular files only`, { hint: 'name the folder it points to' });
    if (entry.type === 'commit') throw new UsageError(`${label}.path: ${here} is a submodule in ${shown}`, { hint: 'name the submodule’s own repository and commit as a git source' });
    if (entry.type !== 'tree') throw new UsageError(`${label}.path: ${here} is a file in ${shown}, not a folder`, { hint: 'name the folder that holds it' });
    tree = entry.oid;
  }
  return tree;
}

/** A name that git would never check out, or that could escape the folder. */
function unsafeName(name: string): boolean {
  return name === '' || name === '.' || name === '..' || name.toLowerCase() === '.git' || /[/\\\0]/.test(name);
}

class TreeWriter {
  files = 0;
  bytes = 0;
  submodules: string[] = [];
  private readonly maxBytes: number;
  private readonly maxFiles: number;

  constructor(
    private readonly gitdir: string,
    private readonly cache: object,
    private readonly label: string,
    private readonly options: FetchGitTreeOptions,
  ) {
    this.maxBytes = options.maxBytes ?? MAX_GIT_TREE_BYTES;
    this.maxFiles = options.maxFiles ?? MAX_GIT_TREE_FILES;
  }

  async write(tree: string, dir: string, rel: string): Promise<void> {
    const { gitdir, cache, label } = this;
    const entries: TreeEntry[] = (await git.readTree({ fs, gitdir, oid: tree, cache })).tree;
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    for (const e of entries) {
      const shown = rel === '' ? e.path : `${rel}/${e.path}`;
      if (unsafeName(e.path)) throw new VerificationError(`${label}: the repository holds an entry named ${JSON.stringify(shown)}, which git itself refuses to check out`);
      const full = join(dir, e.path);
      if (e.type === 'tree') {
        await mkdir(full);
        await this.write(e.oid, full, shown);
      } else if (e.type === 'commit') {
        this.submodules.push(shown);
        this.options.onLog?.(`${label}: ${shown} is a submodule (commit ${e.oid}); skipped, add its repository as a git source of its own if it is needed`);
      } else if (e.mode === '120000') {
        const { blob } = await git.readBlob({ fs, gitdir, oid: e.oid, cache });
        const target = Buffer.from(blob).toString('utf8').slice(0, 200);
        throw new VerificationError(`${label}: ${shown} is a symbolic link (to ${JSON.stringify(target)}); bundles carry regular files only`, {
          hint: 'replace the link with the file it stands for in the repository, or point path: at a folder without links',
        });
      } else if (e.mode === '100644' || e.mode === '100755') {
        this.files += 1;
        if (this.files > this.maxFiles) throw new VerificationError(`${label}: the tree holds more than ${this.maxFiles} files; that is not a manifest folder`, { hint: 'point path: at the folder of YAML you need' });
        const { blob } = await git.readBlob({ fs, gitdir, oid: e.oid, cache });
        this.bytes += blob.length;
        if (this.bytes > this.maxBytes) {
          throw new VerificationError(`${label}: the tree holds more than ${shownSize(this.maxBytes)}; that is not a manifest folder`, { hint: 'point path: at the folder of YAML you need' });
        }
        await writeFile(full, blob, { flag: 'wx', mode: 0o644 });
      } else {
        throw new VerificationError(`${label}: ${shown} has the unknown git mode ${e.mode}`);
      }
    }
  }
}

function shownSize(bytes: number): string {
  return bytes >= MiB ? `${Math.round(bytes / MiB)} MiB` : `${bytes} bytes`;
}

/**
 * The remote's responses, counted: past `max` bytes the stream stops. The
 * error thrown into isomorphic-git may not come back out of it whole (a cut
 * ref advertisement can read as a short list), so `check` rethrows it after
 * every exchange, whatever isomorphic-git made of it.
 */
class CappedHttp {
  readonly http: HttpClient;
  private tripped: VerificationError | undefined;

  constructor(inner: HttpClient, max: number, label: string, display: string) {
    let seen = 0;
    const trip = () =>
      (this.tripped ??= new VerificationError(`${label}: ${display} sent more than ${shownSize(max)} for one commit; that is not a manifest repository`, {
        hint: 'point the source at a smaller repository, or use a url: source for a release archive',
      }));
    this.http = {
      async request(req) {
        const res: GitHttpResponse = await inner.request(req);
        const body = res.body;
        if (!body) return res;
        async function* counted(): AsyncGenerator<Uint8Array> {
          for await (const chunk of body as AsyncIterable<Uint8Array>) {
            seen += chunk.length;
            if (seen > max) throw trip();
            yield chunk;
          }
        }
        return { ...res, body: counted() };
      },
    };
  }

  /** Run one exchange; a breach of the cap wins over whatever came of it. */
  async check<T>(fn: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      if (this.tripped) throw this.tripped;
      throw err;
    }
    if (this.tripped) throw this.tripped;
    return result;
  }
}
