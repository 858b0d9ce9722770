/**
 * The display width of a string, in terminal columns: what yargs's help
 * layout asks string-width for. The one-file builds use this module in its
 * place (scripts/build.ts, esbuild `alias`): string-width builds an
 * Intl.Segmenter and Unicode property regexes when it is loaded, about 0.05 s
 * of CPU on every start (verify's and --version's too) for help text that is
 * rarely shown. Here printable ASCII is measured directly, and the segmenter
 * and the regexes are made on first use for anything else: a grapheme of
 * controls, marks or invisible formatting is 0 columns, an East Asian wide
 * one or an emoji 2, any other 1. ANSI escape sequences count nothing.
 */
// eslint-disable-next-line no-control-regex -- matching escape sequences is the point
const ESCAPES = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

let unicode: { segmenter: Intl.Segmenter; invisible: RegExp; wide: RegExp } | undefined;

function unicodeRules(): NonNullable<typeof unicode> {
  unicode ??= {
    segmenter: new Intl.Segmenter(),
    invisible: /^[\p{Default_Ignorable_Code_Point}\p{Control}\p{Format}\p{Nonspacing_Mark}\p{Enclosing_Mark}\p{Surrogate}]+$/u,
    wide: new RegExp(
      '[\\p{Extended_Pictographic}\\u{1100}-\\u{115f}\\u{2e80}-\\u{303e}\\u{3041}-\\u{33ff}\\u{3400}-\\u{4dbf}\\u{4e00}-\\u{9fff}\\u{a000}-\\u{a4cf}' +
        '\\u{ac00}-\\u{d7a3}\\u{f900}-\\u{faff}\\u{fe30}-\\u{fe4f}\\u{ff00}-\\u{ff60}\\u{ffe0}-\\u{ffe6}\\u{1f300}-\\u{1f64f}\\u{1f900}-\\u{1f9ff}\\u{20000}-\\u{3fffd}]',
      'u',
    ),
  };
  return unicode;
}

export default function stringWidth(text: string): number {
  if (typeof text !== 'string' || text.length === 0) return 0;
  const plain = text.includes('\u001b') ? text.replace(ESCAPES, '') : text;
  if (PRINTABLE_ASCII.test(plain)) return plain.length;
  const { segmenter, invisible, wide } = unicodeRules();
  let width = 0;
  for (const { segment } of segmenter.segment(plain)) {
    if (invisible.test(segment)) continue;
    width += wide.test(segment) ? 2 : 1;
  }
  return width;
}
