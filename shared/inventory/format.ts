import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RemoteError, UsageError } from '../cli/errors.ts';
import { onShutdown } from '../cli/main.ts';

/**
 * The inventory file (docs/inventory.md): what an enclave registry holds, by
 * digest. `airlock inventory` writes it; `airlock pack --since` reads it to
 * leave out the blobs the enclave already has. Plain JSON, one object, one
 * line per map entry so that a 10k-blob inventory stays well under 2 MB.
 */

export const INVENTORY_FORMAT_VERSION = 1;

/** How the inventory was built: by walking the registry's catalog, or from the images of the bundle last loaded into git. */
export type InventorySource = 'catalog' | 'git';

export interface Inventory {
  airlockInventory: typeof INVENTORY_FORMAT_VERSION;
  /** HOST[:PORT][/PREFIX] as given to --registry. */
  registry: string;
  /** ISO 8601 time the inventory was taken. */
  created: string;
  source: InventorySource;
  /** Repository paths in the registry (no host), sorted. */
  repositories: string[];
  /** repository -> tag -> manifest digest. */
  tags: Record<string, Record<string, string>>;
  /** Every manifest or index digest seen -> index into `repositories` of one repository holding it. */
  manifests: Record<string, number>;
  /** Every layer and config blob -> [size, index into `repositories` of one repository holding it]. */
  blobs: Record<string, [number, number]>;
}

/** A file larger than this is not an inventory (a million blobs take about 120 MB). */
const MAX_INVENTORY_BYTES = 512 * 1024 * 1024;

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
/** distribution-spec: path components of lowercase alphanumerics joined by ".", "_", "__" or dashes. */
const REPOSITORY_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const TOP_LEVEL_FIELDS = ['airlockInventory', 'registry', 'created', 'source', 'repositories', 'tags', 'manifests', 'blobs'];

// ---------------------------------------------------------------- reading

/**
 * Read and validate an inventory file. A file that is missing, not JSON, of
 * another format version, or malformed in any field is a UsageError (exit 2)
 * naming the file and the field.
 */
export async function readInventory(path: string): Promise<Inventory> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_INVENTORY_BYTES) throw new UsageError(`${path}: ${size} bytes is too large for an inventory file (limit ${MAX_INVENTORY_BYTES})`);
      text = await readFile(handle, 'utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') {
      throw new UsageError(`${path}: no such inventory file`, { hint: "write one in the enclave with 'airlock inventory --registry HOST -o inventory.json'" });
    }
    throw new RemoteError(`${path}: cannot read the inventory: ${(err as Error).message}`, { cause: err });
  }
  return parseInventory(text, path);
}

