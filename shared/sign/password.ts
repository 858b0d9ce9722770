import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { UsageError } from '../cli/errors.ts';

/**
 * The signing key's password (DESIGN.md §3): AIRLOCK_PASSWORD, else
 * COSIGN_PASSWORD (either may be set to the empty string), else a prompt on
 * the terminal that does not echo. Never from argv.
 */
export async function keyPassword(options: { confirm: boolean; env?: NodeJS.ProcessEnv }): Promise<string> {
  const env = options.env ?? process.env;
  const fromEnv = env.AIRLOCK_PASSWORD ?? env.COSIGN_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  if (!process.stdin.isTTY) {
    throw new UsageError('no password for the signing key', {
      hint: 'set AIRLOCK_PASSWORD (or COSIGN_PASSWORD), or run on a terminal to be asked',
    });
  }
  const first = await prompt('Password for the signing key: ');
  if (!options.confirm) return first;
  const second = await prompt('Password again: ');
  if (first !== second) throw new UsageError('the two passwords differ');
  return first;
}

/**
 * The password of a new signing key. An empty one leaves the key
 * unprotected, so it is never taken by accident: on a terminal airlock asks
 * to confirm it; otherwise (AIRLOCK_PASSWORD="" in a script) it takes
 * --no-password, which in turn means exactly that: no password, no prompt.
 */
export async function newKeyPassword(options: { noPassword: boolean; env?: NodeJS.ProcessEnv }): Promise<string> {
  const env = options.env ?? process.env;
  const fromEnv = env.AIRLOCK_PASSWORD ?? env.COSIGN_PASSWORD;
  if (options.noPassword) {
    if (fromEnv) throw new UsageError('--no-password, but AIRLOCK_PASSWORD (or COSIGN_PASSWORD) holds a password', { hint: 'drop --no-password to use that password, or unset the variable' });
    return '';
  }
  const password = await keyPassword({ confirm: true, env });
  if (password !== '') return password;
  const variable = env.AIRLOCK_PASSWORD !== undefined ? 'AIRLOCK_PASSWORD' : 'COSIGN_PASSWORD';
  if (fromEnv === undefined && process.stdin.isTTY) {
    const answer = await prompt('An empty password leaves the private key unprotected: anyone who copies the file can sign bundles. Use no password? [y/N] ', true);
    if (/^y(es)?$/i.test(answer.trim())) return '';
    throw new UsageError('no key written: the password was empty', { hint: 'run airlock keygen again and choose a password' });
  }
  throw new UsageError(`${fromEnv === undefined ? 'the password' : variable} is empty: the private key would be unprotected`, {
    hint: `set a password in ${variable}, or pass --no-password to make a key without one on purpose`,
  });
}

function prompt(question: string, echo = false): Promise<string> {
  if (echo) {
    process.stderr.write(question);
    const rl = createInterface({ input: process.stdin, terminal: false });
    return new Promise((resolve) => {
      rl.once('line', (answer) => {
        resolve(answer);
        rl.close();
      });
      rl.once('close', () => resolve(''));
    });
  }
  return promptSilently(question);
}

function promptSilently(question: string): Promise<string> {
  process.stderr.write(question);
  const silent = new Writable({ write: (_chunk, _enc, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
  return new Promise((resolve) => {
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
