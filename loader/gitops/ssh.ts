import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { Client, type ClientChannel } from 'ssh2';
import { RemoteError, UsageError } from '../../shared/cli/errors.ts';

/**
 * Git over SSH for isomorphic-git, which speaks only HTTP: its smart-HTTP
 * requests are answered by `git-upload-pack` / `git-receive-pack` run over
 * an ssh2 exec channel (REFERENCE.md §4). The GET of info/refs gets the
 * server's advertisement with the `# service=` line HTTP would add; each POST
 * opens a new exec, drops the advertisement, sends the request and returns
 * the rest. Host keys are always checked against known_hosts: an unknown or
 * changed key stops with exit 4 and the offered fingerprint.
 */
export interface SshOptions {
  /** Private key file (OpenSSH or PEM). */
  keyFile?: string;
  /** Passphrase of the key, when it has one. */
  passphrase?: string;
  /** known_hosts file (default ~/.ssh/known_hosts). */
  knownHosts?: string;
}

export interface SshLocation {
  user: string;
  host: string;
  port: number;
  /** The repository path as the server's git-upload-pack wants it. */
  path: string;
}

/** ssh://user@host[:port]/path or user@host:path (scp style, relative to the user's home). */
export function parseSshUrl(url: string): SshLocation {
  const scp = /^([^@/:\s]+)@([^:/\s]+):(?!\/\/)(.+)$/.exec(url);
  if (scp) return { user: scp[1]!, host: scp[2]!, port: 22, path: scp[3]! };
  const u = new URL(url);
  if (u.protocol !== 'ssh:') throw new UsageError(`${url}: not an ssh:// URL`);
  if (!u.username) throw new UsageError(`${url}: name the SSH user (ssh://git@host/path)`);
  if (u.password) throw new UsageError(`${url}: no passwords in URLs; SSH uses --ssh-key`);
  const path = decodeURIComponent(u.pathname).replace(/^\/~\//, '');
  return { user: decodeURIComponent(u.username), host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 22, path };
}

export class SshGitTransport {
  readonly http: HttpClient;
  /** The URL isomorphic-git is given; the plugin maps it back to SSH. */
  readonly gitUrl = 'https://airlock-ssh.invalid/repo.git';
  private client: Promise<Client> | undefined;

  constructor(
    readonly location: SshLocation,
    private readonly options: SshOptions,
    /** For messages. */
    readonly display: string,
  ) {
    this.http = { request: (req) => this.request(req) };
  }

  async close(): Promise<void> {
    const c = await this.client?.catch(() => undefined);
    c?.end();
  }

  private async request(req: GitHttpRequest): Promise<GitHttpResponse> {
    const url = new URL(req.url);
    const service = url.searchParams.get('service') ?? url.pathname.split('/').pop()!;
    if (service !== 'git-upload-pack' && service !== 'git-receive-pack') throw new Error(`internal: unexpected git request ${req.url}`);
    const client = await this.connect();
    const command = `${service} '${this.location.path.replace(/'/g, `'\\''`)}'`;
    const channel = await exec(client, command, this.display);
    const reader = new PktReader(channel);
    const advertisement = await reader.untilFlush();
    let body: Buffer;
    if ((req.method ?? 'GET').toUpperCase() === 'GET') {
      channel.end('0000');
      const header = pkt(`# service=${service}\n`);
      body = Buffer.concat([header, Buffer.from('0000'), advertisement]);
      await reader.rest().catch(() => undefined);
    } else {
      const parts: Uint8Array[] = [];
      for await (const chunk of req.body ?? []) parts.push(chunk);
      channel.end(Buffer.concat(parts));
      body = await reader.rest();
    }
    const stderr = reader.stderr().trim();
    if (reader.exitCode !== undefined && reader.exitCode !== 0 && body.length === 0) {
      throw new RemoteError(`git over SSH at ${this.display}: ${service} failed (exit ${reader.exitCode})${stderr ? `: ${stderr}` : ''}`, {
        hint: 'check the repository path and that the key may access it',
      });
    }
    const kind = (req.method ?? 'GET').toUpperCase() === 'GET' ? 'advertisement' : 'result';
    return {
      url: req.url,
      method: req.method,
      statusCode: 200,
      statusMessage: 'OK',
      headers: { 'content-type': `application/x-${service}-${kind}` },
      body: (async function* () {
        yield new Uint8Array(body);
      })(),
    };
  }

  private connect(): Promise<Client> {
    this.client ??= new Promise<Client>((resolve, reject) => {
      const { host, port, user } = this.location;
      const knownHosts = this.options.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
      let privateKey: Buffer | undefined;
      if (this.options.keyFile) {
        try {
          privateKey = readFileSync(this.options.keyFile);
        } catch (err) {
          reject(new UsageError(`--ssh-key ${this.options.keyFile}: ${(err as Error).message}`));
          return;
        }
      } else {
        reject(new UsageError(`git over SSH to ${this.display} needs --ssh-key`));
        return;
      }
      let hostProblem: RemoteError | undefined;
      const client = new Client();
      client.on('ready', () => resolve(client));
      client.on('error', (err) => {
        const message = err.message;
        if (hostProblem) reject(hostProblem);
        else if (/passphrase|encrypted/i.test(message)) reject(new UsageError(`--ssh-key ${this.options.keyFile}: ${message}`, { hint: 'put the passphrase in AIRLOCK_SSH_PASSPHRASE' }));
        else if ((err as { level?: string }).level === 'client-authentication') reject(new RemoteError(`SSH ${user}@${host}:${port} refused the key ${this.options.keyFile}`, { hint: 'check that the public key is authorized for this user' }));
        else reject(new RemoteError(`SSH to ${host}:${port}: ${message}`, { hint: `check that ${host}:${port} is reachable` }));
      });
      try {
        client.connect({
          host,
          port,
          username: user,
          privateKey,
          passphrase: this.options.passphrase,
          readyTimeout: 20_000,
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
        reject(new UsageError(`--ssh-key ${this.options.keyFile}: ${(err as Error).message}`, { hint: 'a key with a passphrase needs AIRLOCK_SSH_PASSPHRASE' }));
      }
    });
    return this.client;
  }
}

function exec(client: Client, command: string, display: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, channel) => (err ? reject(new RemoteError(`git over SSH at ${display}: ${err.message}`)) : resolve(channel)));
  });
}

