import net from 'node:net';

export type Fault =
  | { match: RegExp; times: number; kind: 'drop-after-bytes'; bytes: number }
  | { match: RegExp; times: number; kind: 'status'; status: 429 | 503; retryAfterSeconds?: number }
  | { match: RegExp; times: number; kind: 'stall'; ms: number }
  | { match: RegExp; times: number; kind: 'hang-after-bytes'; bytes: number }
  | { match: RegExp; times: number; kind: 'hang-request-after-bytes'; bytes: number };

export interface FaultProxyStats {
  connections: number;
  faultsInjected: number;
  /** Request lines seen, in order, e.g. `GET /v2/ HTTP/1.1`. */
  requests: string[];
}

export interface FaultProxy {
  host: string;
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
  /**
   * The next `times` HTTP requests whose request line (`GET /v2/x/blobs/sha256:... HTTP/1.1`)
   * matches `match` get the fault:
   * - 'drop-after-bytes': forwarded; once `bytes` bytes of the response BODY (after the response
   *   headers; wire bytes, so chunk framing counts for a chunked response) reached the client, both
   *   connections are closed, so the client sees a short body. A shorter response passes intact.
   * - 'status': not forwarded; answered `HTTP/1.1 <status>` with `Retry-After` (when given),
   *   `Content-Length: 0`, `Connection: close`, then the connection is closed.
   * - 'stall': forwarded; the response is held for `ms` from its first byte, then released.
   * - 'hang-after-bytes': forwarded; once `bytes` bytes of the response body reached the client,
   *   nothing more is sent and the connection stays open (a server that stops answering).
   * - 'hang-request-after-bytes': once `bytes` bytes of the request body were forwarded, the proxy
   *   stops reading from the client and nothing is answered: an upload that cannot be written.
   */
  addFault(f: Fault): void;
  /** Forget faults not yet used up. */
  clearFaults(): void;
  stats(): FaultProxyStats;
  stop(): Promise<void>;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const MAX_HEAD = 64 * 1024;

type ReqState =
  | { s: 'head' }
  | { s: 'body'; remaining: number }
  | { s: 'chunk-size' }
  | { s: 'chunk-data'; remaining: number }
  | { s: 'chunk-crlf'; remaining: number }
  | { s: 'trailers' }
  | { s: 'discard' }
  | { s: 'raw' };

type RespState =
  | { s: 'pass' }
  | { s: 'drop'; bytes: number; headDone: boolean; tail: Buffer; body: number; hang: boolean }
  | { s: 'hang' }
  | { s: 'stall'; ms: number; timer?: NodeJS.Timeout; queue: Buffer[] };

const REASONS: Record<number, string> = { 429: 'Too Many Requests', 503: 'Service Unavailable' };

/**
 * A TCP proxy on 127.0.0.1 (random port) in front of `target`, for injecting faults into plain
 * HTTP/1.1 traffic. It follows request boundaries on each client connection (keep-alive,
 * Content-Length and chunked bodies) so each request can be matched. Pipelined requests are not
 * supported (a response is attributed to the latest request sent on its connection).
 */
export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const faults: Fault[] = [];
  const stats: FaultProxyStats = { connections: 0, faultsInjected: 0, requests: [] };
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const takeFault = (line: string): Fault | undefined => {
    const f = faults.find((x) => x.times > 0 && x.match.test(line));
    if (!f) return undefined;
    f.times -= 1;
    stats.faultsInjected += 1;
    return f;
  };

  const server = net.createServer((client) => {
    stats.connections += 1;
    const upstream = net.connect({ host: target.host, port: target.port });
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (resp.s === 'stall' && resp.queue.length > 0) return; // flushed, then closed, by the timer
      // A hung connection stays open to the client whatever the server does: only the client gives up.
      if (resp.s === 'hang' || (requestHang !== undefined && requestHang <= 0)) return;
      client.end();
    });

