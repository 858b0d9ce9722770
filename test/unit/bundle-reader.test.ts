import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBundle } from '../../shared/bundle/reader.ts';
import { verifyBundleFile } from '../../shared/bundle/file-verifier.ts';
import { openBundleBytes } from '../../shared/bundle/volumes.ts';
import { generateKeyPair, readPrivateKey, readPublicKey } from '../../shared/sign/keys.ts';
import { buildBundle, finish, pad512, tarFile, tarHeader, type TestEntry } from '../helpers/tar.ts';

const pair = generateKeyPair('pw');
const key = readPrivateKey(pair.privateKeyPem, 'pw', 'test.key');
const pub = readPublicKey(pair.publicKeyPem, 'test.pub');
const other = readPublicKey(generateKeyPair('pw').publicKeyPem, 'other.pub');

const layer = Buffer.alloc(300_000, 7);
const ENTRIES: TestEntry[] = [
  { path: 'manifests/app.yaml', body: Buffer.from('apiVersion: v1\nkind: Namespace\nmetadata: { name: demo }\n') },
  { path: 'oci/oci-layout', body: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
  { path: 'oci/blobs/sha256/' + 'a'.repeat(64), body: layer },
  { path: 'oci/index.json', body: Buffer.from('{"schemaVersion":2,"manifests":[]}') },
];

/** Read a bundle in odd-sized chunks; collect what each entry handed downstream. */
async function read(tar: Buffer, publicKey = pub) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < tar.length; i += 7777) chunks.push(tar.subarray(i, i + 7777));
  const got = new Map<string, number>();
  const index = await readBundle(Readable.from(chunks), {
    publicKey,
    source: 'test.tar',
    onEntry: async (entry, body) => {
      let n = 0;
      for await (const c of body as AsyncIterable<Buffer>) n += c.length;
      got.set(entry.path, n);
    },
  });
  return { index, got };
}