function pkt(text: string): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0')), body]);
}

/** Reads a channel's stdout as pkt-lines up to a flush, then the rest; keeps stderr and the exit code. */
class PktReader {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private waiters: (() => void)[] = [];
  private errText = '';
  exitCode: number | undefined;

  constructor(channel: ClientChannel) {
    channel.on('data', (c: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, c]);
      this.wake();
    });
    channel.stderr.on('data', (c: Buffer) => (this.errText += c.toString('utf8')));
    channel.on('exit', (code: number | null) => (this.exitCode = code ?? undefined));
    channel.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  stderr(): string {
    return this.errText;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  private more(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  /** Everything up to and including the first flush-pkt "0000". */
  async untilFlush(): Promise<Buffer> {
    let at = 0;
    for (;;) {
      while (at + 4 <= this.buffered.length) {
        const len = parseInt(this.buffered.subarray(at, at + 4).toString('ascii'), 16);
        if (Number.isNaN(len)) throw new RemoteError(`git over SSH: the server sent something that is not git's protocol: ${JSON.stringify(this.buffered.subarray(0, 80).toString())} ${this.errText}`);
        if (len === 0) {
          const out = this.buffered.subarray(0, at + 4);
          this.buffered = this.buffered.subarray(at + 4);
          return out;
        }
        if (at + len > this.buffered.length) break;
        at += len;
      }
      if (this.ended) {
        throw new RemoteError(`git over SSH: the connection closed during the ref advertisement${this.errText ? `: ${this.errText.trim()}` : ''}`, {
          hint: 'check the repository path and that the key may access it',
        });
      }
      await this.more();
    }
  }

  /** Everything after, until the channel closes. */
  async rest(): Promise<Buffer> {
    while (!this.ended) await this.more();
    const out = this.buffered;
    this.buffered = Buffer.alloc(0);
    return out;
  }
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
