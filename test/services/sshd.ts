import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from './exec.ts';
import { freePort, stopProcess, waitForListener } from './ports.ts';

/**
 * A real OpenSSH sshd on 127.0.0.1 at a random port, in the foreground, with
 * its own host key and one authorized test key (for the current user), so
 * tests reach git over ssh:// with `git-upload-pack` / `git-receive-pack`
 * exactly as on a real server. Nothing of the system's sshd is touched.
 */
export interface SshServer {
  host: string;
  port: number;
  user: string;
  /** The client's private key (OpenSSH format, no passphrase) and its passphrase-protected twin. */
  clientKey: string;
  clientKeyWithPassphrase: { file: string; passphrase: string };
  /** A known_hosts file that lists this server's host key. */
  knownHosts: string;
  /** "SHA256:..." of the host key, as ssh-keygen -l prints it. */
  hostKeyFingerprint: string;
  /** ssh://user@127.0.0.1:PORT/ABSOLUTE/PATH */
  url(absolutePath: string): string;
  stop(): Promise<void>;
}

export async function startSshd(): Promise<SshServer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-sshd-'));
  await fsp.chmod(dir, 0o755);
  // Privilege separation needs this directory (the system sshd package creates it at boot).
  await fsp.mkdir('/run/sshd', { recursive: true }).catch(() => undefined);
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  const clientKey2 = path.join(dir, 'client2_ed25519');
  const passphrase = 'ssh key passphrase';
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'airlock-test-host', '-f', hostKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'airlock-test-client', '-f', clientKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'airlock-test-client2', '-f', clientKey2]);
  const authorized = path.join(dir, 'authorized_keys');
  await fsp.writeFile(authorized, (await fsp.readFile(`${clientKey}.pub`, 'utf8')) + (await fsp.readFile(`${clientKey2}.pub`, 'utf8')), { mode: 0o600 });
  const hostPub = (await fsp.readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const fingerprint = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])).stdout.split(/\s+/)[1]!;
  const user = os.userInfo().username;

  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'sshd_config');
    await fsp.writeFile(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${authorized}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'PermitRootLogin prohibit-password',
        `AllowUsers ${user}`,
        'LogLevel VERBOSE',
        'Subsystem sftp internal-sftp',
        // bash reads ~/.bashrc for commands sshd runs (Debian builds it so) only at shell level 1; a heavy
        // ~/.bashrc (pyenv init: seconds) would otherwise slow every git-over-SSH request of the tests.
        'SetEnv SHLVL=1',
        '',
      ].join('\n'),
    );
    const log = path.join(dir, `sshd-${attempt}.log`);
    const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config, '-E', log], { stdio: 'ignore' });
    if (await waitForListener(port, child)) {
      const knownHosts = path.join(dir, 'known_hosts');
      await fsp.writeFile(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);
      return {
        host: '127.0.0.1',
        port,
        user,
        clientKey,
        clientKeyWithPassphrase: { file: clientKey2, passphrase },
        knownHosts,
        hostKeyFingerprint: fingerprint,
        url: (p) => `ssh://${user}@127.0.0.1:${port}${p}`,
        stop: async () => {
          await stopProcess(child);
          await fsp.rm(dir, { recursive: true, force: true });
        },
      };
    }
    const text = await fsp.readFile(log, 'utf8').catch(() => '');
    if (attempt < 3 && /Address already in use/.test(text)) continue;
    await fsp.rm(dir, { recursive: true, force: true });
    throw new Error(`sshd did not start:\n${text.slice(-2000)}`);
  }
}