/** The same bundle as a file, through the parallel file verifier. */
async function verifyFile(tar: Buffer, publicKey = pub) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-fv-'));
  try {
    writeFileSync(join(dir, 'test.tar'), tar);
    const bytes = await openBundleBytes(join(dir, 'test.tar'));
    return await verifyBundleFile(bytes, { publicKey, source: 'test.tar', threads: 2 }).finally(() => bytes.close());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Refused by the streaming reader and by the file verifier, exit 3, with the same message. */
async function refused(tar: Buffer, why: RegExp, publicKey = pub) {
  const check = (err: Error & { exitCode?: number }) => {
    assert.equal(err.exitCode, 3, err.message);
    assert.match(err.message, why);
    return true;
  };
  await assert.rejects(read(tar, publicKey), check);
  await assert.rejects(verifyFile(tar, publicKey), check);
}

test('a good bundle: signature, then every entry streamed and checked, in order', async () => {
  const { tar } = buildBundle(ENTRIES, key);
  const { index, got } = await read(tar);
  assert.equal(index.name, 'demo');
  const fromFile = await verifyFile(tar);
  assert.equal(fromFile.method, 'parallel', 'a good bundle file is verified by the parallel path');
  assert.deepEqual(fromFile.index, index);
  assert.deepEqual([...got.keys()], ENTRIES.map((e) => e.path));
  assert.equal(got.get(ENTRIES[2]!.path), layer.length);
});

test('a flipped byte in a layer: exit 3 naming the entry, its bytes never all handed on', async () => {
  const { tar } = buildBundle(ENTRIES, key);
  const at = tar.indexOf(layer) + 150_000;
  tar[at] = tar[at]! ^ 1;
  await refused(tar, /entry oci\/blobs\/sha256\/a{64}: content has digest sha256:[a-f0-9]{64}, expected sha256:[a-f0-9]{64}/);
});

test('the index edited to match a changed blob: the signature fails', async () => {
  const { tar, indexBytes } = buildBundle(ENTRIES, key);
  const changed = Buffer.from(indexBytes.toString().replace('"demo"', '"evil"'));
  const evil = Buffer.concat([tarFile('airlock.json', changed), tar.subarray(512 + Math.ceil(indexBytes.length / 512) * 512)]);
  await refused(evil, /airlock.json: the signature does not match/);
});

test('a signature from another key', async () => {
  await refused(buildBundle(ENTRIES, key).tar, /signature does not match/, other);
});

test('a truncated tar, cut mid-entry or between entries', async () => {
  const { tar } = buildBundle(ENTRIES, key);
  const at = tar.indexOf(layer);
  await refused(tar.subarray(0, at + 1000), new RegExp(`truncated: it ends at byte ${at + 1000} inside oci/blobs/sha256/a{64} \\(offset ${at - 512}\\)`));
  const afterLayer = at + Math.ceil(layer.length / 512) * 512;
  await refused(tar.subarray(0, afterLayer), new RegExp(`truncated: it ends at byte ${afterLayer} inside oci/index.json`));
});

test('an extra entry the index does not list', async () => {
  const { head } = buildBundle(ENTRIES, key);
  const tar = finish([head, ...ENTRIES.map((e) => tarFile(e.path, e.body)), tarFile('oci/extra', Buffer.from('x'))]);
  await refused(tar, /non-zero byte at offset \d+, in the end of the archive/);
});

test('../ and absolute paths, in the tar or in the signed index', async () => {
  const { head } = buildBundle(ENTRIES, key);
  await refused(finish([head, tarFile('../etc/passwd', Buffer.from('x'))]), /the tar header of manifests\/app.yaml at offset 2560 differs in the name field/);
  await refused(finish([head, tarFile('/etc/passwd', Buffer.from('x'))]), /the tar header of manifests\/app.yaml at offset 2560 differs in the name field/);
  const listed = buildBundle([{ path: 'manifests/../../x', body: Buffer.from('x') }], key);
  await refused(listed.tar, /entries\[0\] "manifests\/\.\.\/\.\.\/x" has a/);
});

test('symlink, hardlink and device entries', async () => {
  const { head } = buildBundle(ENTRIES, key);
  const app = ENTRIES[0]!;
  for (const type of ['2', '1', '3', '4', '6']) {
    const header = tarHeader(app.path, app.body.length, type, '/etc/shadow');
    const tar = finish([head, header, app.body, Buffer.alloc(pad512(app.body.length)), ...ENTRIES.slice(1).map((e) => tarFile(e.path, e.body))]);
    await refused(tar, /the tar header of manifests\/app.yaml at offset 2560 differs in the type field \(byte 2716\)/);
  }
});

test('a duplicate entry', async () => {
  const { head } = buildBundle(ENTRIES, key);
  const first = ENTRIES[0]!;
  const tar = finish([head, tarFile(first.path, first.body), ...ENTRIES.map((e) => tarFile(e.path, e.body))]);
  await refused(tar, /the tar header of oci\/oci-layout at offset 3584 differs in the name field/);
});

test('a tar header claiming 10 GB for a tiny file', async () => {
  const { head } = buildBundle(ENTRIES, key);
  const tar = finish([head, tarHeader(ENTRIES[0]!.path, 10 * 1024 ** 3), Buffer.alloc(512)]);
  await refused(tar, /the tar header of manifests\/app.yaml at offset 2560 differs in the size field/);
});

test('an index that is not valid JSON or lacks fields (validly signed)', async () => {
  const bad = (edit: (i: Record<string, unknown>) => void) => buildBundle(ENTRIES, key, edit).tar;
  await refused(bad((i) => delete i.entries), /airlock.json: missing field entries/);
  await refused(bad((i) => delete i.name), /missing or empty field name/);
  await refused(bad((i) => (i.airlockVersion = 2)), /airlockVersion 2 is not 1/);
  await refused(bad((i) => ((i.entries as { size: number }[])[0]!.size = -1)), /has an invalid size/);
});

test('not a bundle at all: an unsigned tar or garbage', async () => {
  await refused(finish([tarFile('manifests/a.yaml', Buffer.from('x'))]), /the first entry is not airlock.json: not an airlock bundle/);
  await refused(finish([tarFile('airlock.json', Buffer.from('{}'))]), /the second entry \(offset 1024\) is not a signature/);
  await refused(Buffer.alloc(4096, 0x41), /the first entry is not airlock.json: not an airlock bundle/);
});
