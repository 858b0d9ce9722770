/**
 * CLI plumbing shared by the airlock entry point and the one-file enclave
 * loader: run a yargs CLI, map every failure to the exit codes of DESIGN.md
 * section 4, print errors (human or --json), clean up on SIGINT/SIGTERM.
 * Also the option groups several commands share (network, registry auth,
 * git auth, --json), so both sides declare them identically.
 */
import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { AirlockError, ExitCode, UsageError } from './errors.ts';
import { debugEnabled, redact } from './log.ts';
import { jsonLine } from './output.ts';
import { DEFAULT_NETWORK_TIMEOUT_SECONDS, setNetworkTimeoutSeconds } from '../net/timeout.ts';
import type { RegistryAccess, RegistryFlags } from '../registry/access.ts';

// ---------------------------------------------------------------- shutdown

export type ShutdownHook = () => void | Promise<void>;

const shutdownHooks = new Set<ShutdownHook>();
let shuttingDown = false;
let signalsInstalled = false;
/** How long cleanup may take after a signal before airlock exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * Register cleanup (remove a temp file, abort an upload) to run when the user
 * interrupts airlock. Hooks run newest first, then airlock exits 130 (SIGINT)
 * or 143 (SIGTERM). Returns a function that unregisters the hook: call it once
 * the resource is gone. A second signal exits at once.
 */
export function onShutdown(fn: ShutdownHook): () => void {
  shutdownHooks.add(fn);
  return () => {
    shutdownHooks.delete(fn);
  };
}

/** Run every registered hook, newest first; errors are reported, not thrown. */
export async function runShutdownHooks(): Promise<void> {
  const hooks = [...shutdownHooks].reverse();
  shutdownHooks.clear();
  for (const hook of hooks) {
    try {
      await hook();
    } catch (err) {
      process.stderr.write(`airlock: warning: cleanup failed: ${redact(errorMessage(err))}\n`);
    }
  }
}

/** --json of the running command: an interruption is then reported as its one "error" line. */
let jsonOutput = false;

/** Whether SIGINT or SIGTERM arrived: the command's own failure that follows (a closed file, an aborted request) is not reported. */
export function isShuttingDown(): boolean {
  return shuttingDown;
}

/** One line: "airlock: interrupted" on stderr (clearing ^C and any status line on a terminal), or the JSON error line. */
function reportInterruption(what: 'interrupted' | 'terminated', code: number): void {
  if (jsonOutput) {
    process.stdout.write(jsonLine('error', { exitCode: code, message: what }));
    return;
  }
  const clearLine = (process.stderr as { isTTY?: boolean }).isTTY ? '\r\x1b[K' : '';
  process.stderr.write(`${clearLine}airlock: ${what}\n`);
}

export function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const handle = (signal: NodeJS.Signals, code: number): void => {
    if (shuttingDown) {
      process.exit(code);
    }
    shuttingDown = true;
    process.exitCode = code;
    reportInterruption(signal === 'SIGINT' ? 'interrupted' : 'terminated', code);
    const timer = setTimeout(() => process.exit(code), SHUTDOWN_GRACE_MS);
    timer.unref();
    void runShutdownHooks().finally(() => {
      process.exitCode = code;
      void flush(process.stderr).then(() => process.exit(code));
    });
  };
  process.on('SIGINT', () => handle('SIGINT', 130));
  process.on('SIGTERM', () => handle('SIGTERM', 143));
}

// ---------------------------------------------------------------- running

export interface RunOptions {
  /**
   * After the command finished and output is flushed, exit even if a stray
   * handle (a socket, a timer) would keep the process alive this many ms more.
   * 0 disables. Default 3000.
   */
  forceExitAfterMs?: number;
  /** Install the SIGINT/SIGTERM handlers (default true). */
  handleSignals?: boolean;
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** --json anywhere before "--" (also when parsing failed and there is no parsed argv). */
export function wantsJson(argv: readonly string[]): boolean {
  let json = false;
  for (const a of argv) {
    if (a === '--') break;
    if (a === '--json' || a === '--json=true') json = true;
    else if (a === '--no-json' || a === '--json=false') json = false;
  }
  return json;
}

function commandName(argv: readonly string[]): string | undefined {
  return argv.find((a) => !a.startsWith('-'));
}

function flush(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const s = stream as NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean };
    if (s.destroyed || s.writableEnded) return resolve();
    try {
      stream.write('', () => resolve());
    } catch {
      resolve();
    }
  });
}

