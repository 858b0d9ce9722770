import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { FLUSH, pktLine, splitPktLines } from '../../shared/git/pkt.ts';

/**
 * A repository whose HEAD names a branch that does not exist (every forge
 * creates an empty repository with HEAD -> main; airlock then pushes only
 * dev) advertises its refs without HEAD. isomorphic-git's fetch (1.44) still
 * resolves the remote HEAD after fetching one named branch and fails with
 * "Could not find HEAD" (isomorphic-git issue 1654). This wrapper of the
 * HTTP plugin (HTTPS and the SSH bridge alike) gives such an upload-pack
 * advertisement a `symref=HEAD:<ref>` capability naming the branch being
 * fetched; only the temporary repository's refs/remotes/origin/HEAD sees it.
 * Advertisements that have a HEAD, have no refs or speak protocol v2 pass
 * through unchanged.
 */
export function tolerateUnbornHead(http: HttpClient, ref: string): HttpClient {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const res = await http.request(req);
      const url = new URL(req.url);
      const isAdvertisement = (req.method ?? 'GET').toUpperCase() === 'GET' && url.pathname.endsWith('/info/refs') && url.searchParams.get('service') === 'git-upload-pack';
      if (!isAdvertisement || res.statusCode !== 200) return res;
      const parts: Uint8Array[] = [];
      for await (const chunk of res.body ?? []) parts.push(chunk);
      const body = withHeadSymref(Buffer.concat(parts), ref);
      return {
        ...res,
        body: (async function* () {
          yield new Uint8Array(body);
        })(),
      };
    },
  };
}

/** The v0 advertisement with `symref=HEAD:<ref>` added to its capabilities when it lists refs but no HEAD; otherwise the same bytes. */
export function withHeadSymref(advertisement: Buffer, ref: string): Buffer {
  let lines: (Buffer | null)[];
  try {
    lines = splitPktLines(advertisement);
  } catch {
    return advertisement; // not ours to judge: isomorphic-git reports what is wrong with it
  }
  const first = lines.findIndex((l) => l !== null && !l.toString('utf8').startsWith('# service='));
  if (first < 0) return advertisement;
  const line = lines[first]!.toString('utf8');
  const nul = line.indexOf('\0');
  if (nul < 0 || line.startsWith('version ')) return advertisement;
  const names = lines.slice(first).map((l, i) => (l === null ? undefined : (i === 0 ? line.slice(0, nul) : l.toString('utf8')).trim().split(' ')[1]));
  if (names[0] === 'capabilities^{}') return advertisement; // no refs at all
  const capabilities = line.slice(nul + 1).replace(/\n$/, '');
  if (names.includes('HEAD') || capabilities.split(' ').some((c) => c.startsWith('symref=HEAD:'))) return advertisement;
  lines[first] = Buffer.from(`${line.slice(0, nul)}\0${capabilities} symref=HEAD:${ref}\n`, 'utf8');
  return Buffer.concat(lines.map((l) => (l === null ? FLUSH : pktLine(l))));
}
