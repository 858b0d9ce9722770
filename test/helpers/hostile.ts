import { gzipSync } from 'node:zlib';
import { endZeros, pad512, tarFile, tarHeader, withChecksum } from './tar.ts';

/**
 * Hostile variants of a good bundle, built byte by byte as an attacker would
 * (who has the bundle but not the signing key): each keeps the signed index
 * and changes what tar readers see. Findings are numbered as in the
 * bundle-integrity review: 1 hidden entries, 2 PAX framing, 3 end of archive,
 * 4 lenient numbers, 5 same-size edits load used to miss, 6 same-size
 * tampered blobs, 9 a bad checksum.
 */
export interface HostileCase {
  finding: number;
  name: string;
  bytes: Buffer;
  /** What verify and load must say (exit 3). */
  refusal: RegExp;
}

/** An entry as a plain tar walk finds it in a bundle the test itself trusts. */
export interface WalkedEntry {
  path: string;
  headerAt: number;
  dataAt: number;
  size: number;
}

/** Walk a canonical bundle's headers (no PAX: the bundles used here have none). */
export function walk(tar: Buffer): { entries: WalkedEntry[]; end: number; mtime: number } {
  const entries: WalkedEntry[] = [];
  let at = 0;
  while (at + 512 <= tar.length && tar[at] !== 0) {
    const h = tar.subarray(at, at + 512);
    const field = (start: number, len: number) => h.subarray(start, start + len).toString('latin1').replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const path = (prefix ? prefix + '/' : '') + field(0, 100);
    const size = parseInt(field(124, 12), 8);
    entries.push({ path, headerAt: at, dataAt: at + 512, size });
    at += 512 + size + pad512(size);
  }
  const mtime = parseInt(tar.subarray(136, 147).toString('latin1'), 8);
  return { entries, end: at, mtime };
}

/** The same bytes with `insert` placed at `at`, re-ended canonically (so only the insertion differs). */
function insertAt(tar: Buffer, end: number, at: number, insert: Buffer): Buffer {
  const body = Buffer.concat([tar.subarray(0, at), insert, tar.subarray(at, end)]);
  return Buffer.concat([body, endZeros(body.length)]);
}

function paxHeader(records: string, type = 'x', mtime = 0): Buffer {
  const body = Buffer.from(records, 'utf8');
  return Buffer.concat([tarHeader('././@PaxHeader', body.length, type, '', mtime), body, Buffer.alloc(pad512(body.length))]);
}

function record(key: string, value: string): string {
  const body = Buffer.byteLength(` ${key}=${value}\n`);
  let len = body + 1;
  while (len !== body + String(len).length) len = body + String(len).length;
  return `${len} ${key}=${value}\n`;
}

function withSizeField(tar: Buffer, e: WalkedEntry, field: string): Buffer {
  const out = Buffer.from(tar);
  const h = out.subarray(e.headerAt, e.headerAt + 512);
  Buffer.alloc(12).copy(h, 124);
  h.write(field, 124, 12, 'latin1');
  withChecksum(h);
  return out;
}

function flip(tar: Buffer, at: number): Buffer {
  const out = Buffer.from(tar);
  out[at] = out[at]! ^ 0x01;
  return out;
}

/**
 * Every hostile variant of `tar`. `victim` is the listed entry the attack
 * targets (a small one after the signature); `blobs` names one config and one
 * layer entry for the same-size tampering cases.
 */
