import { RemoteError } from '../cli/errors.ts';
import { IDENTITY_TOKEN_USERNAME, type Credentials } from './credentials.ts';
import type { HttpTransport } from './transport.ts';
import type { HostTls } from './client-certs.ts';

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
 * Every challenge of a WWW-Authenticate value (RFC 9110 §11.6.1), in order:
 * `Negotiate, Basic realm="r", Bearer realm="https://a/token",service="reg",scope="repository:x:pull"`.
 * Quoted values may contain commas and escaped quotes. Several headers arrive joined with ", ".
 */
export function parseChallenges(value: string): { scheme: string; params: Record<string, string> }[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  // A scheme token, or a name=value parameter (token68 values are skipped).
  const re = /\s*,?\s*(?:([A-Za-z0-9_!#$%&'*+.^`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))|([A-Za-z0-9_!#$%&'*+.^`|~-]+=*))/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
    if (m[0].trim() === '') break;
    if (m[4] !== undefined) {
      // A bare token: a new scheme, unless it is a token68 right after one.
      const prev = out[out.length - 1];
      if (prev && Object.keys(prev.params).length === 0 && /=$/.test(m[4])) continue;
      out.push({ scheme: m[4].toLowerCase(), params: {} });
    } else if (out.length > 0) {
      out[out.length - 1]!.params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
    }
  }
  return out;
}

/**
 * The challenge to answer: Bearer over Basic, as docker chooses; unknown
 * schemes (Negotiate, NTLM) skipped.
 */
export function parseChallenge(value: string): Challenge | undefined {
  const all = parseChallenges(value);
  const pick = all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
  return pick as Challenge | undefined;
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
    /** Extra TLS (a client certificate) for a token realm's host, if it has any. */
    private readonly tlsFor: (url: URL) => HostTls | undefined = () => undefined,
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

  /** The token request of distribution's token.md: GET realm?service&scope, Basic credentials if any. */
  private getToken(realm: URL, c: Challenge, scopes: string[], what: string) {
    const url = new URL(realm);
    if (c.params.service) url.searchParams.set('service', c.params.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = this.basic();
    if (basic) headers.authorization = basic;
    return this.transport.send({ method: 'GET', url, headers, what, tls: this.tlsFor(url) });
  }

  /**
   * An identity token (docker login with an OAuth2 registry: config.json's
   * identitytoken, or a credential helper answering Username "<token>") is an
   * OAuth2 refresh token: POST it to the realm (distribution's oauth.md), as
   * docker and containers/image do.
   */
  private postRefreshToken(realm: URL, c: Challenge, scopes: string[], refreshToken: string, what: string) {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'airlock' });
    if (c.params.service) form.set('service', c.params.service);
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    return this.transport.send({
      method: 'POST',
      url: realm,
      headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from(form.toString(), 'utf8'),
      what,
      tls: this.tlsFor(realm),
    });
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
    const what = `token for ${this.registry} (${scopes.join(' ') || 'no scope'})`;
    const res = this.credentials?.username === IDENTITY_TOKEN_USERNAME
      ? await this.postRefreshToken(url, c, scopes, this.credentials.password, what)
      : await this.getToken(url, c, scopes, what);
    const text = await res.body.text();
    if (res.status === 401 || res.status === 403 || (res.status === 400 && /invalid_grant/.test(text))) {
      throw new RemoteError(`${what}: the token server ${url.host} refused the credentials (HTTP ${res.status})`, {
        hint: this.credentials?.username === IDENTITY_TOKEN_USERNAME
          ? 'the identity token from docker login was refused (it may have expired): log in again'
          : this.credentials
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
