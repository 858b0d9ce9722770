import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Header } from 'tar';
import { verifyBundleFile } from '../../shared/bundle/file-verifier.ts';
import { peekBundleIndex, readBundle } from '../../shared/bundle/reader.ts';
import { openBundleBytes, splitBundle } from '../../shared/bundle/volumes.ts';
import { BundleWriter } from '../../shared/bundle/writer.ts';
import { generateKeyPair, readPrivateKey, readPublicKey, signBlob } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { hostileCases, walk } from '../helpers/hostile.ts';
import { buildBundle, finish, pad512, sha256, tarFile, type TestEntry } from '../helpers/tar.ts';

/**
 * Bundle integrity: what verify accepts is exactly what every tar reader
 * sees. Each hostile bundle is built byte by byte, as an attacker with the
 * bundle but not the key would; both readers (by offset in parallel, and
 * sequential) must refuse it with exit 3 and the same message, and every
 * bundle they accept lists, under GNU tar and python, exactly the signed
 * index. Load's side of each case runs against a registry in
 * test/integration/hostile-load.test.ts.
 */
const pair = generateKeyPair('pw');
const key = readPrivateKey(pair.privateKeyPem, 'pw', 'test.key');
const pub = readPublicKey(pair.publicKeyPem, 'test.pub');

const CONFIG = `oci/blobs/sha256/${'c'.repeat(64)}`;
const LAYER = `oci/blobs/sha256/${'d'.repeat(64)}`;
const ENTRIES: TestEntry[] = [
  { path: 'manifests/app.yaml', body: Buffer.from('apiVersion: v1\nkind: Namespace\nmetadata: { name: demo }\n') },
  { path: 'oci/oci-layout', body: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
  { path: CONFIG, body: Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}') },
  { path: LAYER, body: randomBytes(200_000) },
  { path: 'oci/index.json', body: Buffer.from('{"schemaVersion":2,"manifests":[]}') },
];

async function readSequentially(tar: Buffer) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < tar.length; i += 5000) chunks.push(tar.subarray(i, i + 5000));
  return readBundle(Readable.from(chunks), { publicKey: pub, source: 'test.tar' });
}

