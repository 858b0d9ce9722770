/**
 * Registry credentials: explicit flags first (--registry-username with the
 * password in the environment variable named by --registry-password-env), then
 * Docker's config.json: a credential helper when the config names one
 * (credHelpers[registry], else credsStore; ./credential-helper.ts), then the
 * inline "auths" entry. Secrets never come from argv, and no error message
 * here ever contains one: errors name the variable or the file, not the value.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../cli/errors.ts';
import { runCredentialHelper, type HelperOptions } from './credential-helper.ts';

/**
 * Username and password for Basic auth or a token request. An identity token
 * (docker login with an OAuth2 registry) is { username: '<token>', password: token },
 * as Docker does.
 */
export interface Credentials {
  username: string;
  password: string;
}

export const IDENTITY_TOKEN_USERNAME = '<token>';

export interface CredentialsOptions {
  /** --registry-username */
  username?: string;
  /** --registry-password-env: the NAME of the environment variable holding the password. */
  passwordEnv?: string;
  /** Path of the config.json to read. Default $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
  dockerConfigPath?: string;
  /** Environment to read (tests). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where warnings go (credential helpers). Default: a line on stderr. */
  warn?: (message: string) => void;
  /** Flag names for messages (git auth reuses this with --git-username / --git-password-env). */
  flagNames?: { username: string; passwordEnv: string };
  /** How long a credential helper may take (default 30 s). */
  helperTimeoutMs?: number;
}

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The registry part of a config key or a registry argument, for comparison:
 * scheme and /v1/ or /v2/ dropped, host lowercased, Docker Hub aliases folded
 * into "docker.io". A key with a repository path ("ghcr.io/org", as podman
 * writes) keeps its path and so never matches a bare host.
 */
export function normalizeRegistryKey(key: string): string {
  let s = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  s = s.replace(/\/+$/, '');
  s = s.replace(/\/v[12]$/i, '');
  const slash = s.indexOf('/');
  const host = (slash < 0 ? s : s.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : s.slice(slash);
  return (DOCKER_HUB.has(host) ? 'docker.io' : host) + path;
}

export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(env.HOME || homedir(), '.docker', 'config.json');
}

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credsStore?: unknown;
  credHelpers?: Record<string, unknown>;
}

function defaultWarn(message: string): void {
  process.stderr.write(`airlock: warning: ${message}\n`);
}

/** Credentials for one registry (a host[:port], as in an image reference), or undefined for anonymous access. */
export function credentialsFor(registry: string, opts: CredentialsOptions = {}): Credentials | undefined {
  const env = opts.env ?? process.env;
  return credentialsFromFlags(opts) ?? fromDockerConfig(registry, opts.dockerConfigPath ?? defaultDockerConfigPath(env), opts.warn ?? defaultWarn, { env, timeoutMs: opts.helperTimeoutMs });
}

/**
 * The user name and the password from the environment variable the flags name;
 * undefined when neither flag was given. One without the other, or an unset
 * variable, is a usage error naming the flags (git auth passes its own flag names).
 */
export function credentialsFromFlags(opts: Pick<CredentialsOptions, 'username' | 'passwordEnv' | 'env' | 'flagNames'>): Credentials | undefined {
  const env = opts.env ?? process.env;
  const flags = opts.flagNames ?? { username: '--registry-username', passwordEnv: '--registry-password-env' };
  const hasUser = opts.username !== undefined && opts.username !== '';
  const hasEnv = opts.passwordEnv !== undefined && opts.passwordEnv !== '';
  if (hasUser !== hasEnv) {
    throw new UsageError(`${flags.username} and ${flags.passwordEnv} go together: give both or neither`, {
      hint: `${flags.passwordEnv} names an environment variable holding the password, e.g. ${flags.passwordEnv} REGISTRY_PASSWORD`,
    });
  }
  if (hasUser && hasEnv) {
    const name = opts.passwordEnv!;
    const password = env[name];
    if (password === undefined || password === '') {
      throw new UsageError(`environment variable ${name} (named by ${flags.passwordEnv}) is not set or empty`, {
        hint: `export ${name} with the password for ${opts.username}`,
      });
    }
    return { username: opts.username!, password };
  }
  return undefined;
}

