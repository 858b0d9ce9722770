import { RemoteError } from '../cli/errors.ts';
import type { Credentials } from './credentials.ts';
import type { HttpTransport } from './transport.ts';

/**
 * Registry authentication: parse WWW-Authenticate challenges, answer Basic ones
 * with credentials, and trade Bearer challenges for tokens at the realm, one
 * cached token per scope set (distribution's docs/spec/auth/token.md).
 */
export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate value: `Bearer realm="https://a/token",service="reg",scope="repository:x:pull"`.
 * Quoted values may contain commas and escaped quotes. Only the first challenge is kept.
 */
export function parseChallenge(value: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(value);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/gy;
  const rest = m[2]!;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest)) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme, params };
}

export type Action = 'pull' | 'push';

export function repositoryScope(repository: string, actions: Action[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** A token is renewed this long before it expires. */
const EXPIRY_MARGIN_MS = 10_000;

/** Authentication state for one registry host. */
export class RegistryAuth {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly registry: string,
    private readonly transport: HttpTransport,
    private readonly credentials: Credentials | undefined,
  ) {}

  /** The Authorization header for a request needing these scopes, once a challenge is known. */
  async authorization(scopes: string[]): Promise<string | undefined> {
    const c = this.challenge;
    if (c === undefined) return undefined;
    if (c.scheme === 'basic') return this.basic();
    const token = await this.token(scopes);
    return token ? `Bearer ${token}` : undefined;
  }

  /**
   * Learn from a 401. True when one more try, with what was learned, may
   * succeed; false when these credentials or this token were simply refused.
   */
  onUnauthorized(wwwAuthenticate: string | undefined, scopes: string[], sent: string | undefined): boolean {
    const c = wwwAuthenticate ? parseChallenge(wwwAuthenticate) : undefined;
    if (c === undefined) return false;
    this.challenge = c;
    if (c.scheme === 'basic') return this.credentials !== undefined && sent === undefined;
    this.tokens.delete(scopeKey(scopes));
    return sent === undefined || c.params.error !== 'insufficient_scope';
  }

  private basic(): string | undefined {
    if (!this.credentials) return undefined;
    const raw = `${this.credentials.username}:${this.credentials.password}`;
    return `Basic ${Buffer.from(raw, 'utf8').toString('base64')}`;
  }

  private async token(scopes: string[]): Promise<string | undefined> {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return cached.token;
    let p = this.pending.get(key);
    if (!p) {
      p = this.requestToken(scopes).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    const t = await p;
    this.tokens.set(key, t);
    return t.token;
  }

  private async requestToken(scopes: string[]): Promise<CachedToken> {
    const c = this.challenge!;
    const realm = c.params.realm;
    if (!realm) throw new RemoteError(`registry ${this.registry}: Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RemoteError(`registry ${this.registry}: Bearer challenge has an invalid realm ${JSON.stringify(realm)}`);
    }
    if (c.params.service) url.searchParams.set('service', c.params.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = this.basic();
    if (basic) headers.authorization = basic;
    const what = `token for ${this.registry} (${scopes.join(' ') || 'no scope'})`;
    const res = await this.transport.send({ method: 'GET', url, headers, what });
    const text = await res.body.text();
    if (res.status === 401 || res.status === 403) {
      throw new RemoteError(`${what}: the token server ${url.host} refused the credentials (HTTP ${res.status})`, {
        hint: this.credentials
          ? 'check the registry username and password'
          : 'this registry needs credentials: --registry-username with --registry-password-env, or ~/.docker/config.json',
      });
    }
    if (res.status !== 200) {
      throw new RemoteError(`${what}: the token server ${url.host} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new RemoteError(`${what}: the token server ${url.host} did not answer JSON`);
    }
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RemoteError(`${what}: the token server ${url.host} answered without a token`);
    }
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    const issued = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : NaN;
    const start = Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now());
    return { token, expiresAt: start + expiresIn * 1000 };
  }
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}
