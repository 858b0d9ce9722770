import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLUSH, pktLine, splitPktLines } from '../../shared/git/pkt.ts';
import { withHeadSymref } from '../../loader/gitops/unbornHead.ts';

const OID = 'b613326396238c58fdee7a47cba25167a7849e47';
const OID2 = 'a'.repeat(40);
const CAPS = 'multi_ack thin-pack side-band side-band-64k ofs-delta shallow no-done object-format=sha1 agent=git/2.39.5';
/** As git-http-backend sends it: the service line, a flush, the refs, a flush. */
const advertise = (...refs: string[]) => Buffer.concat([pktLine('# service=git-upload-pack\n'), FLUSH, ...refs.map((r) => pktLine(r)), FLUSH]);

test('pkt-lines: lengths include the four hex digits; flushes; malformed input is refused', () => {
  assert.equal(pktLine('a\n').toString(), '0006a\n');
  assert.deepEqual(
    splitPktLines(Buffer.from('0006a\n00000009done\n')).map((l) => l?.toString() ?? null),
    ['a\n', null, 'done\n'],
  );
  assert.throws(() => splitPktLines(Buffer.from('zzzz')), /not a pkt-line/);
  assert.throws(() => splitPktLines(Buffer.from('0010abc')), /runs past the end/);
});

test('an advertisement without HEAD (HEAD names a branch that does not exist) gets symref=HEAD:<the fetched ref>', () => {
  // git upload-pack of a bare repository with HEAD -> master and only dev pushed (git 2.39.5)
  const ad = advertise(`${OID} refs/heads/dev\0${CAPS}\n`, `${OID2} refs/heads/other\n`);
  const out = splitPktLines(withHeadSymref(ad, 'refs/heads/dev')).map((l) => l?.toString() ?? null);
  assert.deepEqual(out, ['# service=git-upload-pack\n', null, `${OID} refs/heads/dev\0${CAPS} symref=HEAD:refs/heads/dev\n`, `${OID2} refs/heads/other\n`, null]);
});

test('advertisements with a HEAD, with no refs, in protocol v2, or not pkt-lines pass through unchanged', () => {
  const cases = [
    advertise(`${OID} HEAD\0${CAPS} symref=HEAD:refs/heads/main\n`, `${OID} refs/heads/main\n`),
    advertise(`${OID} HEAD\0${CAPS}\n`, `${OID} refs/heads/main\n`),
    advertise(`${OID} refs/heads/dev\0${CAPS} symref=HEAD:refs/heads/dev\n`),
    advertise(`${'0'.repeat(40)} capabilities^{}\0${CAPS}\n`),
    Buffer.concat([pktLine('# service=git-upload-pack\n'), FLUSH, FLUSH]),
    Buffer.concat([pktLine('# service=git-upload-pack\n'), FLUSH, pktLine('version 2\n'), pktLine('ls-refs=unborn\n'), FLUSH]),
    Buffer.from('<html>sign in</html>'),
  ];
  for (const ad of cases) assert.equal(withHeadSymref(ad, 'refs/heads/dev').toString('latin1'), ad.toString('latin1'));
});
