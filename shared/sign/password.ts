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

function prompt(question: string): Promise<string> {
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
