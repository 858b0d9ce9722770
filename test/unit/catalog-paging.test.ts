import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNextLink } from '../../shared/registry/catalog.ts';
import { parseLoadReport } from '../../loader/gitops/loadedImages.ts';
import { UsageError } from '../../shared/cli/errors.ts';

const base = new URL('https://registry.enclave:5000/v2/_catalog?n=2');

test('parseNextLink: the rel="next" link of a Link header, resolved against the page URL', () => {
  const cases: [string | undefined, string | undefined][] = [
    // distribution's own form
    ['</v2/_catalog?last=apps%2Fb&n=2>; rel="next"', 'https://registry.enclave:5000/v2/_catalog?last=apps%2Fb&n=2'],
    // bare rel value, odd spacing, upper-case parameter name
    ['</v2/_catalog?last=x&n=2> ;REL=next', 'https://registry.enclave:5000/v2/_catalog?last=x&n=2'],
    // several links: the next one is not the first
    ['</v2/_catalog?n=2>; rel="first", </v2/_catalog?last=c&n=2>; rel="next"', 'https://registry.enclave:5000/v2/_catalog?last=c&n=2'],
    // a rel list, other parameters with commas inside quotes
    ['</v2/_catalog?last=d&n=2>; title="a, b"; rel="next last"', 'https://registry.enclave:5000/v2/_catalog?last=d&n=2'],
    // an absolute URL
    ['<https://registry.enclave:5000/v2/_catalog?last=e&n=2>; rel="next"', 'https://registry.enclave:5000/v2/_catalog?last=e&n=2'],
    // relative to the page (no leading slash)
    ['<_catalog?last=f>; rel="next"', 'https://registry.enclave:5000/v2/_catalog?last=f'],
    // no next
    ['</v2/_catalog?n=2>; rel="prev"', undefined],
    ['', undefined],
    [undefined, undefined],
    // "nextish" is not "next"
    ['</v2/_catalog?last=g>; rel="nextpage"', undefined],
  ];
  for (const [header, want] of cases) assert.equal(parseNextLink(header, base)?.href, want, String(header));
});

test('parseLoadReport: targets by tag and by digest, with host and repository; malformed reports are exit 2', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const report = {
    registry: 'reg.enclave:5000/apps',
    images: [
      { source: 'nginx:1.27', target: 'reg.enclave:5000/apps/library/nginx:1.27', digest },
      { source: 'quay.io/x/y@' + digest, target: `reg.enclave:5000/apps/x/y@${digest}`, digest },
    ],
    charts: [{ source: 'charts/web:1.0.0', target: 'reg.enclave:5000/apps/charts/web:1.0.0', digest }],
  };
  assert.deepEqual(parseLoadReport(JSON.stringify(report), 'r').items, [
    { source: 'nginx:1.27', host: 'reg.enclave:5000', repository: 'apps/library/nginx', tag: '1.27', digest },
    { source: 'quay.io/x/y@' + digest, host: 'reg.enclave:5000', repository: 'apps/x/y', digest },
    { source: 'charts/web:1.0.0', host: 'reg.enclave:5000', repository: 'apps/charts/web', tag: '1.0.0', digest },
  ]);
  for (const bad of ['{', '{"images":[]}', JSON.stringify({ ...report, images: [{ source: 'a', target: 'nohost', digest }] }), JSON.stringify({ ...report, images: {} })]) {
    assert.throws(() => parseLoadReport(bad, 'r'), UsageError, bad);
  }
});
