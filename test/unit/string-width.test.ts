import { test } from 'node:test';
import assert from 'node:assert/strict';
import realStringWidth from 'string-width';
import stringWidth from '../../shared/cli/string-width.ts';

/** The one-file builds measure yargs's help with shared/cli/string-width.ts: it must agree with string-width on what help text holds. */
const SAMPLES = [
  '',
  'airlock verify <bundle>',
  '  --key  Public key (airlock.pub)  [string] [required]',
  '\u001b[31mred\u001b[39m and plain',
  '\u001b]8;;https://example.com\u0007link\u001b]8;;\u0007',
  'caf\u00e9 na\u00efve \u2014 r\u00e9sum\u00e9 \u2026',
  'e\u0301 combining',
  '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8',
  '\ud55c\uad6d\uc5b4',
  'ＡＢＣ fullwidth',
  'emoji \ud83d\ude80 and \ud83d\udc4d\ud83c\udffd',
  'zero\u200bwidth',
  'tab\there',
];

for (const sample of SAMPLES) {
  test(`width of ${JSON.stringify(sample)} is string-width's`, () => {
    assert.equal(stringWidth(sample), realStringWidth(sample));
  });
}
