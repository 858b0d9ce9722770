/**
 * Registry credentials: explicit flags first (--registry-username with the
 * password in the environment variable named by --registry-password-env), then
 * Docker's config.json. Secrets never come from argv, and no error message
 * here ever contains one: errors name the variable or the file, not the value.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../cli/errors.ts';

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
  return credentialsFromFlags(opts) ?? fromDockerConfig(registry, opts.dockerConfigPath ?? defaultDockerConfigPath(env), opts.warn ?? defaultWarn);
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

function fromDockerConfig(registry: string, path: string, warn: (message: string) => void): Credentials | undefined {
  const config = readDockerConfig(path);
  if (config === undefined) return undefined;
  const wanted = normalizeRegistryKey(registry);

  // An entry written exactly as asked wins over an alias ("docker.io" vs "https://index.docker.io/v1/").
  const matches = Object.entries(config.auths ?? {})
    .filter(([key]) => normalizeRegistryKey(key) === wanted)
    .sort(([a], [b]) => Number(b === registry) - Number(a === registry));
  for (const [key, entry] of matches) {
    const creds = entryCredentials(entry, key, path);
    if (creds) return creds;
  }

  const helper = Object.entries(config.credHelpers ?? {}).find(([key]) => normalizeRegistryKey(key) === wanted);
  if (helper !== undefined) {
    warn(
      `Docker config ${path} names credential helper "${String(helper[1])}" for ${helper[0]}; ` +
        'credential helpers are not supported yet, so airlock connects to it without those credentials ' +
        '(use --registry-username with --registry-password-env)',
    );
  } else if (typeof config.credsStore === 'string' && config.credsStore !== '' && matches.length > 0) {
    // docker login with a credential store leaves an empty entry in "auths" for the host.
    warn(
      `Docker config ${path} keeps credentials in the "${config.credsStore}" credential store; ` +
        `credential helpers are not supported yet, so airlock connects to ${registry} without credentials ` +
        '(use --registry-username with --registry-password-env)',
    );
  }
  return undefined;
}
