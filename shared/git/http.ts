import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { Readable } from 'node:stream';
import type { HttpTransport } from '../registry/transport.ts';

/**
 * isomorphic-git's HTTP plugin on airlock's transport: the same TLS trust
 * (system CAs, NODE_EXTRA_CA_CERTS, --ca-file), keep-alive and error
 * messages as the registry client. Basic credentials, when given, go with
 * every request (git servers answer 401 to anonymous pushes).
 */
export function gitHttp(transport: HttpTransport, credentials?: { username: string; password: string }): HttpClient {
  const authorization = credentials ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` : undefined;
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const url = new URL(req.url);
      const headers: Record<string, string> = { ...(req.headers ?? {}) };
      if (authorization) headers.authorization = authorization;
      let body: Buffer | undefined;
      if (req.body) {
        const parts: Uint8Array[] = [];
        for await (const chunk of req.body) parts.push(chunk);
        body = Buffer.concat(parts);
      }
      const method = (req.method ?? 'GET').toUpperCase() as 'GET' | 'POST';
      const res = await transport.send({ method, url, headers, body, what: `git ${method} ${url.origin}${url.pathname}` });
      const outHeaders: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) outHeaders[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
      return {
        url: req.url,
        method,
        statusCode: res.status,
        statusMessage: String(res.status),
        headers: outHeaders,
        body: (res.body as unknown as Readable)[Symbol.asyncIterator]() as AsyncIterableIterator<Uint8Array>,
      };
    },
  };
}