export function hostileCases(tar: Buffer, opts: { victim: string; config?: string; layer?: string }): HostileCase[] {
  const { entries, end, mtime } = walk(tar);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const victim = byPath.get(opts.victim)!;
  if (!victim) throw new Error(`no entry ${opts.victim}`);
  const afterSig = entries[2]!.headerAt;
  const afterVictim = victim.dataAt + victim.size + pad512(victim.size);
  const evil = Buffer.from('apiVersion: v1\nkind: Pod\nmetadata: {name: evil}\n');
  const cases: HostileCase[] = [];
  const add = (finding: number, name: string, bytes: Buffer, refusal: RegExp) => cases.push({ finding, name, bytes, refusal });
  const headerOf = (e: WalkedEntry) => new RegExp(`the tar header of ${escape(e.path)} at offset ${e.headerAt} differs in the (\\w+ )?field|the tar header of ${escape(e.path)} at offset ${e.headerAt} differs in the`);
  const next = entries[entries.indexOf(victim) + 1]!;

  // 1. Hidden entries: types node-tar ignores, global PAX, stacked or huge PAX, GNU long names.
  for (const type of ['S', 'V', 'M', 'A', 'I', 'Z']) {
    add(1, `an entry of type ${type} after ${victim.path}`, insertAt(tar, end, afterVictim, tarFile(victim.path, evil, type, mtime)), headerOf(next));
  }
  add(1, 'a global PAX header with path=../../evil', insertAt(tar, end, afterSig, paxHeader(record('path', '../../evil'), 'g', mtime)), headerOf(entries[2]!));
  add(1, 'two PAX headers in a row', insertAt(tar, end, victim.headerAt, Buffer.concat([paxHeader(record('comment', 'a'), 'x', mtime), paxHeader(record('path', 'oci/other'), 'x', mtime)])), headerOf(victim));
  add(1, 'a PAX header over 1 MiB', insertAt(tar, end, victim.headerAt, paxHeader(record('comment', 'x'.repeat(1_100_000)), 'x', mtime)), headerOf(victim));
  for (const type of ['K', 'L']) {
    const body = Buffer.from('oci/SMUGGLED-by-gnu\0');
    add(1, `a GNU ${type} long-name header`, insertAt(tar, end, victim.headerAt, Buffer.concat([tarHeader('././@LongLink', body.length, type, '', mtime), body, Buffer.alloc(pad512(body.length))])), headerOf(victim));
  }

  // 2. PAX framing: newline-split readers see the listed path, length-framed ones another.
  const hidden = record('path', victim.path);
  const comment = `${hidden.length + 20} comment=a\n${hidden}`.padEnd(hidden.length + 20, 'x') + '\n';
  add(2, 'a PAX comment hiding a path record', insertAt(tar, end, victim.headerAt, paxHeader(comment + record('path', 'oci/SMUGGLED-by-pax'), 'x', mtime)), headerOf(victim));

  // 3. The end of the archive.
  add(3, 'cut right after the last entry', tar.subarray(0, end), /truncated: it ends at byte \d+ in the end-of-archive blocks/);
  add(3, 'trailing garbage', Buffer.concat([tar, Buffer.from('garbage')]), /data after the end of the bundle/);
  add(3, 'a valid unlisted entry after the end blocks', Buffer.concat([tar, tarFile('oci/extra', evil, '0', mtime), Buffer.alloc(1024)]), /data after the end of the bundle/);
  add(3, 'gzip-compressed', gzipSync(tar), /the bundle is gzip-compressed: bundles are plain \(uncompressed\) tar files/);

  // 4. Lenient numbers in a size field (checksum fixed, as an attacker would).
  const octal = victim.size.toString(8);
  add(4, 'size field with a trailing X', withSizeField(tar, victim, octal.padStart(11, '0') + 'X'), headerOf(victim));
  add(4, 'size field with trailing junk digits', withSizeField(tar, victim, octal + 'zz9'), headerOf(victim));
  add(4, 'a PAX size of 0x..', insertAt(tar, end, victim.headerAt, paxHeader(record('size', `0x${victim.size.toString(16)}`), 'x', mtime)), headerOf(victim));
  add(4, 'a PAX size in exponent form', insertAt(tar, end, victim.headerAt, paxHeader(record('size', victim.size.toExponential()), 'x', mtime)), headerOf(victim));

  // 5. Same-size edits of entries a load does not push: oci/index.json, oci/oci-layout, a manifest file.
  for (const path of ['oci/index.json', 'oci/oci-layout', ...entries.filter((e) => e.path.startsWith('manifests/')).slice(0, 1).map((e) => e.path)]) {
    const e = byPath.get(path);
    if (e) add(5, `${path} edited, same size`, flip(tar, e.dataAt + Math.floor(e.size / 2)), new RegExp(`entry ${escape(path)}: content has digest`));
  }

  // 6. Same-size tampering of a config and a layer.
  for (const path of [opts.config, opts.layer]) {
    const e = path ? byPath.get(path) : undefined;
    if (e) add(6, `${path === opts.config ? 'a config' : 'a layer'} tampered, same size`, flip(tar, e.dataAt + Math.floor(e.size / 2)), new RegExp(`entry ${escape(e.path)}: content has digest`));
  }

  // 9. A bad checksum alone.
  const badSum = Buffer.from(tar);
  badSum.write('0000000\0', victim.headerAt + 148, 'latin1');
  add(9, 'a bad header checksum', badSum, new RegExp(`the tar header of ${escape(victim.path)} at offset ${victim.headerAt} differs in the checksum field`));
  return cases;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
