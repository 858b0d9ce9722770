import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../shared/cli/errors.ts';
import { generateKeyPair } from '../shared/sign/keys.ts';
import { newKeyPassword } from '../shared/sign/password.ts';

/**
 * airlock keygen: airlock.key (cosign's encrypted format, mode 0600) and
 * airlock.pub (PKIX PEM). Existing files are never overwritten. An empty
 * password is confirmed on a terminal, and takes --no-password elsewhere.
 */
export async function keygen(outDir: string, options: { noPassword?: boolean } = {}): Promise<{ privateKeyPath: string; publicKeyPath: string }> {
  const password = await newKeyPassword({ noPassword: options.noPassword === true });
  const { privateKeyPem, publicKeyPem } = generateKeyPair(password);
  await mkdir(outDir, { recursive: true });
  const privateKeyPath = join(outDir, 'airlock.key');
  const publicKeyPath = join(outDir, 'airlock.pub');
  await writeNew(privateKeyPath, privateKeyPem, 0o600);
  await writeNew(publicKeyPath, publicKeyPem, 0o644);
  return { privateKeyPath, publicKeyPath };
}

async function writeNew(path: string, text: string, mode: number): Promise<void> {
  try {
    await writeFile(path, text, { flag: 'wx', mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`${path} already exists; airlock keygen never overwrites a key`, {
        hint: 'move the old key pair away, or choose another --out-dir',
      });
    }
    throw err;
  }
}
