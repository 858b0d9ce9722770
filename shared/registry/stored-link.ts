/**
 * A registry's storage damaged by a full disk, as distribution 2.x (docker-registry,
 * and the Harbor built on it) leaves it, and what a client can do about it.
 *
 * distribution 2.x writes its small files in place (the filesystem driver's PutContent:
 * open, truncate, buffered write): when the disk fills, the file stays behind empty.
 * Two kinds of small files matter:
 *
 * - link files (`_layers/.../link`, `_manifests/revisions/.../link`, a tag's
 *   `current/link`): an empty one makes every HEAD and GET of that blob, manifest or
 *   tag answer HTTP 500, the GET's body naming only distribution's catch-all error code
 *   UNKNOWN (the cause, "invalid checksum digest format", stays in the registry's log).
 *   Pushing the item again rewrites the link. So when a HEAD still answers 500 after its
 *   retries and a GET of the same answers 500 UNKNOWN, this client counts the item as
 *   unreadable: absent, to be pushed again, and read back once pushed (a registry that
 *   still cannot serve it is an error). Other 500s (a proxy's page, another code) stay
 *   errors (RegistryClient.resolve, blobExists).
 * - a manifest's own bytes (`blobs/sha256/XX/DIGEST/data`): once that file exists,
 *   empty or not, no later manifest PUT or blob upload replaces it (both skip content
 *   "already present"). So this client uploads a manifest's bytes as a blob before the
 *   manifest PUT: a blob upload lands by rename, whole or not at all, and the PUT then
 *   only writes the link (RegistryClient.putManifest).
 *
 * distribution 3 writes through a temporary file and a rename (upstream commit a5a6f1ba),
 * so its files are never left half written.
 */

/**
 * Whether the text of a registry's HTTP 500 answer is distribution's own catch-all
 * (`{"errors":[{"code":"UNKNOWN",...}]}`): the registry failed inside, as it does on a
 * link file of its storage it cannot read.
 */
export function isInternalStorageFailure(text: string): boolean {
  try {
    const body = JSON.parse(text) as { errors?: { code?: unknown }[] };
    return Array.isArray(body.errors) && body.errors.some((e) => e?.code === 'UNKNOWN');
  } catch {
    return false;
  }
}

/** The hint for an item a registry still cannot read after it was pushed again. */
export function damagedStorageHint(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return (
    `the registry's storage holds a damaged copy of ${digest} (distribution 2.x leaves an empty file behind when its disk fills, ` +
    `and no push replaces it): ask its operator to remove docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/ from its storage, then run the same command again`
  );
}
