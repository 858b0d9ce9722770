import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import type { Client, ClientChannel } from 'ssh2';
import { connectSsh, type SshAuth } from '../transfer/ssh.ts';
import { RemoteError, UsageError } from '../cli/errors.ts';
import { pktLine } from './pkt.ts';
import { idleTimer, networkTimeoutMs, stallWords } from '../net/timeout.ts';

/**
 * Git over SSH for isomorphic-git, which speaks only HTTP: its smart-HTTP
 * requests are answered by `git-upload-pack` / `git-receive-pack` run over
 * an ssh2 exec channel (REFERENCE.md §4). The GET of info/refs gets the
 * server's advertisement with the `# service=` line HTTP would add; each POST
 * opens a new exec, drops the advertisement, sends the request and returns
 * the rest. Host keys are always checked against known_hosts: an unknown or
 * changed key stops with exit 4 and the offered fingerprint.
 */

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
    private readonly options: SshAuth,
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
    const reader = new PktReader(channel, this.display);
    const advertisement = await reader.untilFlush();
    let body: Buffer;
    if ((req.method ?? 'GET').toUpperCase() === 'GET') {
      channel.end('0000');
      const header = pktLine(`# service=${service}\n`);
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
    this.client ??= connectSsh(this.location, this.options);
    return this.client;
  }
}

function exec(client: Client, command: string, display: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, channel) => (err ? reject(new RemoteError(`git over SSH at ${display}: ${err.message}`)) : resolve(channel)));
  });
}

/** Reads a channel's stdout as pkt-lines up to a flush, then the rest; keeps stderr and the exit code. */
class PktReader {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private waiters: (() => void)[] = [];
  private errText = '';
  exitCode: number | undefined;
  /** Set when the server sent nothing for --timeout: the channel was closed. */
  private stalled: RemoteError | undefined;

  constructor(channel: ClientChannel, display: string) {
    const idle = idleTimer(networkTimeoutMs(), () => {
      this.stalled = new RemoteError(`git over SSH at ${display}: ${stallWords()}`, { hint: 'run the same command again; raise --timeout if the server is slow' });
      channel.close();
      this.ended = true;
      this.wake();
    });
    channel.on('data', (c: Buffer) => {
      idle.touch();
      this.buffered = Buffer.concat([this.buffered, c]);
      this.wake();
    });
    channel.on('close', () => idle.stop());
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
      if (this.stalled) throw this.stalled;
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
    if (this.stalled) throw this.stalled;
    const out = this.buffered;
    this.buffered = Buffer.alloc(0);
    return out;
  }
}
