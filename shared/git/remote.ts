import { Errors } from 'isomorphic-git';
import type { HttpClient } from 'isomorphic-git';
import { AirlockError, RemoteError, UsageError } from '../cli/errors.ts';
import { credentialsFromFlags } from '../registry/credentials.ts';
import type { HttpTransport } from '../registry/transport.ts';
import type { SshAuth } from '../transfer/ssh.ts';
import { gitHttp } from './http.ts';
import { parseSshUrl, SshGitTransport } from './ssh.ts';
import { describeNetworkFailure } from '../net/errors.ts';
import { isRetryableNetworkError, retryDelayMs, sleep, type RetryPolicy } from '../registry/retry.ts';

/**
 * A git remote as isomorphic-git takes it: a URL and an HTTP plugin. HTTPS
 * goes through airlock's transport (its TLS trust, --ca-file); SSH through
 * the ssh2 bridge (host keys always checked). The loader's GitOps and the
 * packer's git sources open remotes the same way.
 */
export interface GitRemote {
  url: string;
  http: HttpClient;
  /** For messages: the URL without credentials. */
  display: string;
  /** Ends the connection (SSH). */
  close?: () => Promise<void>;
}

export interface GitRemoteOptions {
  url: string;
  /** --git-username, with the password in the environment variable named by --git-password-env. */
  username?: string;
  passwordEnv?: string;
  /** For ssh:// and user@host:path URLs (the key's passphrase comes from AIRLOCK_SSH_PASSPHRASE). */
  sshKey?: string;
  knownHosts?: string;
  /** The SSH key's passphrase (default: AIRLOCK_SSH_PASSPHRASE). */
  sshPassphrase?: string;
}

/** ssh://... or scp-style user@host:path. */
export function isSshUrl(url: string): boolean {
  return /^ssh:\/\//.test(url) || /^[^@/:\s]+@[^:/\s]+:(?!\/\/)/.test(url);
}

/**
 * Open a remote. `label` names where the URL came from in messages ("--git",
 * "manifests[0].git.url"). A password in an https URL is refused: secrets
 * come from a named environment variable.
 */
export function openGitRemote(git: GitRemoteOptions, transport: HttpTransport, label = '--git'): GitRemote {
  const url = checkGitRemote(git, label);
  if (url === 'ssh') {
    const auth: SshAuth = { keyFile: git.sshKey, knownHosts: git.knownHosts, passphrase: git.sshPassphrase ?? process.env.AIRLOCK_SSH_PASSPHRASE };
    const t = new SshGitTransport(parseSshUrl(git.url), auth, git.url);
    return { url: t.gitUrl, http: t.http, display: git.url, close: () => t.close() };
  }
  const credentials = credentialsFromFlags({
    username: git.username,
    passwordEnv: git.passwordEnv,
    flagNames: { username: '--git-username', passwordEnv: '--git-password-env' },
  });
  url.username = '';
  return { url: url.toString(), http: gitHttp(transport, credentials), display: url.toString() };
}

/**
 * The remote's options checked without touching the network (so a command
 * can refuse them before it changes anything): an SSH URL needs --ssh-key;
 * an HTTP(S) URL must parse and carry no password. 'ssh', or the URL.
 */
export function checkGitRemote(git: GitRemoteOptions, label = '--git'): 'ssh' | URL {
  if (isSshUrl(git.url)) {
    if (!git.sshKey) {
      throw new UsageError(`${label} ${git.url} is git over SSH, which needs --ssh-key FILE (a private key the git server accepts for this user)`, {
        hint: 'add --ssh-key (and --known-hosts if the host is not in ~/.ssh/known_hosts), or use the https:// URL with --git-username / --git-password-env',
      });
    }
    return 'ssh';
  }
  let url: URL;
  try {
    url = new URL(git.url);
  } catch {
    throw new UsageError(`${label} ${git.url}: not a URL (https://host/path.git)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${label} ${git.url}: use an https:// URL`);
  if (url.password) {
    throw new UsageError(`${label}: the URL carries a password; pass it in an environment variable named by --git-password-env instead`, {
      hint: 'secrets never go on the command line',
    });
  }
  return url;
}

/**
 * Run one exchange with the remote; isomorphic-git's failures become exit 4
 * naming the remote and what was done. With `retry` (reads only: listing
 * refs, fetching), a connection that broke or stalled past --timeout
 * mid-answer is tried again from the start, as the registry client does.
 */
export async function gitRemoteCall<T>(remote: GitRemote, what: string, fn: () => Promise<T>, opts: { retry?: RetryPolicy } = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const again = opts.retry !== undefined && attempt < opts.retry.attempts && !(err instanceof AirlockError) && !(err instanceof Errors.HttpError) && isRetryableNetworkError(err);
      if (!again) throw remoteFailure(remote, what, err);
      await sleep(retryDelayMs(attempt, opts.retry!));
    }
  }
}

/** What a failed exchange is thrown as. */
function remoteFailure(remote: GitRemote, what: string, err: unknown): unknown {
  if (err instanceof Errors.PushRejectedError || err instanceof Errors.MergeConflictError || err instanceof Errors.GitPushError) return err;
  if (err instanceof Errors.HttpError) {
    const status = (err.data as { statusCode?: number }).statusCode;
    return new RemoteError(`git ${what} at ${remote.display}: HTTP ${status}`, {
      hint: status === 401 || status === 403 ? 'check --git-username / --git-password-env' : 'check the repository URL',
      cause: err,
    });
  }
  if (err instanceof AirlockError) return err; // ours, already saying what failed (a usage error, a refused host key, a cap)
  return new RemoteError(`git ${what} at ${remote.display}: ${describeNetworkFailure(err)}`, { cause: err });
}
