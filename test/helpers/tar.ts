import { createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { signBlob } from '../../shared/sign/keys.ts';

/**
 * A raw ustar writer for tests: it writes exactly what it is told, so tests
 * can build hostile bundles (links, devices, lying sizes, truncation) that a
 * well-behaved writer would refuse to make.
 */
export function tarHeader(path: string, size: number, type: string = '0', linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(path, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write(linkname, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

export function tarFile(path: string, body: Buffer, type = '0'): Buffer {
  const pad = (512 - (body.length % 512)) % 512;
  return Buffer.concat([tarHeader(path, body.length, type), body, Buffer.alloc(pad)]);
}

export const TAR_END = Buffer.alloc(1024);

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
    created: '2026-11-24T00:00:00Z',
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
    tar: Buffer.concat([
      tarFile('airlock.json', indexBytes),
      tarFile('airlock.json.sig', sig),
      ...entries.map((e) => tarFile(e.path, e.body)),
      TAR_END,
    ]),
  };
}
