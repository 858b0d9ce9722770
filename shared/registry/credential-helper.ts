import { spawnSync } from 'node:child_process';
import { UsageError } from '../cli/errors.ts';
import type { Credentials } from './credentials.ts';

/**
 * Docker credential helpers (`credsStore`, `credHelpers` in config.json), run
 * as the docker CLI runs them: `docker-credential-NAME get` with the server
 * URL on stdin, which answers `{"ServerURL", "Username", "Secret"}` on stdout,
 * or exits non-zero with "credentials not found in native keychain" when it
 * has none (anonymous access). Username "<token>" means Secret is an identity
 * token. The helper gets the environment (its PATH finds it), at most
 * `timeoutMs` to answer, and no terminal. Nothing a helper prints on success
 * is ever repeated in a message; on failure only the first line of its own
 * error text is.
 */
export type HelperAnswer =
  | { kind: 'credentials'; credentials: Credentials }
  | { kind: 'not-found' }
  /** No docker-credential-NAME on PATH. */
  | { kind: 'missing'; program: string };

export interface HelperOptions {
  env?: NodeJS.ProcessEnv;
  /** Default 30 s (helpers such as ecr-login make network calls of their own). */
  timeoutMs?: number;
}

const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const NOT_FOUND = /credentials not found/i;
const MAX_OUTPUT = 1024 * 1024;
export const HELPER_TIMEOUT_MS = 30_000;

/** Run `docker-credential-<helper> get` for `serverUrl`. `where` names the config entry in messages. */
export function runCredentialHelper(helper: string, serverUrl: string, where: string, options: HelperOptions = {}): HelperAnswer {
  if (!HELPER_NAME.test(helper)) {
    throw new UsageError(`${where}: ${JSON.stringify(helper)} is not a credential helper name`, { hint: 'helpers are named as docker-credential-NAME programs are: letters, digits, ".", "_", "-"' });
  }
  const program = `docker-credential-${helper}`;
  const timeoutMs = options.timeoutMs ?? HELPER_TIMEOUT_MS;
  const run = spawnSync(program, ['get'], {
    input: serverUrl,
    env: options.env ?? process.env,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: MAX_OUTPUT,
    windowsHide: true,
  });
  const code = (run.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return { kind: 'missing', program };
  if (code === 'ETIMEDOUT') {
    throw new UsageError(`${where}: ${program} did not answer for ${serverUrl} within ${Math.round(timeoutMs / 1000)} s`, {
      hint: `check that "${program} get" works on its own (it may be waiting for an unlock or a prompt), or use --registry-username with --registry-password-env`,
    });
  }
  if (run.error) {
    throw new UsageError(`${where}: cannot run ${program}: ${run.error.message}`, { hint: 'check the helper program, or use --registry-username with --registry-password-env' });
  }
  if (run.status !== 0) {
    // docker-credential-helpers print their error on stdout; others on stderr.
    const said = `${run.stdout ?? ''}\n${run.stderr ?? ''}`.trim();
    if (NOT_FOUND.test(said)) return { kind: 'not-found' };
    const first = said.split('\n')[0]!.slice(0, 200);
    throw new UsageError(`${where}: ${program} failed for ${serverUrl} (${run.status === null ? `killed by ${run.signal}` : `exit ${run.status}`})${first ? `: ${first}` : ''}`, {
      hint: `run "echo ${serverUrl} | ${program} get" to see why, or use --registry-username with --registry-password-env`,
    });
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(run.stdout) as typeof answer;
  } catch {
    throw new UsageError(`${where}: ${program} answered for ${serverUrl} with something that is not JSON`, { hint: `a helper's "get" prints {"ServerURL", "Username", "Secret"}` });
  }
  if (answer === null || typeof answer !== 'object' || typeof answer.Secret !== 'string' || (answer.Username !== undefined && typeof answer.Username !== 'string')) {
    throw new UsageError(`${where}: ${program} answered for ${serverUrl} without a Username and Secret`, { hint: `a helper's "get" prints {"ServerURL", "Username", "Secret"}` });
  }
  if (answer.Secret === '') return { kind: 'not-found' };
  // Username "<token>" (IDENTITY_TOKEN_USERNAME) marks an identity token: the same convention as config.json's identitytoken.
  const username = typeof answer.Username === 'string' ? answer.Username : '';
  return { kind: 'credentials', credentials: { username, password: answer.Secret } };
}
