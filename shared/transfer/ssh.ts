import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ssh2';
import { RemoteError, UsageError } from '../cli/errors.ts';
import { networkTimeoutMs, stallWords } from '../net/timeout.ts';

/**
 * SSH connections for git and SFTP: a private key (its passphrase from
 * AIRLOCK_SSH_PASSPHRASE) and a host key that is always checked against
 * known_hosts. An unknown or changed host key stops the connection with
 * exit 4 and the fingerprint the server offered.
 */
export interface SshTarget {
  host: string;
  port: number;
  user: string;
}

export interface SshAuth {
  /** Private key file (OpenSSH or PEM). */
  keyFile?: string;
  passphrase?: string;
  /** known_hosts file (default ~/.ssh/known_hosts). */
  knownHosts?: string;
}

/** The SSH options every networked command takes (--ssh-key, --known-hosts; passphrase from AIRLOCK_SSH_PASSPHRASE). */
export function sshAuth(argv: { 'ssh-key'?: string; 'known-hosts'?: string }, env: NodeJS.ProcessEnv = process.env): SshAuth {
  return { keyFile: argv['ssh-key'], knownHosts: argv['known-hosts'], passphrase: env.AIRLOCK_SSH_PASSPHRASE };
}

export function connectSsh(target: SshTarget, auth: SshAuth): Promise<Client> {
  return new Promise<Client>((resolve, reject) => {
    const { host, port, user } = target;
    const knownHosts = auth.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
    if (!auth.keyFile) {
      reject(new UsageError(`SSH to ${host}:${port} needs --ssh-key`));
      return;
    }
    let privateKey: Buffer;
    try {
      privateKey = readFileSync(auth.keyFile);
    } catch (err) {
      reject(new UsageError(`--ssh-key ${auth.keyFile}: ${(err as Error).message}`));
      return;
    }
    let hostProblem: RemoteError | undefined;
    const client = new Client();
    client.on('ready', () => resolve(client));
    client.on('error', (err) => {
      const message = err.message;
      if (hostProblem) reject(hostProblem);
      else if (/passphrase|encrypted/i.test(message)) reject(new UsageError(`--ssh-key ${auth.keyFile}: ${message}`, { hint: 'put the passphrase in AIRLOCK_SSH_PASSPHRASE' }));
      else if ((err as { level?: string }).level === 'client-authentication') reject(new RemoteError(`SSH ${user}@${host}:${port} refused the key ${auth.keyFile}`, { hint: 'check that the public key is authorized for this user' }));
      else if ((err as { level?: string }).level === 'client-timeout') reject(new RemoteError(`SSH to ${host}:${port}: ${stallWords()}`, { hint: `check that ${host}:${port} is reachable`, cause: Object.assign(err, { code: 'AIRLOCK_STALL' }) }));
      else reject(new RemoteError(`SSH to ${host}:${port}: ${message}`, { hint: `check that ${host}:${port} is reachable` }));
    });
    try {
      client.connect({
        host,
        port,
        username: user,
        privateKey,
        passphrase: auth.passphrase,
        // --timeout: the handshake must finish in it, and a silent server is
        // noticed by keepalives (three unanswered, one every third of it).
        readyTimeout: networkTimeoutMs(),
        keepaliveInterval: Math.max(1000, Math.round(networkTimeoutMs() / 3)),
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          const verdict = checkHostKey(knownHosts, host, port, key);
          if (verdict === 'ok') return true;
          const fp = fingerprint(key);
          hostProblem =
            verdict === 'changed'
              ? new RemoteError(`SSH host key of ${host}:${port} does not match ${knownHosts}: it offered ${fp}. Someone may be intercepting the connection`, {
                  hint: 'if the server really changed its key, verify the new fingerprint out of band and update known_hosts',
                })
              : new RemoteError(`SSH host ${host}:${port} is not in ${knownHosts}: it offered ${fp}`, {
                  hint: `verify that fingerprint with the server's admin, then add the host key to known_hosts (ssh-keyscan -p ${port} ${host})`,
                });
          return false;
        },
      });
    } catch (err) {
      reject(new UsageError(`--ssh-key ${auth.keyFile}: ${(err as Error).message}`, { hint: 'a key with a passphrase needs AIRLOCK_SSH_PASSPHRASE' }));
    }
  });
}

/** SHA256 fingerprint as ssh-keygen prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** 'ok' when known_hosts lists this key for the host, 'changed' when it lists another, 'unknown' when none. */
export function checkHostKey(knownHostsFile: string, host: string, port: number, key: Buffer): 'ok' | 'changed' | 'unknown' {
  let text = '';
  try {
    text = readFileSync(knownHostsFile, 'utf8');
  } catch {
    return 'unknown';
  }
  const name = port === 22 ? host : `[${host}]:${port}`;
  let listed = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith('@')) marker = fields.shift();
    const [hosts, , b64] = fields;
    if (!hosts || !b64 || marker === '@cert-authority') continue;
    if (!hostMatches(hosts, name)) continue;
    const same = Buffer.from(b64, 'base64').equals(key);
    if (marker === '@revoked') {
      if (same) return 'changed';
      continue;
    }
    if (same) return 'ok';
    listed = true;
  }
  return listed ? 'changed' : 'unknown';
}

function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const glob = new RegExp(`^${(negated ? p.slice(1) : p).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    if (glob.test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}