async function verifyFile(tar: Buffer) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-hostile-'));
  try {
    writeFileSync(join(dir, 'test.tar'), tar);
    const bytes = await openBundleBytes(join(dir, 'test.tar'));
    return await verifyBundleFile(bytes, { publicKey: pub, source: 'test.tar', threads: 2 }).finally(() => bytes.close());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Both readers refuse, exit 3, with one message matching `why`. */
async function refusedByBoth(tar: Buffer, why: RegExp): Promise<string> {
  const messages: string[] = [];
  const check = (err: Error & { exitCode?: number; hint?: string }) => {
    assert.equal(err.exitCode, 3, err.stack);
    assert.match(`${err.message}\n${err.hint ?? ''}`, why);
    messages.push(err.message);
    return true;
  };
  await assert.rejects(readSequentially(tar), check);
  await assert.rejects(verifyFile(tar), check);
  assert.equal(messages[0], messages[1], 'the sequential reader and the file verifier say the same');
  return messages[0]!;
}

function tarList(tar: Buffer): string[] {
  return execFileSync('tar', ['-tf', '-'], { input: tar, maxBuffer: 1 << 26 }).toString().split('\n').filter(Boolean);
}

function pythonList(tar: Buffer): string[] {
  const script = 'import sys, tarfile, io\nt = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()), mode="r:")\nprint("\\n".join(m.name for m in t.getmembers()))';
  return execFileSync('python3', ['-c', script], { input: tar, maxBuffer: 1 << 26 }).toString('utf8').split('\n').filter(Boolean);
}

const good = buildBundle(ENTRIES, key);

test('a good bundle is accepted by both readers, and GNU tar and python list exactly the signed index', async () => {
  const index = await readSequentially(good.tar);
  assert.equal((await verifyFile(good.tar)).method, 'parallel');
  const listed = ['airlock.json', 'airlock.json.sig', ...index.entries.map((e) => e.path)];
  assert.deepEqual(tarList(good.tar), listed);
  assert.deepEqual(pythonList(good.tar), listed);
});

for (const c of hostileCases(good.tar, { victim: 'manifests/app.yaml', config: CONFIG, layer: LAYER })) {
  test(`finding ${c.finding}: ${c.name} is exit 3 for both readers`, async () => {
    await refusedByBoth(c.bytes, c.refusal);
  });
}

test('finding 9: a bad checksum names the entry and the checksum field, not "out of order"', async () => {
  const { entries } = walk(good.tar);
  const victim = entries[4]!;
  assert.equal(victim.path, CONFIG);
  const tar = Buffer.from(good.tar);
  tar.write('0000001\0', victim.headerAt + 148, 'latin1');
  const message = await refusedByBoth(tar, new RegExp(`the tar header of oci/blobs/sha256/c{64} at offset ${victim.headerAt} differs in the checksum field`));
  assert.doesNotMatch(message, /out of order/);
});

test('a bundle in the old, non-canonical layout (node-tar headers) says it may come from an older airlock', async () => {
  const oldHeader = (path: string, size: number) => {
    const block = Buffer.alloc(512);
    new Header({ path, mode: 0o644, uid: 0, gid: 0, size, mtime: new Date('2026-11-24T00:00:00Z'), type: 'File', uname: '', gname: '' }).encode(block, 0);
    return block;
  };
  const file = (path: string, body: Buffer) => Buffer.concat([oldHeader(path, body.length), body, Buffer.alloc(pad512(body.length))]);
  const old = Buffer.concat([file('airlock.json', good.indexBytes), file('airlock.json.sig', good.sig), ...ENTRIES.map((e) => file(e.path, e.body)), Buffer.alloc(1024)]);
  await refusedByBoth(old, /not in the canonical layout \(written by an older airlock\?\)[^]*pack it again/);
});

test('the headers must carry the signed index\'s created time as their mtime', async () => {
  const { tar } = buildBundle(ENTRIES, key, (i) => (i.created = '2026-11-25T00:00:00Z'));
  await refusedByBoth(tar, /the tar headers' mtime \(\d+\) is not the signed index's created time/);
});

test('non-zero padding after an entry is refused, naming its offset', async () => {
  const { entries } = walk(good.tar);
  const app = entries[2]!;
  const tar = Buffer.from(good.tar);
  tar[app.dataAt + app.size] = 0x41;
  await refusedByBoth(tar, new RegExp(`non-zero byte at offset ${app.dataAt + app.size}, in the padding after manifests/app.yaml`));
});

test('long and non-ASCII paths: the writer splits or adds exact PAX records; verify accepts; GNU tar and python list the signed index', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-paths-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const paths = [
    `manifests/${'a'.repeat(60)}/${'b'.repeat(60)}/split.yaml`, // > 100 bytes: ustar prefix/name
    `manifests/${'deep/'.repeat(40)}pax.yaml`, // no split fits: PAX path
    `manifests/${'x'.repeat(120)}.yaml`, // one component over 100 bytes: PAX path
    'manifests/bücher/größe.yaml', // not ASCII: PAX path
  ];
  const files = paths.map((p, i) => {
    const body = Buffer.from(`kind: ConfigMap\n# ${i}\n`);
    const file = join(dir, `f${i}`);
    writeFileSync(file, body);
    return { path: p, size: body.length, sha256: sha256(body), file };
  });
  const out = join(dir, 'paths.tar');
  const writer = await BundleWriter.create(
    out,
    { name: 'paths', version: '1', created: new Date('2026-12-01T10:00:00.123Z'), platforms: [], images: [], charts: [], files, blobs: [], manifests: [], refs: [] },
    (b) => signBlob(b, key),
  );
  for (const f of files) await writer.writeFile(f);
  await writer.commit();
  const tar = readFileSync(out);
  assert.equal(tar.length % 10240, 0, 'ends on a whole record');
  const index = await readSequentially(tar);
  assert.equal((await verifyFile(tar)).method, 'parallel');
  const listed = ['airlock.json', 'airlock.json.sig', ...index.entries.map((e) => e.path)];
  for (const p of paths) assert.ok(listed.includes(p), p);
  assert.deepEqual(tarList(tar), listed);
  assert.deepEqual(pythonList(tar), listed);
});