/** A yargs validation failure (unknown flag, missing argument...), turned into a UsageError. */
class YargsUsageError extends UsageError {
  constructor(
    message: string,
    /** The failing command's usage line ("$0 verify <bundle>"), when yargs says. */
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** The usage line of the command yargs failed in (its usage instance is the fail handler's third argument). */
function usageLineOf(usage: unknown): string | undefined {
  try {
    const line = (usage as { getUsage?: () => [string, string][] } | undefined)?.getUsage?.()?.[0]?.[0];
    return typeof line === 'string' ? line.replace(/^\$0\s*/, 'airlock ') : undefined;
  } catch {
    return undefined;
  }
}

export interface ErrorReport {
  exitCode: number;
  message: string;
  hint?: string;
  stack?: string;
}

/** What to tell the user about an error that reached the top. */
export function describeError(err: unknown, argv: readonly string[] = [], debug = debugEnabled()): ErrorReport {
  if (err instanceof AirlockError) {
    let message = err.message;
    let hint = err.hint;
    if (err instanceof YargsUsageError) {
      ({ message, hint } = explainUsageError(message, commandName(argv), argv, err.usage));
    }
    const report: ErrorReport = { exitCode: err.exitCode, message: redact(message) };
    if (hint !== undefined) report.hint = redact(hint);
    if (debug && err.stack && !(err instanceof YargsUsageError)) report.stack = redact(stackWithCauses(err));
    return report;
  }
  const report: ErrorReport = {
    exitCode: ExitCode.Internal,
    message: redact(errorMessage(err)),
    hint: debug
      ? 'this is a bug in airlock: please report it with the stack trace above'
      : 'this is a bug in airlock: rerun with AIRLOCK_DEBUG=1 for the stack trace and report it',
  };
  if (debug) report.stack = redact(err instanceof Error ? stackWithCauses(err) : String(err));
  return report;
}

/** yargs' validation messages, made one line, said in airlock's words and given a hint that fits. */
function explainUsageError(msg: string, cmd: string | undefined, argv: readonly string[], usage: string | undefined): { message: string; hint: string } {
  const message = msg.replace(/:?\s*\n\s*/g, ': ').trim();
  const topHelp = "run 'airlock --help' for the commands";
  if (cmd !== undefined && /^Did you mean /.test(message)) {
    return { message: `unknown command '${cmd}'`, hint: `${message.replace(/^Did/, 'did')} (${topHelp})` };
  }
  if (cmd !== undefined && message === `Unknown argument: ${cmd}`) {
    return { message: `unknown command '${cmd}'`, hint: topHelp };
  }
  if (cmd === undefined) return { message, hint: topHelp };
  return { message: sayUsageProblem(message, argv, usage), hint: `run 'airlock ${cmd} --help' for usage` };
}

/**
 * yargs' own wording ("Unknown arguments: bogus-flag, bogusFlag", "Not enough
 * non-option arguments: got 0, need at least 1") as a user reads it: each
 * unknown option once, as typed; a missing argument by name, with the usage.
 */
function sayUsageProblem(message: string, argv: readonly string[], usage: string | undefined): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  if (unknown) return unknownArguments(unknown[1]!.split(', '), argv);
  const missingOptions = /^Missing required arguments?: (.*)$/.exec(message);
  const positionals = [...(usage ?? '').matchAll(/<([^>.]+)(?:\.\.)?>/g)].map((m) => m[1]!);
  if (missingOptions) {
    const names = missingOptions[1]!.split(', ');
    const missingPositionals = names.filter((n) => positionals.includes(n));
    if (missingPositionals.length > 0) return missingArguments(missingPositionals, usage!);
    return `missing required option${names.length === 1 ? '' : 's'} ${names.map((n) => `--${n}`).join(', ')}`;
  }
  const tooFew = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(message);
  if (tooFew && usage !== undefined && positionals.length > 0) {
    return missingArguments(positionals.slice(Number(tooFew[1]), Number(tooFew[2])), usage);
  }
  return message;
}

function missingArguments(names: string[], usage: string): string {
  const what = names.map((n) => (/bundle$/i.test(n) ? `the ${n} path (the bundle file, or the .000 volume of a split bundle)` : `<${n}>`));
  return `missing ${what.join(' and ')}: ${usage}`;
}

/**
 * yargs reports missing required options before unknown ones; a mistyped
 * option is the likelier cause of both (`pack --bogus-flag`), so it is said first.
 */
function unknownOptionsFirst(err: unknown, cli: Argv | undefined, argv: readonly string[]): unknown {
  if (!(err instanceof YargsUsageError) || cli === undefined || !/^Missing required argument/.test(err.message)) return err;
  let known: Set<string>;
  try {
    const options = (cli as unknown as { getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]> } }).getOptions();
    known = new Set([...Object.keys(options.key), ...Object.values(options.alias).flat()]);
  } catch {
    return err;
  }
  const camel = (n: string) => n.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  const isKnown = (n: string) => known.has(n) || known.has(camel(n)) || (n.startsWith('no-') && known.has(n.slice(3)));
  const unknown: string[] = [];
  for (const a of argv) {
    if (a === '--') break;
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0]!;
      if (!isKnown(name)) unknown.push(name);
    } else if (/^-[A-Za-z]+$/.test(a)) {
      for (const letter of a.slice(1)) if (!isKnown(letter)) unknown.push(letter);
    }
  }
  return unknown.length > 0 ? new YargsUsageError(`Unknown arguments: ${unknown.join(', ')}`, err.usage) : err;
}

