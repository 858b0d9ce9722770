import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 (random port) that stops forwarding: once the
 * server has sent `afterBytes` bytes toward the client on one connection,
 * nothing more is passed on it and the sockets stay open (a server that
 * hangs mid-response, as seen from the client, whatever the protocol on top:
 * TLS, SSH, HTTP). That happens to `stalledConnections` connections (default
 * 1); after that, every connection is forwarded whole.
 */
export interface StallingProxy {
  port: number;
  /** Connections accepted, and how many were stalled. */
  stats(): { connections: number; stalled: number };
  stop(): Promise<void>;
}

export async function startStallingProxy(target: { host: string; port: number }, opts: { afterBytes: number; stalledConnections?: number }): Promise<StallingProxy> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let stalled = 0;
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    let sent = 0;
    let hung = false;
    upstream.on('data', (chunk: Buffer) => {
      if (hung) return;
      const room = opts.afterBytes - sent;
      if (chunk.length >= room && stalled < (opts.stalledConnections ?? 1)) {
        if (room > 0) client.write(chunk.subarray(0, room));
        hung = true;
        stalled++;
        client.unpipe(upstream);
        return;
      }
      sent += chunk.length;
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    stats: () => ({ connections, stalled }),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