    let req: ReqState = { s: 'head' };
    let resp: RespState = { s: 'pass' };
    let head: Buffer = Buffer.alloc(0);
    let line: Buffer = Buffer.alloc(0); // chunk-size / trailer line being read

    // Bytes of request body still forwarded before the client is left hanging (hang-request-after-bytes).
    let requestHang: number | undefined;
    const toUpstream = (b: Buffer, isBody = false) => {
      if (b.length === 0) return;
      if (isBody && requestHang !== undefined) {
        if (requestHang <= 0) return;
        b = b.subarray(0, requestHang);
        requestHang -= b.length;
        if (requestHang <= 0) {
          upstream.write(b);
          client.pause(); // read no more: the client's writes back up
          return;
        }
      }
      if (!upstream.write(b)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    };
    const toClient = (b: Buffer) => {
      if (b.length === 0) return;
      if (!client.write(b)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    };

    const startRequest = (headBytes: Buffer): boolean => {
      const text = headBytes.toString('latin1');
      const requestLine = text.slice(0, text.indexOf('\r\n'));
      stats.requests.push(requestLine);
      let contentLength = 0;
      let chunked = false;
      for (const h of text.split('\r\n').slice(1)) {
        const i = h.indexOf(':');
        if (i < 0) continue;
        const name = h.slice(0, i).trim().toLowerCase();
        const value = h.slice(i + 1).trim();
        if (name === 'content-length') contentLength = Number(value);
        if (name === 'transfer-encoding' && /chunked/i.test(value)) chunked = true;
      }
      const fault = takeFault(requestLine);
      if (fault?.kind === 'status') {
        const lines = [`HTTP/1.1 ${fault.status} ${REASONS[fault.status]}`];
        if (fault.retryAfterSeconds !== undefined) lines.push(`Retry-After: ${fault.retryAfterSeconds}`);
        lines.push('Content-Length: 0', 'Connection: close', '', '');
        client.end(lines.join('\r\n'));
        upstream.destroy();
        req = { s: 'discard' };
        // Keep reading (and dropping) whatever the client still sends, then give up.
        setTimeout(() => client.destroy(), 5000).unref();
        return false;
      }
      if (fault?.kind === 'drop-after-bytes' || fault?.kind === 'hang-after-bytes') {
        resp = { s: 'drop', bytes: fault.bytes, headDone: false, tail: Buffer.alloc(0), body: 0, hang: fault.kind === 'hang-after-bytes' };
      } else if (fault?.kind === 'hang-request-after-bytes') {
        resp = { s: 'pass' };
        requestHang = fault.bytes;
      } else if (fault?.kind === 'stall') resp = { s: 'stall', ms: fault.ms, queue: [] };
      else resp = { s: 'pass' };
      toUpstream(headBytes);
      if (chunked) req = { s: 'chunk-size' };
      else if (contentLength > 0) req = { s: 'body', remaining: contentLength };
      else req = { s: 'head' };
      return true;
    };

    client.on('data', (chunk: Buffer) => {
      let buf = chunk;
      while (buf.length > 0) {
        switch (req.s) {
          case 'discard':
            return;
          case 'raw':
            toUpstream(buf);
            return;
          case 'head': {
            if (head.length === 0 && !(buf[0] >= 0x41 && buf[0] <= 0x5a)) {
              // Not an HTTP/1.x request line (e.g. a TLS ClientHello): pass the connection through
              // untouched, so the server can answer or hang up as it would without the proxy.
              req = { s: 'raw' };
              resp = { s: 'pass' };
              break;
            }
            head = head.length ? Buffer.concat([head, buf]) : buf;
            const end = head.indexOf(CRLFCRLF);
            if (end < 0) {
              if (head.length > MAX_HEAD) {
                req = { s: 'raw' }; // not HTTP as we know it: just forward
                toUpstream(head);
                head = Buffer.alloc(0);
              }
              return;
            }
            const headBytes = head.subarray(0, end + 4);
            buf = head.subarray(end + 4);
            head = Buffer.alloc(0);
            if (!startRequest(headBytes)) return;
            break;
          }
          case 'body':
          case 'chunk-data': {
            const n = Math.min(req.remaining, buf.length);
            toUpstream(buf.subarray(0, n), true);
            if (requestHang !== undefined && requestHang <= 0) return;
            buf = buf.subarray(n);
            req.remaining -= n;
            if (req.remaining === 0) req = req.s === 'body' ? { s: 'head' } : { s: 'chunk-crlf', remaining: 2 };
            break;
          }
          case 'chunk-crlf': {
            const n = Math.min(req.remaining, buf.length);
            toUpstream(buf.subarray(0, n));
            buf = buf.subarray(n);
            req.remaining -= n;
            if (req.remaining === 0) req = { s: 'chunk-size' };
            break;
          }
          case 'chunk-size':
          case 'trailers': {
            const nl = buf.indexOf(0x0a);
            const part = nl < 0 ? buf : buf.subarray(0, nl + 1);
            toUpstream(part);
            buf = buf.subarray(part.length);
            line = line.length ? Buffer.concat([line, part]) : part;
            if (nl < 0) break;
            const text = line.toString('latin1').trim();
            line = Buffer.alloc(0);
            if (req.s === 'trailers') {
              if (text === '') req = { s: 'head' };
            } else {
              const size = parseInt(text.split(';')[0], 16);
              req = size > 0 ? { s: 'chunk-data', remaining: size } : { s: 'trailers' };
            }
            break;
          }
        }
      }
    });
    client.on('end', () => {
      if (req.s !== 'discard') upstream.end();
    });

    upstream.on('data', (chunk: Buffer) => {
      const r = resp;
      if (r.s === 'hang') return;
      if (r.s === 'pass') return toClient(chunk);
      if (r.s === 'stall') {
        r.queue.push(chunk);
        if (!r.timer) {
          upstream.pause();
          r.timer = setTimeout(() => {
            timers.delete(r.timer!);
            const q = r.queue;
            resp = { s: 'pass' };
            for (const b of q) toClient(b);
            if (upstream.destroyed || upstream.readableEnded) client.end();
            else upstream.resume();
          }, r.ms);
          timers.add(r.timer);
        }
        return;
      }
      // drop-after-bytes
      let buf = chunk;
      if (!r.headDone) {
        const scan = Buffer.concat([r.tail, buf]);
        let from = 0;
        let end = -1;
        while (true) {
          const e = scan.indexOf(CRLFCRLF, from);
          if (e < 0) break;
          const isInformational = /^HTTP\/1\.[01] 1\d\d/.test(scan.subarray(from, from + 12).toString('latin1'));
          from = e + 4;
          if (!isInformational) {
            end = e + 4;
            break;
          }
        }
        if (end < 0) {
          // Headers are passed through as they come; keep the unterminated part to scan on.
          toClient(buf);
          r.tail = scan.subarray(Math.max(from, scan.length - MAX_HEAD));
          return;
        }
        r.headDone = true;
        const headPartInChunk = Math.max(0, end - r.tail.length);
        toClient(buf.subarray(0, headPartInChunk));
        buf = buf.subarray(headPartInChunk);
      }
      const allowed = r.bytes - r.body;
      if (buf.length < allowed) {
        r.body += buf.length;
        toClient(buf);
        return;
      }
      const last = buf.subarray(0, allowed);
      r.body += last.length;
      if (r.hang) {
        toClient(last);
        resp = { s: 'hang' };
        return;
      }
      upstream.destroy();
      client.end(last, () => client.destroy());
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('fault proxy: no address');
  const port = addr.port;

  return {
    host: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    addFault: (f) => faults.push({ ...f }),
    clearFaults: () => {
      faults.length = 0;
    },
    stats: () => ({ ...stats, requests: [...stats.requests] }),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const s of sockets) s.destroy();
      }),
  };
}
