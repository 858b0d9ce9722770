import { readFile } from 'node:fs/promises';
import { UsageError } from '../cli/errors.ts';

/**
 * The inventory file (`airlock inventory`, read by `pack --since`): what an
 * enclave registry holds, by digest. Plain JSON, one object; see
 * docs/inventory.md. Read strictly: any malformed field is exit 2 naming it.
 */
export interface Inventory {
  airlockInventory: 1;
  /** HOST[:PORT][/PREFIX] as given to --registry. */
  registry: string;
  created: string;
  source: 'catalog' | 'git';
  /** Repository paths in the registry (no host), sorted. */
  repositories: string[];
  /** repository -> tag -> manifest digest. */
  tags: Record<string, Record<string, string>>;
  /** Every manifest or index digest seen -> index into `repositories` of one repository holding it. */
  manifests: Record<string, number>;
  /** Every layer or config blob -> [size, index into `repositories` of one repository holding it]. */
  blobs: Record<string, [number, number]>;
}

/** An inventory is small (10k blobs under 2 MB); a much bigger file is not one. */
const MAX_INVENTORY_BYTES = 256 * 1024 * 1024;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export async function readInventory(path: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the inventory ${path}: ${(err as Error).message}`);
  }
  if (text.length > MAX_INVENTORY_BYTES) throw new UsageError(`${path}: ${text.length} bytes is too big for an inventory`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path}: not valid JSON (${(err as Error).message})`, { hint: 'give the file airlock inventory wrote' });
  }
  return parseInventory(value, path);
}

/** Validate a parsed inventory into its shape; `where` names the file in messages. */
export function parseInventory(value: unknown, where: string): Inventory {
  const bad = (why: string): never => {
    throw new UsageError(`${where}: ${why}`, { hint: 'the inventory is malformed: write it again with airlock inventory' });
  };
  if (!isObject(value)) return bad('not a JSON object');
  if (value.airlockInventory !== 1) bad(`airlockInventory ${JSON.stringify(value.airlockInventory)} is not 1 (made by a newer airlock?)`);
  if (typeof value.registry !== 'string' || value.registry === '') bad('registry must be a non-empty string');
  if (typeof value.created !== 'string' || !Number.isFinite(Date.parse(value.created))) bad('created must be a time');
  if (value.source !== 'catalog' && value.source !== 'git') bad(`source ${JSON.stringify(value.source)} is not "catalog" or "git"`);
  const repositories = value.repositories;
  if (!Array.isArray(repositories) || !repositories.every((r) => typeof r === 'string' && r !== '')) return bad('repositories must be a list of non-empty strings');
  const inRange = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) < repositories.length;

  if (!isObject(value.tags)) return bad('tags must be an object');
  for (const [repo, tags] of Object.entries(value.tags)) {
    if (!isObject(tags)) return bad(`tags.${repo} must be an object`);
    for (const [tag, digest] of Object.entries(tags)) if (typeof digest !== 'string' || !DIGEST.test(digest)) bad(`tags.${repo}.${tag} is not a sha256 digest`);
  }
  if (!isObject(value.manifests)) return bad('manifests must be an object');
  for (const [digest, at] of Object.entries(value.manifests)) {
    if (!DIGEST.test(digest)) bad(`manifests: ${JSON.stringify(digest)} is not a sha256 digest`);
    if (!inRange(at)) bad(`manifests.${digest}: ${JSON.stringify(at)} is not an index into repositories`);
  }
  if (!isObject(value.blobs)) return bad('blobs must be an object');
  for (const [digest, entry] of Object.entries(value.blobs)) {
    if (!DIGEST.test(digest)) bad(`blobs: ${JSON.stringify(digest)} is not a sha256 digest`);
    if (!Array.isArray(entry) || entry.length !== 2) bad(`blobs.${digest} must be [size, repository index]`);
    const [size, at] = entry as unknown[];
    if (!Number.isSafeInteger(size) || (size as number) < 0) bad(`blobs.${digest}: size ${JSON.stringify(size)} is not an integer >= 0`);
    if (!inRange(at)) bad(`blobs.${digest}: ${JSON.stringify(at)} is not an index into repositories`);
  }
  return value as unknown as Inventory;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