/** Validate the text of an inventory file; `what` names it in errors. */
export function parseInventory(text: string, what: string): Inventory {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what}: not an inventory file: not valid JSON (${(err as Error).message})`);
  }
  const fail = (field: string, problem: string): never => {
    throw new UsageError(`${what}: malformed inventory: ${field}: ${problem}`, {
      hint: "take a fresh inventory with 'airlock inventory' rather than editing the file",
    });
  };
  if (!isPlainObject(body)) return fail('(top level)', 'not a JSON object');
  if (!('airlockInventory' in body)) return fail('airlockInventory', 'missing: this is not an airlock inventory file');
  if (body.airlockInventory !== INVENTORY_FORMAT_VERSION) {
    throw new UsageError(`${what}: inventory format version ${JSON.stringify(body.airlockInventory)} is not supported (this airlock reads version ${INVENTORY_FORMAT_VERSION})`, {
      hint: 'take the inventory with the same airlock version that packs',
    });
  }
  for (const key of Object.keys(body)) if (!TOP_LEVEL_FIELDS.includes(key)) fail(key, 'unknown field');

  const registry = body.registry;
  if (typeof registry !== 'string' || registry === '') return fail('registry', 'must be a non-empty string');
  const created = body.created;
  if (typeof created !== 'string' || Number.isNaN(Date.parse(created))) return fail('created', 'must be an ISO 8601 time');
  const source = body.source;
  if (source !== 'catalog' && source !== 'git') return fail('source', 'must be "catalog" or "git"');

  const repositories = checkRepositories(body.repositories, fail);
  const manifests = checkManifests(body.manifests, repositories.length, fail);
  const tags = checkTags(body.tags, new Set(repositories), manifests, fail);
  const blobs = checkBlobs(body.blobs, repositories.length, fail);
  return { airlockInventory: INVENTORY_FORMAT_VERSION, registry, created, source, repositories, tags, manifests, blobs };
}

type Fail = (field: string, problem: string) => never;

function checkRepositories(value: unknown, fail: Fail): string[] {
  if (!Array.isArray(value)) return fail('repositories', 'must be an array of repository paths');
  const seen = new Set<string>();
  value.forEach((r, i) => {
    if (typeof r !== 'string' || !REPOSITORY_RE.test(r)) fail(`repositories[${i}]`, `not a repository path: ${JSON.stringify(r)}`);
    if (seen.has(r as string)) fail(`repositories[${i}]`, `${JSON.stringify(r)} is listed twice`);
    seen.add(r as string);
  });
  return value as string[];
}

function checkIndex(value: unknown, count: number, field: string, fail: Fail): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value >= count) {
    fail(field, `repository index must be an integer from 0 to ${count - 1}, not ${JSON.stringify(value)}`);
  }
}

function checkManifests(value: unknown, repositoryCount: number, fail: Fail): Record<string, number> {
  if (!isPlainObject(value)) return fail('manifests', 'must be an object of digest -> repository index');
  for (const [digest, index] of Object.entries(value)) {
    if (!DIGEST_RE.test(digest)) fail(`manifests[${JSON.stringify(digest)}]`, 'not a digest (sha256:<64 hex> or sha512:<128 hex>)');
    checkIndex(index, repositoryCount, `manifests[${JSON.stringify(digest)}]`, fail);
  }
  return value as Record<string, number>;
}

function checkTags(value: unknown, repositories: ReadonlySet<string>, manifests: Record<string, number>, fail: Fail): Record<string, Record<string, string>> {
  if (!isPlainObject(value)) return fail('tags', 'must be an object of repository -> tag -> digest');
  for (const [repository, tags] of Object.entries(value)) {
    const field = `tags[${JSON.stringify(repository)}]`;
    if (!repositories.has(repository)) fail(field, 'the repository is not in "repositories"');
    if (!isPlainObject(tags)) return fail(field, 'must be an object of tag -> digest');
    for (const [tag, digest] of Object.entries(tags)) {
      const tagField = `${field}[${JSON.stringify(tag)}]`;
      if (!TAG_RE.test(tag)) fail(tagField, 'not a valid tag');
      if (typeof digest !== 'string' || !DIGEST_RE.test(digest)) fail(tagField, `not a digest: ${JSON.stringify(digest)}`);
      if (!Object.hasOwn(manifests, digest as string)) fail(tagField, `${digest as string} is not in "manifests"`);
    }
  }
  return value as Record<string, Record<string, string>>;
}

function checkBlobs(value: unknown, repositoryCount: number, fail: Fail): Record<string, [number, number]> {
  if (!isPlainObject(value)) return fail('blobs', 'must be an object of digest -> [size, repository index]');
  for (const [digest, entry] of Object.entries(value)) {
    const field = `blobs[${JSON.stringify(digest)}]`;
    if (!DIGEST_RE.test(digest)) fail(field, 'not a digest (sha256:<64 hex> or sha512:<128 hex>)');
    if (!Array.isArray(entry) || entry.length !== 2) return fail(field, 'must be [size, repository index]');
    const size: unknown = entry[0];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`${field}[0]`, `size must be an integer >= 0, not ${JSON.stringify(size)}`);
    checkIndex(entry[1], repositoryCount, `${field}[1]`, fail);
  }
  return value as Record<string, [number, number]>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// ---------------------------------------------------------------- lookups

/** A blob the enclave holds: its size and one repository that holds it (a mount source). */
export interface HeldBlob {
  size: number;
  repository: string;
}

/** The inventory's blobs by digest, with the repository names resolved. */
export function heldBlobs(inventory: Inventory): Map<string, HeldBlob> {
  const held = new Map<string, HeldBlob>();
  for (const [digest, [size, index]] of Object.entries(inventory.blobs)) held.set(digest, { size, repository: inventory.repositories[index]! });
  return held;
}

// ---------------------------------------------------------------- writing

/**
 * The file's text: sorted keys, one line per repository, tag map, manifest
 * and blob, so that it diffs well and stays small.
 */
export function serializeInventory(inventory: Inventory): string {
  const entries = (record: Record<string, unknown>): string => {
    const keys = Object.keys(record).sort();
    if (keys.length === 0) return '{}';
    return `{\n${keys.map((k) => `    ${JSON.stringify(k)}: ${JSON.stringify(withSortedKeys(record[k]))}`).join(',\n')}\n  }`;
  };
  const lines = [
    `  "airlockInventory": ${inventory.airlockInventory}`,
    `  "registry": ${JSON.stringify(inventory.registry)}`,
    `  "created": ${JSON.stringify(inventory.created)}`,
    `  "source": ${JSON.stringify(inventory.source)}`,
    `  "repositories": ${inventory.repositories.length === 0 ? '[]' : `[\n${inventory.repositories.map((r) => `    ${JSON.stringify(r)}`).join(',\n')}\n  ]`}`,
    `  "tags": ${entries(inventory.tags)}`,
    `  "manifests": ${entries(inventory.manifests)}`,
    `  "blobs": ${entries(inventory.blobs)}`,
  ];
  return `{\n${lines.join(',\n')}\n}\n`;
}

function withSortedKeys(value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]]));
}

/** Write the inventory atomically: a temporary file beside the target, then a rename. */
export async function writeInventory(path: string, inventory: Inventory): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  // Interrupted (Ctrl-C) while writing: the temporary file goes, the old inventory stays.
  const unregister = onShutdown(() => rm(temp, { force: true }));
  try {
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(serializeInventory(inventory), 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new RemoteError(`${path}: cannot write the inventory: ${(err as Error).message}`, { cause: err });
  } finally {
    unregister();
  }
}
