import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';

/**
 * An HTTP front end on 127.0.0.1 (random port) in front of a real registry
 * (test/services/registry.ts), making it answer as other registries do:
 * manifest redirects (registry.k8s.io), rate-limit headers and 429 (Docker
 * Hub), 412 on manifest HEAD (Harbor), refused or never-completing mounts,
 * 201 on PATCH (ECR), a closing PUT that commits and then fails. Each quirk
 * is a rule on method and path; what a rule does not touch is forwarded as is.
 * Where test/services/faultProxy.ts breaks connections, this one changes answers.
 */
export interface QuirkRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface QuirkAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface QuirkRule {
  /** Which registry behaves so, for the record. */
  name: string;
  method?: string;
  path: RegExp;
  /** Tested against the query string (without "?"), when given. */
  query?: RegExp;
  /** How many requests the rule applies to (default: all). */
  times?: number;
  /** Applies only while this holds (state kept by the rule's maker). */
  when?: () => boolean;
  /** Run first, then answer or forward (to change the registry behind: a garbage collection between two requests). */
  before?: (req: QuirkRequest) => Promise<void>;
  /** Answer without forwarding. */
  answer?: (req: QuirkRequest) => QuirkAnswer;
  /**
   * Forward, then change the answer: a new status (the upstream body is then
   * dropped and `body` sent), headers added, headers removed.
   */
  rewrite?: (res: { status: number; headers: http.IncomingHttpHeaders }, req: QuirkRequest) => {
    status?: number;
    setHeaders?: Record<string, string>;
    removeHeaders?: string[];
    body?: string;
    /** Never answer (the client times out); the connection is closed after 30 s. */
    hang?: boolean;
  };
}

export interface QuirkLogEntry {
  method: string;
  url: string;
  /** Whether the request carried an Authorization header. */
  authorization: boolean;
  status: number;
  /** Name of the rule that applied, if any. */
  rule?: string;
}

export interface QuirkProxy {
  /** "127.0.0.1:PORT" */
  host: string;
  port: number;
  url: string;
  add(rule: QuirkRule): void;
  clear(): void;
  log: QuirkLogEntry[];
  stop(): Promise<void>;
}

/** `tls`: serve HTTPS with this certificate (PEM paths); the registry behind stays plain HTTP. */
export async function startQuirkProxy(target: { host: string; port: number }, opts: { tls?: { cert: string; key: string } } = {}): Promise<QuirkProxy> {
  const rules: (QuirkRule & { left: number })[] = [];
  const log: QuirkLogEntry[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const scheme = opts.tls ? 'https' : 'http';

  const take = (req: QuirkRequest): QuirkRule | undefined => {
    const [path = '', query = ''] = req.url.split('?');
    const r = rules.find(
      (x) => x.left > 0 && (x.method === undefined || x.method === req.method) && x.path.test(path) && (x.query?.test(query) ?? true) && (x.when?.() ?? true),
    );
    if (r) r.left -= 1;
    return r;
  };

  const handler = (client: http.IncomingMessage, reply: http.ServerResponse) => {
    const req: QuirkRequest = { method: client.method ?? 'GET', url: client.url ?? '/', headers: client.headers };
    const rule = take(req);
    if (rule?.before) {
      client.pause();
      rule.before(req).then(
        () => respond(client, reply, req, rule),
        () => reply.destroy(),
      );
    } else respond(client, reply, req, rule);
  };

  const respond = (client: http.IncomingMessage, reply: http.ServerResponse, req: QuirkRequest, rule: QuirkRule | undefined) => {
    const entry: QuirkLogEntry = { method: req.method, url: req.url, authorization: client.headers.authorization !== undefined, status: 0, rule: rule?.name };
    log.push(entry);
    if (rule?.answer) {
      const a = rule.answer(req);
      client.resume();
      client.on('end', () => {
        entry.status = a.status;
        const body = a.body ?? '';
        reply.writeHead(a.status, { 'content-length': String(Buffer.byteLength(body)), ...a.headers });
        reply.end(req.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    const headers = { ...client.headers, host: `${target.host}:${target.port}` };
    const up = http.request({ host: target.host, port: target.port, method: req.method, path: req.url, headers, agent }, (res) => {
      const change = rule?.rewrite?.({ status: res.statusCode ?? 502, headers: res.headers }, req) ?? {};
      if (change.hang) {
        res.resume();
        entry.status = -1;
        setTimeout(() => reply.destroy(), 30_000).unref();
        return;
      }
      const out: http.OutgoingHttpHeaders = { ...res.headers };
      for (const h of change.removeHeaders ?? []) delete out[h.toLowerCase()];
      Object.assign(out, change.setHeaders ?? {});
      // The upstream's Location points at the upstream: keep clients on this front end.
      if (typeof out.location === 'string') out.location = out.location.replace(`http://${target.host}:${target.port}`, `${scheme}://127.0.0.1:${port}`);
      if (change.status !== undefined && change.status !== res.statusCode) {
        res.resume();
        const body = change.body ?? '';
        delete out['transfer-encoding'];
        out['content-length'] = String(Buffer.byteLength(body));
        entry.status = change.status;
        reply.writeHead(change.status, out);
        reply.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      entry.status = res.statusCode ?? 0;
      reply.writeHead(res.statusCode ?? 502, out);
      res.pipe(reply);
    });
    up.on('error', () => reply.destroy());
    client.pipe(up);
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
  if (addr === null || typeof addr === 'string') throw new Error('quirk proxy: no address');
  const port = addr.port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    add: (rule) => rules.push({ ...rule, left: rule.times ?? Infinity }),
    clear: () => {
      rules.length = 0;
    },
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

/**
 * Docker Hub's pull quota (docs.docker.com/docker-hub/usage/pulls): every
 * manifest answer carries `ratelimit-limit: L;w=21600` and
 * `ratelimit-remaining: R;w=21600`; each manifest GET counts, HEAD does not;
 * once spent, a GET answers 429 TOOMANYREQUESTS (no Retry-After).
 */
export function dockerHubRateLimit(limit: number, remaining: number): QuirkRule[] {
  const state = { remaining };
  const headers = () => ({ 'ratelimit-limit': `${limit};w=21600`, 'ratelimit-remaining': `${state.remaining};w=21600`, 'docker-ratelimit-source': '127.0.0.1' });
  return [
    {
      name: 'Docker Hub: manifest GET over the quota',
      method: 'GET',
      path: /\/manifests\//,
      answer: () => {
        const body = JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit' }] });
        return { status: 429, headers: { 'content-type': 'application/json', ...headers() }, body };
      },
      when: () => state.remaining === 0,
    },
    {
      name: 'Docker Hub: counted manifest GET',
      method: 'GET',
      path: /\/manifests\//,
      rewrite: () => {
        state.remaining = Math.max(0, state.remaining - 1);
        return { setHeaders: headers() };
      },
    },
    { name: 'Docker Hub: uncounted manifest HEAD', method: 'HEAD', path: /\/manifests\//, rewrite: () => ({ setHeaders: headers() }) },
  ];
}
