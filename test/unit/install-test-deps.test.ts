import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cli.ts';

/**
 * scripts/install-test-deps.sh runs apt-get as root, so here it runs against
 * a fake system: apt-get, systemctl, invoke-rc.d, update-rc.d and init
 * scripts that record what they were asked to do. The fake apt-get plays a
 * package's maintainer script: it asks invoke-rc.d to start the package's
 * service, and invoke-rc.d consults policy-rc.d exactly as the real one does.
 */

const SCRIPT_TOOLS = ['bash', 'cat', 'chmod', 'dirname', 'grep', 'mkdir', 'mv', 'rm', 'sort', 'touch'];
// Every command the script looks for except the three whose packages start services.
const PRESENT = ['skopeo', 'htpasswd', 'openssl', 'curl', 'git', 'fcgiwrap', 'unzip', 'tinyproxy'];

function script(name: string, body: string, dir: string): void {
  writeFileSync(join(dir, name), `#!/bin/bash\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

function fakeSystem(t: { after: (fn: () => void) => void }, options: { systemd: boolean; policy?: string }) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-deps-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  const bin = join(dir, 'bin');
  const log = join(dir, 'log');
  for (const d of [root, bin, join(dir, 'scripts'), join(root, 'usr/sbin'), join(root, 'etc/init.d')]) mkdirSync(d, { recursive: true });
  if (options.systemd) mkdirSync(join(root, 'run/systemd/system'), { recursive: true });
  if (options.policy !== undefined) writeFileSync(join(root, 'usr/sbin/policy-rc.d'), options.policy, { mode: 0o755 });
  copyFileSync(join(REPO_ROOT, 'scripts/install-test-deps.sh'), join(dir, 'scripts/install-test-deps.sh'));
  script('install-helm.sh', 'exit 0', join(dir, 'scripts'));

  for (const tool of SCRIPT_TOOLS) symlinkSync(execFileSync('bash', ['-c', `command -v ${tool}`]).toString().trim(), join(bin, tool));
  for (const cmd of PRESENT) script(cmd, 'exit 0', bin);
  script('id', 'echo 0', bin);
  script('systemctl', `echo "systemctl $*" >>${log}`, bin);
  script('update-rc.d', `echo "update-rc.d $*" >>${log}`, bin);
  script('invoke-rc.d', `"${root}/usr/sbin/policy-rc.d" "$1" "$2"; rc=$?\nif [ $rc = 101 ]; then echo "refused $1 $2" >>${log}; else echo "did $1 $2" >>${log}; fi`, bin);
  // The fake apt-get: each package's postinst asks invoke-rc.d to start its service, then its command exists.
  script(
    'apt-get',
    [
      `[ "$1" = update ] && exit 0`,
      `for p in "$@"; do case "$p" in`,
      `  nginx) invoke-rc.d nginx start; touch ${bin}/nginx;;`,
      `  openssh-server) invoke-rc.d ssh start; touch ${bin}/sshd;;`,
      `  docker-registry) invoke-rc.d docker-registry start; touch ${bin}/docker-registry;;`,
      `esac; done`,
      `chmod 755 ${bin}/*`,
    ].join('\n'),
    bin,
  );
  // An init script whose daemon runs (as if started by hand before the policy was there).
  script('nginx', `echo "init.d nginx $1" >>${log}; exit 0`, join(root, 'etc/init.d'));

  const run = () =>
    spawnSync(join(bin, 'bash'), [join(dir, 'scripts/install-test-deps.sh')], {
      env: { PATH: bin, AIRLOCK_DEPS_ROOT: root, HOME: dir },
      encoding: 'utf8',
    });
  const logged = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  return { root, run, logged };
}

test('install-test-deps: with systemd, no service starts during the install and each is disabled and stopped after', (t) => {
  const sys = fakeSystem(t, { systemd: true });
  const r = sys.run();
  assert.equal(r.status, 0, r.stderr);
  const log = sys.logged();
  assert.match(log, /refused nginx start/);
  assert.match(log, /refused ssh start/);
  assert.match(log, /refused docker-registry start/);
  assert.doesNotMatch(log, /did /, 'policy-rc.d let a service start');
  for (const unit of ['nginx.service', 'ssh.socket', 'ssh.service', 'docker-registry.service']) {
    assert.match(log, new RegExp(`systemctl disable --now ${unit.replace('.', '\\.')}`));
  }
  assert.doesNotMatch(log, /tinyproxy|fcgiwrap/, 'services of packages installed before are left alone');
  assert.equal(existsSync(join(sys.root, 'usr/sbin/policy-rc.d')), false, 'the policy is removed after the install');
  assert.match(r.stderr, /left these services stopped and disabled/);
});

test('install-test-deps: without systemd, the SysV links are disabled, a running daemon is stopped, and an existing policy-rc.d is put back', (t) => {
  const mine = '#!/bin/sh\n# the admin\'s own policy\nexit 0\n';
  const sys = fakeSystem(t, { systemd: false, policy: mine });
  const r = sys.run();
  assert.equal(r.status, 0, r.stderr);
  const log = sys.logged();
  assert.match(log, /refused nginx start/, 'the install ran under airlock\'s policy, not the one that allows starts');
  assert.doesNotMatch(log, /did /);
  assert.doesNotMatch(log, /--now/, 'no runtime systemctl call without systemd');
  assert.match(log, /systemctl disable nginx\.service/);
  assert.match(log, /update-rc\.d nginx disable/);
  assert.match(log, /init\.d nginx status\ninit\.d nginx stop/);
  assert.equal(readFileSync(join(sys.root, 'usr/sbin/policy-rc.d'), 'utf8'), mine);
});