function readDockerConfig(path: string): DockerConfig | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UsageError(`cannot read Docker config ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // The parser's message may quote the file's text (and so a secret): leave it out.
    throw new UsageError(`Docker config ${path} is not valid JSON`, {
      hint: 'fix or remove the file, or set DOCKER_CONFIG to a directory with a valid config.json',
      cause: err instanceof Error ? new Error('JSON parse error') : undefined,
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`Docker config ${path} is not a JSON object`);
  }
  const config = parsed as DockerConfig;
  if (config.auths !== undefined && (config.auths === null || typeof config.auths !== 'object' || Array.isArray(config.auths))) {
    throw new UsageError(`Docker config ${path}: "auths" is not an object`);
  }
  return config;
}

function entryCredentials(entry: AuthEntry, key: string, path: string): Credentials | undefined {
  if (entry === null || typeof entry !== 'object') {
    throw new UsageError(`Docker config ${path}: the entry for "${key}" is not an object`);
  }
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    return { username: IDENTITY_TOKEN_USERNAME, password: entry.identitytoken };
  }
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new UsageError(`Docker config ${path}: the "auth" of "${key}" is not base64 of user:password`);
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/**
 * As the docker CLI: credHelpers[registry] wins, else credsStore, else the
 * inline entry. A helper that has nothing for the registry ("credentials not
 * found") leaves the inline entry, if any, else anonymous access. A helper
 * that is not installed is a warning (then the same fallback): one named for
 * this registry in credHelpers always, the credsStore only when "auths" lists
 * the registry (docker login leaves that empty entry when the store took the
 * credentials), so that a store copied from another machine does not warn
 * for every public registry.
 */
function fromDockerConfig(registry: string, path: string, warn: (message: string) => void, helperOptions: HelperOptions): Credentials | undefined {
  const config = readDockerConfig(path);
  if (config === undefined) return undefined;
  const wanted = normalizeRegistryKey(registry);

  // An entry written exactly as asked wins over an alias ("docker.io" vs "https://index.docker.io/v1/").
  const matches = Object.entries(config.auths ?? {})
    .filter(([key]) => normalizeRegistryKey(key) === wanted)
    .sort(([a], [b]) => Number(b === registry) - Number(a === registry));
  const inline = (): Credentials | undefined => {
    for (const [key, entry] of matches) {
      const creds = entryCredentials(entry, key, path);
      if (creds) return creds;
    }
    return undefined;
  };

  const named = Object.entries(config.credHelpers ?? {}).find(([key]) => normalizeRegistryKey(key) === wanted);
  const store = typeof config.credsStore === 'string' && config.credsStore !== '' ? config.credsStore : undefined;
  if (named === undefined && store === undefined) return inline();
  const helper = named !== undefined ? String(named[1]) : store!;
  const where = named !== undefined ? `Docker config ${path} credHelpers["${named[0]}"]` : `Docker config ${path} credsStore`;
  // The server URL the helper stored the credentials under: the key docker login wrote, else the host (Docker Hub's is its v1 URL).
  const serverUrl = matches[0]?.[0] ?? (named?.[0] || (wanted === 'docker.io' ? DOCKER_HUB_SERVER : registry));
  const answer = runCredentialHelper(helper, serverUrl, where, helperOptions);
  if (answer.kind === 'credentials') return answer.credentials;
  if (answer.kind === 'missing' && (named !== undefined || matches.length > 0)) {
    warn(
      `${where} names the credential helper "${helper}", but ${answer.program} is not on PATH; ` +
        `airlock connects to ${registry} ${matches.length > 0 ? 'with the inline credentials, if any, else ' : ''}without credentials ` +
        `(install ${answer.program}, or use --registry-username with --registry-password-env)`,
    );
  }
  return inline();
}

/** The server URL Docker uses for Docker Hub credentials. */
const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';

/**
 * `credentials` asked once per host: several clients of one run (a preflight,
 * the work) share the answer, so a credential helper runs (and a warning
 * shows) once.
 */
export function onePerHost(credentials: (host: string) => Credentials | undefined): (host: string) => Credentials | undefined {
  const known = new Map<string, Credentials | undefined>();
  return (host) => {
    if (!known.has(host)) known.set(host, credentials(host));
    return known.get(host);
  };
}
