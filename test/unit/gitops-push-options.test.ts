import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLUSH, pktLine, splitPktLines } from '../../shared/git/pkt.ts';
import { parseReceivePackAdvertisement, parseReceivePackResult, receivePackRequest } from '../../loader/gitops/pushOptions.ts';
import { reviewPush } from '../../loader/gitops/reviewStyles.ts';

const ZERO = '0'.repeat(40);
const OID = 'b613326396238c58fdee7a47cba25167a7849e47';
const service = Buffer.concat([pktLine('# service=git-receive-pack\n'), FLUSH]);

test('receive-pack advertisements (git 2.39.5): refs and capabilities, an empty repository, push-options present or not', () => {
  const empty = Buffer.concat([
    service,
    pktLine(`${ZERO} capabilities^{}\0report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta push-options object-format=sha1 agent=git/2.39.5\n`),
    FLUSH,
  ]);
  const e = parseReceivePackAdvertisement(empty, 'https://git.test/x.git');
  assert.equal(e.refs.size, 0);
  assert.ok(e.capabilities.has('push-options') && e.capabilities.has('side-band-64k'));

  const one = Buffer.concat([
    service,
    pktLine(`${OID} refs/heads/dev\0report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta object-format=sha1 agent=git/2.39.5\n`),
    pktLine(`${'a'.repeat(40)} refs/tags/v1\n`),
    pktLine(`${'b'.repeat(40)} refs/tags/v1^{}\n`),
    FLUSH,
  ]);
  const o = parseReceivePackAdvertisement(one, 'https://git.test/x.git');
  assert.deepEqual([...o.refs], [['refs/heads/dev', OID], ['refs/tags/v1', 'a'.repeat(40)]]);
  assert.equal(o.capabilities.has('push-options'), false);
  assert.throws(() => parseReceivePackAdvertisement(Buffer.from('<html>'), 'https://git.test/x.git'), /not git's protocol/);
});

test('the request: command with capabilities, flush, one pkt-line per option, flush, then the pack', () => {
  const pack = Buffer.from('PACK....');
  const body = receivePackRequest({ old: ZERO, new: OID, ref: 'refs/for/prod', capabilities: ['report-status', 'push-options'], options: ['topic=t', 'title=a b'], packfile: pack });
  const head = body.subarray(0, body.length - pack.length);
  assert.deepEqual(
    splitPktLines(head).map((l) => l?.toString() ?? null),
    [`${ZERO} ${OID} refs/for/prod\0report-status push-options\n`, null, 'topic=t', 'title=a b', null],
  );
  assert.equal(body.subarray(body.length - pack.length).toString(), 'PACK....');
});

test('report-status inside side-band-64k: ok, ng with the reason, the server messages on band 2', () => {
  const band = (n: number, payload: Buffer) => pktLine(Buffer.concat([Buffer.from([n]), payload]));
  const ok = Buffer.concat([pktLine('unpack ok\n'), pktLine('ok refs/heads/airlock/promote-prod-1.1.0\n'), FLUSH]);
  const answer = Buffer.concat([band(2, Buffer.from('hook says hi\n')), band(1, ok), FLUSH]);
  const r = parseReceivePackResult(answer, true);
  assert.equal(r.unpack, 'ok');
  assert.deepEqual([...r.refs], [['refs/heads/airlock/promote-prod-1.1.0', 'ok']]);
  assert.deepEqual(r.messages, ['hook says hi']);

  const ng = Buffer.concat([pktLine('unpack ok\n'), pktLine('ng refs/for/prod pre-receive hook declined\n'), FLUSH]);
  const refused = parseReceivePackResult(Buffer.concat([band(1, ng.subarray(0, 7)), band(1, ng.subarray(7)), FLUSH]), true);
  assert.deepEqual([...refused.refs], [['refs/for/prod', 'pre-receive hook declined']]);
  assert.deepEqual([...parseReceivePackResult(ng, false).refs], [['refs/for/prod', 'pre-receive hook declined']]);
});

test('review styles: which ref, which options; no line breaks in any option', () => {
  const text = { title: 'airlock: promote harness 1.1.0 to prod', description: 'Promotes harness 1.1.0.\n\nImages: 1 changed.\n- changed x' };
  assert.deepEqual(reviewPush('branch', 'prod', '1.1.0', text), { ref: 'refs/heads/airlock/promote-prod-1.1.0', options: [] });
  assert.deepEqual(reviewPush('gitlab', 'prod', '1.1.0', text), {
    ref: 'refs/heads/airlock/promote-prod-1.1.0',
    options: [
      'merge_request.create',
      'merge_request.target=prod',
      `merge_request.title=${text.title}`,
      'merge_request.description=Promotes harness 1.1.0.\\n\\nImages: 1 changed.\\n- changed x',
      'merge_request.remove_source_branch',
    ],
  });
  assert.deepEqual(reviewPush('agit', 'prod', '1.1.0', text), {
    ref: 'refs/for/prod',
    options: ['topic=airlock-promote-prod-1.1.0', `title=${text.title}`, 'description=Promotes harness 1.1.0. | Images: 1 changed. | - changed x'],
  });
});
