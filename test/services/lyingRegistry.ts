import http from 'node:http';
import type { Socket } from 'node:net';

/**
 * A registry that lies: an HTTP front end on 127.0.0.1 (random port) before
 * a real registry (test/services/registry.ts) that forwards every request as
 * is, except those a lie matches, which it answers itself, byte by byte on
 * the socket (so it can say what no well-behaved server would):
 *
 *   longer / shorter    the real body with bytes added or cut, Content-Length agreeing
 *   short-body          the real Content-Length, fewer bytes, then the connection closes
 *   endless             200 with a chunked body that never ends
 *   redirect-loop       307 to another path that redirects back, forever
 *   token-garbage       every request 401 Bearer, and the token endpoint answers HTML
 *   phantom             200 for any blob HEAD, 12345 bytes, whether the registry holds it or not
 *
 * Where test/services/quirkProxy.ts makes a registry behave as other real
 * registries do, this one makes it behave as none should.
 */
export type LieKind = 'longer' | 'shorter' | 'short-body' | 'endless' | 'redirect-loop' | 'token-garbage' | 'phantom';

export interface Lie {
  kind: LieKind;
  method?: string;
  path: RegExp;
  /** How many requests it applies to (default: all). */
  times?: number;
}

export interface LyingRegistry {
  host: string;
  port: number;
  url: string;
  lie(lie: Lie): void;
  /** How many requests each lie answered, and all requests seen. */
  told: Map<LieKind, number>;
  requests: string[];
  stop(): Promise<void>;
}

const LIE_BYTES = 100;

export async function startLyingRegistry(target: { host: string; port: number }): Promise<LyingRegistry> {
  const lies: (Lie & { left: number })[] = [];
  const told = new Map<LieKind, number>();
  const requests: string[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  let port = 0;

  const take = (method: string, path: string) => {
    const l = lies.find((x) => x.left > 0 && (x.method === undefined || x.method === method) && x.path.test(path));
    if (l) {
      l.left -= 1;
      told.set(l.kind, (told.get(l.kind) ?? 0) + 1);
    }
    return l;
  };

  const forward = (client: http.IncomingMessage, reply: http.ServerResponse, then?: (status: number, headers: http.IncomingHttpHeaders, body: Buffer) => void) => {
    const up = http.request({ host: target.host, port: target.port, method: client.method, path: client.url, headers: { ...client.headers, host: `${target.host}:${target.port}` }, agent }, (res) => {
      if (then === undefined) {
        const headers = { ...res.headers };
        if (typeof headers.location === 'string') headers.location = headers.location.replace(`http://${target.host}:${target.port}`, `http://127.0.0.1:${port}`);
        reply.writeHead(res.statusCode ?? 502, headers);
        res.pipe(reply);
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => then(res.statusCode ?? 502, res.headers, Buffer.concat(chunks)));
    });
    up.on('error', () => reply.destroy());
    client.pipe(up);
  };

  /** Write a whole response on the socket, as the lie wants it; the connection closes after it. */
  const raw = (socket: Socket, status: number, headers: Record<string, string>, body?: Buffer) => {
    const head = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Lie'}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), 'connection: close', '', ''].join('\r\n');
    socket.write(head);
    if (body !== undefined) socket.write(body);
    socket.end();
  };

  const server = http.createServer((client, reply) => {
    const method = client.method ?? 'GET';
    const [path = '/'] = (client.url ?? '/').split('?');
    requests.push(`${method} ${client.url}`);
    const lie = take(method, path);
    const socket = client.socket;
    if (lie === undefined) return forward(client, reply);
    switch (lie.kind) {
      case 'longer':
      case 'shorter':
      case 'short-body':
        return forward(client, reply, (status, headers, body) => {
          const out = lie.kind === 'longer' ? Buffer.concat([body, Buffer.alloc(LIE_BYTES, 0x41)]) : lie.kind === 'shorter' ? body.subarray(0, Math.max(0, body.length - LIE_BYTES)) : body;
          const sent = lie.kind === 'short-body' ? out.subarray(0, Math.max(0, out.length - LIE_BYTES)) : out;
          const h: Record<string, string> = { 'content-length': String(out.length) };
          for (const k of ['content-type', 'docker-content-digest', 'docker-distribution-api-version']) if (typeof headers[k] === 'string') h[k] = headers[k];
          raw(socket, status, h, method === 'HEAD' ? undefined : sent);
        });
      case 'endless': {
        client.resume();
        socket.write(['HTTP/1.1 200 OK', 'content-type: application/vnd.oci.image.manifest.v1+json', 'transfer-encoding: chunked', '', ''].join('\r\n'));
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const more = () => {
          if (socket.destroyed) return;
          socket.write(`${chunk.length.toString(16)}\r\n`);
          socket.write(chunk);
          if (socket.write('\r\n')) setImmediate(more);
          else socket.once('drain', more);
        };
        socket.write('1\r\n{\r\n');
        more();
        return;
      }
      case 'redirect-loop': {
        client.resume();
        const next = path.endsWith('/loop') ? path.slice(0, -'/loop'.length) : `${path}/loop`;
        return raw(socket, 307, { location: `http://127.0.0.1:${port}${next}`, 'content-length': '0' });
      }
      case 'phantom': {
        client.resume();
        const digest = path.split('/').pop() ?? '';
        return raw(socket, 200, { 'content-length': '12345', 'docker-content-digest': digest, 'content-type': 'application/octet-stream' });
      }
      case 'token-garbage': {
        client.resume();
        const garbage = Buffer.from('<html>not a token</html>\n');
        if (path === '/token') return raw(socket, 200, { 'content-type': 'application/json', 'content-length': String(garbage.length) }, garbage);
        const challenge = `Bearer realm="http://127.0.0.1:${port}/token",service="liar",scope="repository:x:pull"`;
        return raw(socket, 401, { 'www-authenticate': challenge, 'content-type': 'application/json', 'content-length': '2' }, Buffer.from('{}'));
      }
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    url: `http://127.0.0.1:${port}`,
    lie: (l) => lies.push({ ...l, left: l.times ?? Infinity }),
    told,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        agent.destroy();
      }),
  };
}