/** Each unknown option once, as the user typed it (yargs also lists its camelCase form). */
function unknownArguments(names: string[], argv: readonly string[]): string {
  // What yargs names ("such-flag") -> what was typed ("--no-such-flag").
  const typed = new Map<string, string>();
  for (const a of argv) {
    if (a === '--') break;
    if (/^-[A-Za-z]+$/.test(a)) for (const letter of a.slice(1)) typed.set(letter, `-${letter}`);
    else if (a.startsWith('--')) {
      const name = a.slice(2).replace(/=.*$/, '');
      typed.set(name.replace(/^no-/, ''), `--${name}`);
      typed.set(name, `--${name}`);
    }
  }
  const camel = (n: string) => n.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  const kept = names.filter((n) => typed.has(n) || !names.some((other) => other !== n && camel(other) === n));
  const options = [...new Set(kept.filter((n) => typed.has(n)).map((n) => typed.get(n)!))];
  const extra = kept.filter((n) => !typed.has(n));
  const parts = [
    ...(options.length > 0 ? [`unknown option${options.length === 1 ? '' : 's'} ${options.join(', ')}`] : []),
    ...(extra.length > 0 ? [`unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((e) => `'${e}'`).join(', ')}`] : []),
  ];
  return parts.join('; ');
}

function stackWithCauses(err: Error): string {
  let out = err.stack ?? `${err.name}: ${err.message}`;
  let cause: unknown = err.cause;
  for (let depth = 0; cause !== undefined && depth < 5; depth++) {
    out += `\ncaused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return out;
}

/** Print an error report: human lines on stderr, or one JSON line on stdout with --json. */
export function printError(report: ErrorReport, json: boolean): void {
  if (json) {
    const record: Record<string, unknown> = { exitCode: report.exitCode, message: report.message };
    if (report.hint !== undefined) record.hint = report.hint;
    if (report.stack !== undefined) record.stack = report.stack;
    process.stdout.write(jsonLine('error', record));
    return;
  }
  if (report.stack !== undefined) process.stderr.write(report.stack + '\n');
  process.stderr.write(`airlock: error: ${report.message}\n`);
  if (report.hint !== undefined) process.stderr.write(`  hint: ${report.hint}\n`);
}

/**
 * Build the CLI with `build`, parse `argv` (usually hideBin(process.argv)), run
 * the command, and set process.exitCode: 0, or the failure's exit code. Output
 * is flushed before the function resolves; the process is left to exit on its
 * own (with a safety net, see RunOptions.forceExitAfterMs). Resolves to the
 * exit code; never rejects.
 */
export async function runCli(argv: readonly string[], build: (y: Argv) => Argv, options: RunOptions = {}): Promise<number> {
  if (options.handleSignals !== false) installSignalHandlers();
  // `airlock inspect | head`: a closed stdout is not an error worth a stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });

  const json = wantsJson(argv);
  jsonOutput = json;
  let code: number = ExitCode.Ok;
  let cli: Argv | undefined;
  try {
    const base = yargs([...argv])
      .exitProcess(false)
      .strict()
      .demandCommand(1, 'no command given')
      .recommendCommands()
      .help()
      .alias('help', 'h')
      .wrap(null)
      .fail((msg: string | null, err: Error | undefined, usage: unknown) => {
        if (err instanceof AirlockError) throw err;
        if (err === undefined || err.name === 'YError') throw new YargsUsageError(msg ?? err?.message ?? 'invalid arguments', usageLineOf(usage));
        throw err;
      });
    cli = build(base);
    await cli.parseAsync();
  } catch (err) {
    const report = describeError(unknownOptionsFirst(err, cli, argv), argv);
    code = report.exitCode;
    // After Ctrl-C the work fails as it is torn down ("file closed"): the signal handler reports and exits.
    if (shuttingDown) return new Promise<number>(() => undefined);
    printError(report, json);
  }
  process.exitCode = code;
  await Promise.all([flush(process.stdout), flush(process.stderr)]);

  const after = options.forceExitAfterMs ?? 3000;
  if (after > 0 && !shuttingDown) {
    const timer = setTimeout(() => {
      if (debugEnabled()) {
        process.stderr.write(`airlock: debug: still running ${after} ms after the command; open: ${process.getActiveResourcesInfo().join(', ')}\n`);
      }
      process.exit(code);
    }, after);
    timer.unref();
  }
  return code;
}

/** The --help epilog of both entry points (airlock and the one-file loader). */
export const EXIT_CODES_EPILOG = 'Exit codes: 0 ok, 1 internal error, 2 usage, 3 verification failed, 4 remote failure, 5 policy refused.';

/** Set by the one-file build (scripts/build.ts, esbuild `define`): package.json does not ship next to it. */
declare const AIRLOCK_BUILD_VERSION: string | undefined;

/**
 * The version in airlock's package.json: the one the one-file build was made
 * from, else found by walking up from this module (the repo when run with
 * tsx). "0.0.0-unknown" if missing.
 */
export function packageVersion(from: string | URL = import.meta.url): string {
  if (typeof AIRLOCK_BUILD_VERSION === 'string') return AIRLOCK_BUILD_VERSION;
  let dir = new URL('.', from);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'airlock' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: look one directory up
    }
    const parent = new URL('..', dir);
    if (parent.href === dir.href) break;
    dir = parent;
  }
  return '0.0.0-unknown';
}

// ---------------------------------------------------------------- shared options

/** Rejects 0, negatives, fractions and non-numbers for options like --jobs. */
export function positiveInteger(name: string): (value: unknown) => number | undefined {
  return (value) => {
    if (value === undefined) return undefined;
    const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer (e.g. --${name} 4), not ${JSON.stringify(String(value))}`);
    return n;
  };
}

