/**
 * The registry-side invariants, read over the distribution API as any client would: every tag's
 * graph is complete (its manifest, each child manifest and every referenced blob answer 200), and
 * after a rerun each expected tag names the expected digest.
 */
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Manifest {
  manifests?: { digest: string }[];
  config?: { digest: string };
  layers?: { digest: string }[];
}

async function getJson<T>(url: string): Promise<{ status: number; body?: T; digest?: string }> {
  const res = await fetch(url, { headers: { Accept: ACCEPT } });
  if (res.status !== 200) {
    await res.body?.cancel();
    return { status: res.status };
  }
  return { status: 200, body: (await res.json()) as T, digest: res.headers.get('docker-content-digest') ?? undefined };
}

async function head(url: string): Promise<number> {
  return (await fetch(url, { method: 'HEAD' })).status;
}

/** Repositories of the registry under `prefix/`. */
export async function repositories(registryUrl: string, prefix: string): Promise<string[]> {
  const { body } = await getJson<{ repositories: string[] | null }>(`${registryUrl}/v2/_catalog?n=100000`);
  return (body?.repositories ?? []).filter((r) => r.startsWith(`${prefix}/`));
}

/** What is wrong with the graph of `repo`@`reference` (empty: complete). */
export async function graphProblems(registryUrl: string, repo: string, reference: string): Promise<string[]> {
  const got = await getJson<Manifest>(`${registryUrl}/v2/${repo}/manifests/${reference}`);
  if (got.status !== 200 || !got.body) return [`${repo}@${reference}: manifest answers ${got.status}`];
  const problems: string[] = [];
  for (const child of got.body.manifests ?? []) problems.push(...(await graphProblems(registryUrl, repo, child.digest)));
  for (const blob of [got.body.config, ...(got.body.layers ?? [])]) {
    if (!blob) continue;
    const status = await head(`${registryUrl}/v2/${repo}/blobs/${blob.digest}`);
    if (status !== 200) problems.push(`${repo}@${reference}: blob ${blob.digest} answers ${status}`);
  }
  return problems;
}

/** Every tag under `prefix/` whose graph is incomplete, with what is missing. */
export async function incompleteTags(registryUrl: string, prefix: string): Promise<string[]> {
  const problems: string[] = [];
  for (const repo of await repositories(registryUrl, prefix)) {
    const { body } = await getJson<{ tags: string[] | null }>(`${registryUrl}/v2/${repo}/tags/list`);
    for (const tag of body?.tags ?? []) problems.push(...(await graphProblems(registryUrl, repo, tag)));
  }
  return problems;
}

/** Tags under `prefix/`, as `repo:tag`. */
export async function tagsUnder(registryUrl: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const repo of await repositories(registryUrl, prefix)) {
    const { body } = await getJson<{ tags: string[] | null }>(`${registryUrl}/v2/${repo}/tags/list`);
    for (const tag of body?.tags ?? []) out.push(`${repo}:${tag}`);
  }
  return out;
}

/** Each expected `repo:tag` -> digest that the registry does not serve (with a complete graph). */
export async function wrongDigests(registryUrl: string, expected: Map<string, string>): Promise<string[]> {
  const wrong: string[] = [];
  for (const [ref, digest] of expected) {
    const at = ref.lastIndexOf(':');
    const [repo, tag] = [ref.slice(0, at), ref.slice(at + 1)];
    const got = await getJson<Manifest>(`${registryUrl}/v2/${repo}/manifests/${tag}`);
    if (got.digest !== digest) wrong.push(`${ref}: ${got.status === 200 ? got.digest : `answers ${got.status}`}, expected ${digest}`);
    else wrong.push(...(await graphProblems(registryUrl, repo, tag)));
  }
  return wrong;
}
