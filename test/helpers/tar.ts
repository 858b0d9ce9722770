import { createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { signBlob } from '../../shared/sign/keys.ts';

/**
 * A raw ustar writer for tests: it writes exactly what it is told, so tests
 * can build hostile bundles (links, devices, lying sizes, truncation) that a
 * well-behaved writer would refuse to make.
 */
export function tarHeader(path: string, size: number, type: string = '0', linkname = '', mtime = MTIME): Buffer {
  const h = Buffer.alloc(512);
  h.write(path, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write(mtime.toString(8).padStart(11, '0') + '\0', 136);
  h.write(type, 156);
  h.write(linkname, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.write('0000000\0', 329);
  h.write('0000000\0', 337);
  return withChecksum(h);
}

/** Recompute a header block's checksum (after editing a field), as an attacker would. */
export function withChecksum(h: Buffer): Buffer {
  h.write('        ', 148);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

export function tarFile(path: string, body: Buffer, type = '0', mtime = MTIME): Buffer {
  return Buffer.concat([tarHeader(path, body.length, type, '', mtime), body, Buffer.alloc(pad512(body.length))]);
}

export function pad512(n: number): number {
  return (512 - (n % 512)) % 512;
}

/** The created time of test bundles, and so the mtime of their headers. */
export const CREATED = '2026-11-24T00:00:00Z';
export const MTIME = Date.parse(CREATED) / 1000;

/** Two zero blocks (what a tar writer ends with; the canonical end pads further, see endZeros). */
export const TAR_END = Buffer.alloc(1024);

/** The canonical end of a bundle whose entries end at `length`: two zero blocks, then zeros to a multiple of 10240. */
export function endZeros(length: number): Buffer {
  return Buffer.alloc(Math.ceil((length + 1024) / 10240) * 10240 - length);
}

/** Entries plus the canonical end. */
export function finish(parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([body, endZeros(body.length)]);
}

export interface TestEntry {
  path: string;
  body: Buffer;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The index for these entries, its signature, and the whole tar. */
export function buildBundle(entries: TestEntry[], key: KeyObject, edit?: (index: Record<string, unknown>) => void) {
  const index: Record<string, unknown> = {
    airlockVersion: 1,
    name: 'demo',
    version: '1.0.0',
    created: CREATED,
    platforms: ['linux/amd64'],
    images: [],
    charts: [],
    entries: entries.map((e) => ({ path: e.path, size: e.body.length, sha256: sha256(e.body) })),
  };
  edit?.(index);
  const indexBytes = Buffer.from(JSON.stringify(index));
  const sig = Buffer.from(signBlob(indexBytes, key));
  return {
    indexBytes,
    sig,
    head: Buffer.concat([tarFile('airlock.json', indexBytes), tarFile('airlock.json.sig', sig)]),
    tar: finish([tarFile('airlock.json', indexBytes), tarFile('airlock.json.sig', sig), ...entries.map((e) => tarFile(e.path, e.body))]),
  };
}