function bothOrNeither(argv: Record<string, unknown>, user: string, passwordEnv: string): true {
  const given = (k: string) => argv[k] !== undefined && argv[k] !== '';
  if (given(user) !== given(passwordEnv)) {
    throw new UsageError(`--${user} and --${passwordEnv} go together: give both or neither`, {
      hint: `--${passwordEnv} names an environment variable holding the password, e.g. --${passwordEnv} MY_PASSWORD`,
    });
  }
  return true;
}

/** --json: machine-readable output (one JSON object a line on stdout). */
export function withJson<T>(y: Argv<T>) {
  return y.option('json', {
    type: 'boolean',
    default: false,
    describe: 'Machine-readable output: one JSON object a line on stdout (progress, result, errors)',
  });
}

/** --jobs N */
export function withJobs<T>(y: Argv<T>, what: string) {
  return y.option('jobs', {
    // Read as text, so that a wrong value is shown as typed ("abc", not NaN); positiveInteger makes it a number.
    type: 'string',
    describe: `How many ${what} run at once (default: 8)`,
    coerce: positiveInteger('jobs'),
  });
}

/** Options every networked command takes (DESIGN.md section 4). */
export function withNetworkOptions<T>(y: Argv<T>) {
  return y
    .option('ca-file', {
      type: 'string',
      describe: 'PEM file of CA certificates trusted for every TLS connection (registry, git, S3), added to the system ones',
      normalize: true,
      group: 'Network:',
    })
    .option('ssh-key', {
      type: 'string',
      describe: 'Private key file for every SSH connection (git over ssh://, SFTP)',
      normalize: true,
      group: 'Network:',
    })
    .option('known-hosts', {
      type: 'string',
      describe: 'known_hosts file for SSH host key checks (default ~/.ssh/known_hosts; host keys are always checked)',
      normalize: true,
      group: 'Network:',
    })
    .option('s3-endpoint', {
      type: 'string',
      describe: 'S3-compatible endpoint URL (path-style addressing; also AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL); credentials come from the standard AWS chain',
      group: 'Network:',
    })
    .option('timeout', {
      type: 'string',
      describe: `Drop and retry a connection that makes no progress for this many seconds (connect, TLS, headers, body; registry, git, S3, SFTP) (default: ${DEFAULT_NETWORK_TIMEOUT_SECONDS})`,
      coerce: positiveInteger('timeout'),
      group: 'Network:',
    })
    .middleware((argv) => setNetworkTimeoutSeconds((argv.timeout as number | undefined) ?? DEFAULT_NETWORK_TIMEOUT_SECONDS));
}

