import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { run } from './exec.ts';

/** One parsed `scope` parameter: `repository:library/nginx:pull,push`. */
export interface TokenScope { type: string; name: string; actions: string[] }

export interface TokenRequest {
  /** The raw `scope` query parameters, in order. */
  scopes: string[];
  /** The authenticated user, undefined for anonymous requests. */
  user?: string;
  /** The `service` query parameter. */
  service?: string;
  /** The HTTP status the issuer answered with (200, or 401 for bad credentials). */
  status: number;
  /** GET (token.md) or POST (oauth.md, an OAuth2 form). */
  method?: string;
  /** POST: grant_type and client_id of the form. */
  grantType?: string;
  clientId?: string;
}

export interface TokenIssuerOptions {
  /** Directory for the signing key and certificate (must exist). */
  dir: string;
  /** `service` the registry expects (the token `aud`). */
  service: string;
  /** `issuer` the registry expects (the token `iss`). */
  issuer: string;
  users: Record<string, string>;
  /** OAuth2 refresh tokens (docker login's identity tokens) -> the user they stand for (POST grant_type=refresh_token). */
  refreshTokens?: Record<string, string>;
  /**
   * Anonymous requests (no Authorization): 'none' (default, like Docker Hub for a private repo)
   * gets a valid token with no access; 'pull' gets pull on repositories; 'deny' gets 401.
   */
  anonymous?: 'none' | 'pull' | 'deny';
  /** Token lifetime in seconds (default 300). */
  ttlSeconds?: number;
  /** Serve HTTPS with this certificate (PEM paths). */
  tls?: { cert: string; key: string };
  /** Decide which of the requested actions to grant; default: all for known users, per `anonymous` otherwise. */
  grant?: (user: string | undefined, scope: TokenScope) => string[];
}

export interface TokenIssuer {
  /** The token endpoint, e.g. http://127.0.0.1:PORT/token (the registry's `realm`). */
  realm: string;
  port: number;
  /** PEM path of the signing certificate (the registry's `rootcertbundle`). */
  certFile: string;
  /** libtrust key ID of the signing key (the JWT `kid`). */
  kid: string;
  tokenRequests: TokenRequest[];
  /** Mint a token directly (no HTTP), e.g. to test expired or foreign tokens. */
  mint(user: string | undefined, access: TokenScope[], opts?: { ttlSeconds?: number; now?: number }): string;
  stop(): Promise<void>;
}

/**
 * The key ID distribution 2.8 (docker/libtrust) derives from a public key: sha256 of the
 * DER SubjectPublicKeyInfo, first 240 bits, base32 (RFC 4648, no padding), in groups of 4 joined by ':'.
 */
export function libtrustKeyId(publicKey: crypto.KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const sum = crypto.createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

/** Split `type:name:actions`; the name may itself contain ':' (host:port). */
export function parseScope(s: string): TokenScope | undefined {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  return { type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',').filter(Boolean) };
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** A Docker-style token server (distribution `auth.token`), signing ES256 JWTs with a `kid` header. */
export async function startTokenIssuer(opts: TokenIssuerOptions): Promise<TokenIssuer> {
  const keyFile = path.join(opts.dir, 'token-signing.key');
  const certFile = path.join(opts.dir, 'token-signing.crt');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-subj', '/CN=airlock test token signer', '-days', '3650',
  ]);
  const privateKey = crypto.createPrivateKey(await fs.readFile(keyFile));
  const kid = libtrustKeyId(crypto.createPublicKey(privateKey));
  const anonymous = opts.anonymous ?? 'none';
  const ttlDefault = opts.ttlSeconds ?? 300;
  const tokenRequests: TokenRequest[] = [];

  const grant =
    opts.grant ??
    ((user: string | undefined, scope: TokenScope): string[] => {
      if (user !== undefined) return scope.actions;
      if (anonymous === 'pull' && scope.type === 'repository') return scope.actions.filter((a) => a === 'pull');
      return [];
    });

  function mint(user: string | undefined, access: TokenScope[], o: { ttlSeconds?: number; now?: number } = {}): string {
    const now = o.now ?? Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', kid };
    const claims = {
      iss: opts.issuer,
      sub: user ?? '',
      aud: opts.service,
      exp: now + (o.ttlSeconds ?? ttlDefault),
      nbf: now - 10,
      iat: now,
      jti: crypto.randomBytes(12).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    // JWS ES256 wants the raw r||s signature, not ASN.1 DER.
    const sig = crypto.sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${b64url(sig)}`;
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/token' && req.method === 'POST') {
      postHandler(req, res);
      return;
    }
    if (u.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    const scopes = u.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const service = u.searchParams.get('service') ?? undefined;
    const unauthorized = () => {
      tokenRequests.push({ scopes, service, status: 401, user: undefined });
      const body = JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] });
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': 'Basic realm="airlock-test-token"',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    };
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Basic\s+(\S+)$/i.exec(auth);
      if (!m) return unauthorized();
      const decoded = Buffer.from(m[1], 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      const name = i < 0 ? decoded : decoded.slice(0, i);
      const pw = i < 0 ? '' : decoded.slice(i + 1);
      if (!Object.hasOwn(opts.users, name) || opts.users[name] !== pw) return unauthorized();
      user = name;
    } else if (anonymous === 'deny') {
      return unauthorized();
    }
    const access: TokenScope[] = [];
    for (const raw of scopes) {
      const scope = parseScope(raw);
      if (!scope) continue;
      const actions = grant(user, scope);
      if (actions.length > 0) access.push({ ...scope, actions });
    }
    tokenRequests.push({ scopes, user, service, status: 200 });
    const token = mint(user, access);
    const body = JSON.stringify({ token, access_token: token, expires_in: ttlDefault, issued_at: new Date().toISOString() });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  /**
   * distribution's docs/spec/auth/oauth.md: a form with grant_type=refresh_token (or password),
   * service, scope (space-separated), client_id; answers {access_token, expires_in, scope}.
   */
  const postHandler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(parts).toString('utf8'));
      const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const service = form.get('service') ?? undefined;
      const grantType = form.get('grant_type') ?? undefined;
      const clientId = form.get('client_id') ?? undefined;
      let user: string | undefined;
      if (grantType === 'refresh_token') user = opts.refreshTokens?.[form.get('refresh_token') ?? ''];
      else if (grantType === 'password') {
        const name = form.get('username') ?? '';
        if (Object.hasOwn(opts.users, name) && opts.users[name] === form.get('password')) user = name;
      }
      if (user === undefined || clientId === null || clientId === undefined) {
        tokenRequests.push({ scopes, service, status: 400, user: undefined, method: 'POST', grantType, clientId });
        const body = JSON.stringify({ error: 'invalid_grant' });
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
        return;
      }
      const access: TokenScope[] = [];
      for (const raw of scopes) {
        const scope = parseScope(raw);
        if (!scope) continue;
        const actions = grant(user, scope);
        if (actions.length > 0) access.push({ ...scope, actions });
      }
      tokenRequests.push({ scopes, user, service, status: 200, method: 'POST', grantType, clientId });
      const token = mint(user, access);
      const body = JSON.stringify({ access_token: token, expires_in: ttlDefault, scope: scopes.join(' ') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  };

  const server = opts.tls
    ? https.createServer({ cert: await fs.readFile(opts.tls.cert), key: await fs.readFile(opts.tls.key) }, handler)
    : http.createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('token issuer: no address');
  const port = addr.port;

  return {
    realm: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/token`,
    port,
    certFile,
    kid,
    tokenRequests,
    mint,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
