import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartConfigJson } from '../../packer/sources/charts/artifact.ts';
import { parseChartLock, parseChartYaml } from '../../packer/sources/charts/metadata.ts';
import { highestMatch, isExactVersion, parseConstraint } from '../../packer/sources/charts/version.ts';
import { chartVersionToTag, tagToChartVersion } from '../../shared/oci/helm.ts';
import { ExitCode, type AirlockError } from '../../shared/cli/errors.ts';

const HARNESS = fileURLToPath(new URL('../../../shared/fixtures/harness/chart/harness', import.meta.url));

describe('chart version constraints, as Helm takes them', () => {
  const versions = ['0.5.1', '0.5.9', '0.6.0', '1.0.0', '1.2.0', '1.2.5', '1.3.0-rc.1', '1.3.0', '1.9.9', '2.0.0', '2.1.0-beta', 'v2.2.0'];
  const cases: [string, string | undefined][] = [
    ['1.2.5', '1.2.5'],
    ['=1.2.5', '1.2.5'],
    ['v1.2.0', '1.2.0'],
    ['2.2.0', 'v2.2.0'],
    ['>=1.2 <2', '1.9.9'],
    ['>=1.2, <2', '1.9.9'],
    ['>= 1.2, < 2', '1.9.9'],
    ['^1.2', '1.9.9'],
    ['^0.5', '0.5.9'],
    ['~1.2', '1.2.5'],
    ['~0.5.1', '0.5.9'],
    ['1.2.x', '1.2.5'],
    ['1.x.x', '1.9.9'],
    ['1.2', '1.2.5'],
    ['*', 'v2.2.0'],
    ['', 'v2.2.0'],
    ['1.2 - 1.3', '1.3.0'],
    ['!=1.9.9, >=1.2 <2', '1.3.0'],
    ['<1.0.0 || >=2.0.0 <2.1', '2.0.0'],
    ['>=3', undefined],
    // Prereleases only when the constraint names one.
    ['>=1.3.0-0 <1.3.0', '1.3.0-rc.1'],
    ['>=2.1.0-alpha <2.2', '2.1.0-beta'],
    ['~2.1', undefined],
  ];
  for (const [constraint, want] of cases) {
    test(`${JSON.stringify(constraint)} -> ${want ?? 'none'}`, () => {
      assert.equal(highestMatch(versions, parseConstraint(constraint, 't')), want);
    });
  }

  test('a constraint that is none is a usage error naming where it came from', () => {
    assert.throws(
      () => parseConstraint('>=banana', 'charts[0]'),
      (err: AirlockError) => err.exitCode === ExitCode.Usage && /charts\[0\].*banana/.test(err.message),
    );
  });

  test('exact versions and OCI tags', () => {
    assert.ok(isExactVersion('1.0.32'));
    assert.ok(isExactVersion('1.0.0+build.7'));
    assert.ok(!isExactVersion('1.2'));
    assert.ok(!isExactVersion('^1.2.0'));
    assert.equal(chartVersionToTag('1.0.0+build.7'), '1.0.0_build.7');
    assert.equal(tagToChartVersion('1.0.0_build.7'), '1.0.0+build.7');
  });
});

describe('Chart.yaml and Chart.lock of the real Harness charts', () => {
  const modules = readdirSync(join(HARNESS, 'charts')).sort();

  test('the umbrella: 14 dependencies from https repositories, harness-common locked to 1.9.5', () => {
    const meta = parseChartYaml(readFileSync(join(HARNESS, 'Chart.yaml'), 'utf8'), 'Chart.yaml');
    const lock = parseChartLock(readFileSync(join(HARNESS, 'Chart.lock'), 'utf8'), 'Chart.lock');
    assert.equal(meta.name, 'harness');
    assert.equal(meta.version, '0.44.1');
    assert.equal(meta.dependencies.length, 14);
    assert.ok(meta.dependencies.every((d) => d.repository.startsWith('https://harness.github.io/')));
    assert.deepEqual(meta.dependencies[0], { name: 'harness-common', version: '1.x.x', repository: 'https://harness.github.io/helm-common' });
    assert.equal(lock.dependencies.find((d) => d.name === 'harness-common')?.version, '1.9.5');
    // The lock's version satisfies the range it was locked from.
    assert.equal(highestMatch(['1.9.5'], parseConstraint('1.x.x', 't')), '1.9.5');
  });

  test('13 module charts whose service subcharts come from oci://, locked to the same versions', () => {
    assert.equal(modules.length, 13);
    let oci = 0;
    for (const m of modules) {
      const meta = parseChartYaml(readFileSync(join(HARNESS, 'charts', m, 'Chart.yaml'), 'utf8'), `${m}/Chart.yaml`);
      const lock = parseChartLock(readFileSync(join(HARNESS, 'charts', m, 'Chart.lock'), 'utf8'), `${m}/Chart.lock`);
      assert.equal(meta.name, m);
      for (const d of meta.dependencies) {
        assert.match(d.repository, /^oci:\/\/us-west1-docker\.pkg\.dev\/gcr-prod\/harness-helm-artifacts$/);
        const locked = lock.dependencies.find((l) => l.name === d.name);
        assert.ok(locked, `${m}: ${d.name} is locked`);
        assert.equal(highestMatch([locked.version], parseConstraint(d.version, d.name)), locked.version);
        oci += 1;
      }
    }
    assert.equal(oci, 66);
  });

  test('aliases are kept, and two dependencies under one name are refused', () => {
    const meta = parseChartYaml('apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies:\n- {name: db, version: ^1, repository: "oci://r.example/x", alias: primary}\n- {name: db, version: ^1, repository: "@stable", alias: replica}\n', 'Chart.yaml');
    assert.deepEqual(
      meta.dependencies.map((d) => [d.name, d.alias, d.repository]),
      [
        ['db', 'primary', 'oci://r.example/x'],
        ['db', 'replica', '@stable'],
      ],
    );
    assert.throws(() => parseChartYaml('name: a\nversion: 1.0.0\ndependencies: [{name: db}, {name: db}]\n', 'Chart.yaml'), /more than one dependency named "db"/);
    assert.throws(() => parseChartYaml('name: ../a\nversion: 1.0.0\n', 'Chart.yaml'), (err: AirlockError) => err.exitCode === ExitCode.Verification);
  });
});

describe('the OCI config blob, as Helm marshals chart.Metadata', () => {
  test('struct field order, empty fields left out, map keys sorted, Go escaping', () => {
    const raw = parseChartYaml(
      [
        'type: application',
        'kubeVersion: ">=1.27.0-0"',
        'annotations: {zeta: "1", alpha: "a & b"}',
        'version: 1.0.0',
        'name: demo',
        'apiVersion: v2',
        'description: "two\\tlines\\nhere"',
        'home: ""',
        'maintainers: [{email: a@example.com, name: A}]',
        'dependencies: [{name: db, repository: "", version: 1.x, alias: d}]',
        'unknownField: dropped',
      ].join('\n'),
      'Chart.yaml',
    ).raw;
    assert.equal(
      chartConfigJson(raw).toString(),
      '{"name":"demo","version":"1.0.0","description":"two lines here","maintainers":[{"name":"A","email":"a@example.com"}],"apiVersion":"v2",' +
        '"annotations":{"alpha":"a \\u0026 b","zeta":"1"},"kubeVersion":"\\u003e=1.27.0-0","dependencies":[{"name":"db","version":"1.x","repository":"","alias":"d"}],"type":"application"}',
    );
  });
});