/** --plain-http for commands that talk to a registry. */
export function withPlainHttp<T>(y: Argv<T>, describe = 'Talk plain HTTP (no TLS) to the registry') {
  return y.option('plain-http', { type: 'boolean', default: false, describe, group: 'Registry:' });
}

/** --registry-username / --registry-password-env (the password itself never comes from argv). */
export function withRegistryAuth<T>(y: Argv<T>) {
  return y
    .option('registry-username', {
      type: 'string',
      describe: 'Registry user name (with --registry-password-env; default: ~/.docker/config.json)',
      group: 'Registry:',
    })
    .option('registry-password-env', {
      type: 'string',
      describe: 'NAME of the environment variable holding the registry password or token',
      group: 'Registry:',
    })
    .option('client-cert', {
      type: 'string',
      describe: 'Client certificate (PEM) for a registry behind mutual TLS, with --client-key (default: certs.d/HOST[:PORT]/*.cert, as Docker reads it)',
      normalize: true,
      group: 'Registry:',
    })
    .option('client-key', { type: 'string', describe: 'Private key (PEM) of --client-cert', normalize: true, group: 'Registry:' })
    .check((argv) => bothOrNeither(argv, 'registry-username', 'registry-password-env') && bothOrNeither(argv, 'client-cert', 'client-key'));
}

/** The flags of the registry a command names (withRegistryAuth, withPlainHttp). */
export const REGISTRY_FLAGS: RegistryFlags = { username: 'registry-username', passwordEnv: 'registry-password-env', plainHttp: 'plain-http', clientCert: 'client-cert', clientKey: 'client-key' };

/** The RegistryAccess the flags give (withRegistryAuth and withPlainHttp's, or another registry's: `flags`). */
export function registryAccess(argv: Readonly<Record<string, unknown>>, flags: RegistryFlags = REGISTRY_FLAGS): RegistryAccess {
  const text = (name: string) => (typeof argv[name] === 'string' ? argv[name] : undefined);
  return {
    username: text(flags.username),
    passwordEnv: text(flags.passwordEnv),
    plainHttp: argv[flags.plainHttp] === true,
    clientCert: text(flags.clientCert),
    clientKey: text(flags.clientKey),
    flags,
  };
}

/** --git-username / --git-password-env for git over HTTPS (SSH uses --ssh-key). */
export function withGitAuth<T>(y: Argv<T>) {
  return y
    .option('git-username', {
      type: 'string',
      describe: 'User name for git over HTTPS (with --git-password-env)',
      group: 'Git:',
    })
    .option('git-password-env', {
      type: 'string',
      describe: 'NAME of the environment variable holding the git password or token',
      group: 'Git:',
    })
    .check((argv) => bothOrNeither(argv, 'git-username', 'git-password-env'));
}

/** The error every command throws until its issue is done. */
export function notBuiltYet(command: string): never {
  throw new UsageError(`airlock ${command} is not built yet in this version`);
}