test('inspect: an invalid unsigned index is exit 3 saying what is wrong; nesting, size and terminal controls are bounded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-inspect-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const withIndex = (name: string, index: string) => {
    const body = Buffer.from(index);
    const file = join(dir, name);
    writeFileSync(file, finish([tarFile('airlock.json', body), tarFile('airlock.json.sig', Buffer.from('x'))]));
    return file;
  };
  const base = JSON.parse(good.indexBytes.toString()) as Record<string, unknown>;
  const cases: [string, string, RegExp][] = [
    ['no-platforms.tar', JSON.stringify({ ...base, platforms: undefined }), /platforms must be a list of strings/],
    ['bad-platforms.tar', JSON.stringify({ ...base, platforms: 'linux/amd64' }), /platforms must be a list of strings/],
    ['bad-image.tar', JSON.stringify({ ...base, images: [{ ref: 1 }] }), /images\[0\] needs a ref/],
    ['not-json.tar', '{"airlockVersion": 1,', /not valid JSON/],
    ['deep.tar', '['.repeat(100_000) + ']'.repeat(100_000), /nested deeper than 32 levels/],
    ['many.tar', JSON.stringify({ ...base, entries: new Array(2_100_000).fill(0) }), /more than 2000000 values/],
  ];
  for (const [name, index, why] of cases) {
    const r = await airlock(['inspect', withIndex(name, index)]);
    assert.equal(r.code, 3, `${name}: ${r.stderr}`);
    assert.match(r.stderr, why, name);
    assert.doesNotMatch(r.stderr, /this is a bug|at .*\.ts:\d+/, name);
  }
  // No entries: the file is then exactly as long as its index says (inspect checks that).
  const hostile = withIndex('controls.tar', JSON.stringify({ ...base, entries: [], name: 'demo\u001b[2J\u009b31m', images: [{ ref: 'x\u001b]0;pwned\u0007', digest: `sha256:${'a'.repeat(64)}`, mediaType: 'm' }] }));
  for (const args of [[], ['--json']]) {
    const r = await airlock(['inspect', hostile, ...args]);
    assert.equal(r.code, 0, r.stderr);
    for (const c of ['\u001b', '\u0007', '\u009b']) assert.ok(!r.stdout.includes(c), 'no raw control characters reach the terminal');
    assert.match(r.stdout, /\\u001b/);
    if (args.length) assert.equal((JSON.parse(r.stdout) as { name: string }).name, 'demo\u001b[2J\u009b31m', 'the JSON stays valid and exact');
  }
  // An index at the size cap is refused by its shape before JSON.parse builds it.
  writeFileSync(join(dir, 'ok.tar'), good.tar);
  const big = await peekBundleIndex(await openBundleBytes(join(dir, 'ok.tar')), 'ok.tar');
  assert.equal(big.name, 'demo');
});

test('finding 7: the unsigned parts list cannot point elsewhere; extra volumes and data past the end are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-parts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = buildBundle([{ path: LAYER, body: randomBytes(2_500_000) }], key).tar;
  writeFileSync(join(dir, 'demo.tar'), big);
  await splitBundle(join(dir, 'demo.tar'), 1024 * 1024, dir);
  rmSync(join(dir, 'demo.tar'));
  const first = join(dir, 'demo.tar.000');
  const verify = () => airlock(['verify', first, '--key', join(dir, 'airlock.pub')]);
  writeFileSync(join(dir, 'airlock.pub'), pair.publicKeyPem);
  assert.equal((await verify()).code, 0, 'the untouched split bundle verifies');
  const list = join(dir, 'demo.tar.parts.json');
  const original = readFileSync(list, 'utf8');
  const parts = JSON.parse(original) as { bundle: string; volumes: { file: string }[] };

  for (const bundle of ['../outside/x.tar', 'other.tar']) {
    writeFileSync(list, JSON.stringify({ ...parts, bundle, volumes: parts.volumes.map((v, i) => ({ ...v, file: `${bundle}.${String(i).padStart(3, '0')}` })) }));
    const r = await verify();
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`demo.tar.parts.json names the bundle "${bundle.replace(/[./]/g, '\\$&')}", not demo.tar`));
  }
  writeFileSync(list, original);

  const extra = join(dir, `demo.tar.${String(parts.volumes.length).padStart(3, '0')}`);
  writeFileSync(extra, 'extra');
  let r = await verify();
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /is not in demo.tar.parts.json, which lists 3 volumes/);
  rmSync(extra);

  // Data past the bundle's end in the last volume, with the parts list made to agree: the layout check refuses it.
  const last = join(dir, parts.volumes.at(-1)!.file);
  appendFileSync(last, Buffer.from('trailing'));
  const again = join(dir, 'again');
  execFileSync('mkdir', [again]);
  for (const v of parts.volumes) copyFileSync(join(dir, v.file), join(again, v.file));
  writeFileSync(join(again, 'whole.tar'), Buffer.concat(parts.volumes.map((v) => readFileSync(join(again, v.file)))));
  await splitBundle(join(again, 'whole.tar'), 1024 * 1024, again);
  r = await airlock(['verify', join(again, 'whole.tar.000'), '--key', join(dir, 'airlock.pub')]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /data after the end of the bundle/);
});
