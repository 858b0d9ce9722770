import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: root, env: { ...process.env, AIRLOCK_DEBUG: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The real CLI, as a child process. */
const airlock = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'airlock.ts', ...args]);

const COMMANDS = ['keygen', 'pack', 'verify', 'inspect', 'load', 'promote', 'upload', 'download', 'inventory', 'split'];

test('--help lists every command', async () => {
  const r = await airlock('--help');
  assert.equal(r.code, 0, r.stderr);
  for (const cmd of COMMANDS) assert.match(r.stdout, new RegExp(`^\\s+airlock ${cmd}\\b`, 'm'), cmd);
});

test('--version prints the package version', async () => {
  const r = await airlock('--version');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('--json: the error is one JSON line on stdout', async () => {
  const r = await airlock('inventory', '--registry', 'https://r.example', '-o', 'inv.json', '--json');
  assert.equal(r.code, 2);
  const { ts, ...line } = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  assert.match(String(ts), /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual(line, {
    event: 'error',
    exitCode: 2,
    message: '--registry https://r.example: give HOST[:PORT][/PREFIX] without a scheme',
    hint: 'HTTPS is the default; add --plain-http for plain HTTP',
  });
  assert.equal(r.stderr, '');
});

test('usage errors exit 2: unknown command, unknown flag, missing argument, no command', async () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['pack', '-o', 'b.tar', '--key', 'k', '--no-such-flag'], /unknown option --no-such-flag/],
    [['verify', 'b.tar', '--key', 'k', '--password', 'x'], /unknown option --password\n/],
    [['verify', 'b.tar'], /missing required option --key\n/],
    [['pack', '-o', 'b.tar', '--key', 'k', '--jobs', '0'], /--jobs must be a positive integer/],
    [['load', 'b.tar', '--key', 'k', '--registry', 'r', '--registry-username', 'u'], /go together/],
    [['promote', '--git', 'https://git.example/a.git', '--to', 'prod', '--env-registry-username', 'u'], /--env-registry-username goes with --env-registry/],
    [['promote', '--git', 'https://git.example/a.git', '--to', 'prod', '--env-registry', 'r', '--env-registry-username', 'u'], /--env-registry-username and --env-registry-password-env go together/],
    [['promote', '--git', 'https://git.example/a.git', '--to', 'prod', '--env-registry', 'https://r'], /--env-registry https:\/\/r: give HOST\[:PORT\]\[\/PREFIX\] without a scheme/],
    [[], /no command given/],
  ];
  for (const [args, message] of cases) {
    const r = await airlock(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.match(r.stderr, /^ {2}hint: /m);
  }
});

test('npm run -s airlock -- --help works from the repo root', async () => {
  const r = await run('npm', ['run', '-s', 'airlock', '--', '--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /airlock pack/);
});

/** A throwaway CLI built on runCli, to exercise the error and signal paths. */
function fixtureCli(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const main = pathToFileURL(join(root, 'shared/cli/main.ts')).href;
  const errors = pathToFileURL(join(root, 'shared/cli/errors.ts')).href;
  const file = join(dir, 'fixture.mts'); // .mts: no package.json with "type": "module" up there
  writeFileSync(
    file,
    `import { runCli, onShutdown } from ${JSON.stringify(main)};
import { VerificationError } from ${JSON.stringify(errors)};
await runCli(process.argv.slice(2), (y) =>
  y
    .command('bug', '', (b) => b.option('json', { type: 'boolean' }), () => {
      throw new TypeError('x is undefined (https://bot:hunter2@git.example/r.git)');
    })
    .command('verify', '', (b) => b, () => {
      throw new VerificationError('digest mismatch', { hint: 'download it again' });
    })
    .command('wait', '', (b) => b, async () => {
      onShutdown(async () => {
        await new Promise((r) => setTimeout(r, 50));
        process.stderr.write('cleaned up\\n');
      });
      process.stderr.write('ready\\n');
      await new Promise((r) => setTimeout(r, 60_000));
    }),
);
`,
  );
  return file;
}

test('errors map to exit codes; internal errors are bugs, stack only with AIRLOCK_DEBUG', async (t) => {
  const file = fixtureCli(t);
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, ['--import', 'tsx', file, ...args], env);

  let r = await cli(['verify']);
  assert.equal(r.code, 3);
  assert.equal(r.stderr, 'airlock: error: digest mismatch\n  hint: download it again\n');

  r = await cli(['bug']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^airlock: error: x is undefined \(https:\/\/bot:\*\*\*@git\.example\/r\.git\)$/m);
  assert.match(r.stderr, /this is a bug in airlock/);
  assert.doesNotMatch(r.stderr, /hunter2|\n\s+at /);

  r = await cli(['bug'], { AIRLOCK_DEBUG: '1' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^TypeError: x is undefined/m);
  assert.match(r.stderr, /\n\s+at /);
  assert.doesNotMatch(r.stderr, /hunter2/);

  r = await cli(['bug', '--json']);
  assert.equal(r.code, 1);
  const line = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  assert.equal(line.event, 'error');
  assert.equal(line.exitCode, 1);
  assert.match(String(line.hint), /bug in airlock/);
});

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`${signal}: shutdown hooks run, then exit ${code}`, async (t) => {
    const file = fixtureCli(t);
    const child = spawn(process.execPath, ['--import', 'tsx', file, 'wait'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (stderr.includes('ready')) resolve();
      });
      void exited.then((c) => reject(new Error(`exited ${c} before it was ready: ${stderr}`)));
    });
    child.kill(signal);
    assert.equal(await exited, code);
    assert.equal(stderr, `ready\nairlock: ${signal === 'SIGINT' ? 'interrupted' : 'terminated'}\ncleaned up\n`);
  });
}
