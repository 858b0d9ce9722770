import fs from 'node:fs';
import git from 'isomorphic-git';
import { PolicyError, RemoteError, UsageError } from '../../shared/cli/errors.ts';
import { missingObjects } from './missingObjects.ts';
import { FLUSH, pktLine, splitPktLines } from '../../shared/git/pkt.ts';
import type { GitRemote } from './repo.ts';

/**
 * One ref pushed with git push options (`git push -o`), over the same HTTP
 * plugin and SSH bridge isomorphic-git uses, which itself sends none. The
 * receive-pack request (gitprotocol-pack): the command line with the
 * capabilities `report-status side-band-64k push-options agent=...`, a
 * flush, each option as a pkt-line, a flush, then the packfile. The answer's
 * report-status says whether the server took the ref.
 */
export const AGENT = 'airlock/0.1';
const ZERO = '0'.repeat(40);

export interface PushWithOptions {
  gitdir: string;
  remote: GitRemote;
  /** Full ref on the server: refs/heads/x, refs/for/x. */
  ref: string;
  commit: string;
  options: string[];
}

export interface PushedWithOptions {
  /** What the ref was on the server before (undefined: it did not exist). */
  old?: string;
  /** The server's messages (hooks' output, "remote: ..."). */
  messages: string[];
}

export async function pushWithOptions(push: PushWithOptions): Promise<PushedWithOptions> {
  for (const o of push.options) {
    if (/[\n\r\0]/.test(o)) throw new Error(`internal: push option ${JSON.stringify(o.slice(0, 40))} holds a line break`);
  }
  const { remote } = push;
  const ad = parseReceivePackAdvertisement(await request(remote, 'GET', `${remote.url}/info/refs?service=git-receive-pack`), remote.display);
  if (!ad.capabilities.has('push-options')) {
    throw new UsageError(`git server ${remote.display} does not accept push options (its receive-pack does not advertise push-options)`, {
      hint: 'enable them on the server (git: git config receive.advertisePushOptions true; GitLab, Gitea and Forgejo have them on), or use --review-style branch',
    });
  }
  const old = ad.refs.get(push.ref);
  const objects = await missingObjects(push.gitdir, push.commit, ad.refs.values());
  const { packfile } = await git.packObjects({ fs, gitdir: push.gitdir, oids: objects });
  const body = receivePackRequest({
    old: old ?? ZERO,
    new: push.commit,
    ref: push.ref,
    capabilities: ['report-status', 'side-band-64k', 'push-options', `agent=${AGENT}`].filter((c) => ad.capabilities.has(c.split('=')[0]!) || c.startsWith('agent=')),
    options: push.options,
    packfile: Buffer.from(packfile!),
  });
  const answer = await request(remote, 'POST', `${remote.url}/git-receive-pack`, body);
  const report = parseReceivePackResult(answer, ad.capabilities.has('side-band-64k'));
  const why = report.refs.get(push.ref);
  if (report.unpack !== 'ok' || why === undefined || why !== 'ok') {
    const reason = report.unpack !== 'ok' ? `unpack ${report.unpack}` : why === undefined ? (report.fatal ?? 'no status for the ref') : why;
    throw new PolicyError(`git server ${remote.display} refused the push to ${push.ref}: ${[reason, ...report.messages].filter(Boolean).join('; ')}`, {
      hint: 'the server or one of its hooks refused it: see its message, or ask the server admin',
    });
  }
  return { ...(old ? { old } : {}), messages: report.messages };
}

export interface ReceivePackAdvertisement {
  refs: Map<string, string>;
  capabilities: Set<string>;
}

/** The smart-HTTP receive-pack advertisement (the SSH bridge makes the same): refs and capabilities. */
export function parseReceivePackAdvertisement(body: Buffer, display: string): ReceivePackAdvertisement {
  let lines: (Buffer | null)[];
  try {
    lines = splitPktLines(body);
  } catch (err) {
    throw new RemoteError(`git server ${display}: its receive-pack answer is not git's protocol (${(err as Error).message})`, { hint: 'check the repository URL' });
  }
  const refs = new Map<string, string>();
  const capabilities = new Set<string>();
  let first = true;
  for (const l of lines) {
    if (l === null) continue;
    let text = l.toString('utf8').replace(/\n$/, '');
    if (text.startsWith('# service=')) continue;
    if (first) {
      first = false;
      const nul = text.indexOf('\0');
      if (nul >= 0) {
        for (const c of text.slice(nul + 1).split(' ')) if (c) capabilities.add(c);
        text = text.slice(0, nul);
      }
    }
    const [oid, name] = text.split(' ');
    if (!oid || !name || !/^[0-9a-f]{40}$/.test(oid)) throw new RemoteError(`git server ${display}: unexpected line in its receive-pack advertisement: ${JSON.stringify(text.slice(0, 80))}`);
    if (name !== 'capabilities^{}' && !name.endsWith('^{}')) refs.set(name, oid);
  }
  return { refs, capabilities };
}

export function receivePackRequest(r: { old: string; new: string; ref: string; capabilities: string[]; options: string[]; packfile: Buffer }): Buffer {
  return Buffer.concat([
    pktLine(`${r.old} ${r.new} ${r.ref}\0${r.capabilities.join(' ')}\n`),
    FLUSH,
    ...r.options.map((o) => pktLine(o)),
    FLUSH,
    r.packfile,
  ]);
}

export interface ReceivePackResult {
  /** "ok", or the reason unpacking failed. */
  unpack?: string;
  /** Ref to "ok" or the server's reason for refusing it. */
  refs: Map<string, string>;
  messages: string[];
  /** A fatal error the server sent on band 3. */
  fatal?: string;
}

/** report-status, inside side-band-64k's band 1 when it was asked for; band 2 is the server's messages, band 3 a fatal error. */
export function parseReceivePackResult(body: Buffer, sideband: boolean): ReceivePackResult {
  const messages: string[] = [];
  let fatal: string | undefined;
  let status = body;
  if (sideband) {
    const data: Buffer[] = [];
    for (const l of splitPktLines(body)) {
      if (l === null || l.length === 0) continue;
      const band = l[0];
      if (band === 1) data.push(l.subarray(1));
      else if (band === 2) messages.push(...l.subarray(1).toString('utf8').split(/[\r\n]+/).map((m) => m.trim()).filter(Boolean));
      else if (band === 3) fatal = l.subarray(1).toString('utf8').trim();
    }
    status = Buffer.concat(data);
  }
  const result: ReceivePackResult = { refs: new Map(), messages, ...(fatal ? { fatal } : {}) };
  for (const l of splitPktLines(status)) {
    if (l === null) continue;
    const text = l.toString('utf8').replace(/\n$/, '');
    if (text.startsWith('unpack ')) result.unpack = text.slice('unpack '.length);
    else if (text.startsWith('ok ')) result.refs.set(text.slice(3), 'ok');
    else if (text.startsWith('ng ')) {
      const [ref, ...why] = text.slice(3).split(' ');
      result.refs.set(ref!, why.join(' ') || 'refused');
    }
  }
  return result;
}

async function request(remote: GitRemote, method: 'GET' | 'POST', url: string, body?: Buffer): Promise<Buffer> {
  const service = 'git-receive-pack';
  const headers: Record<string, string> =
    method === 'GET'
      ? { accept: `application/x-${service}-advertisement` }
      : { 'content-type': `application/x-${service}-request`, accept: `application/x-${service}-result` };
  let res;
  try {
    res = await remote.http.request({
      url,
      method,
      headers,
      ...(body
        ? {
            body: (async function* () {
              yield new Uint8Array(body);
            })(),
          }
        : {}),
    });
  } catch (err) {
    if (err instanceof RemoteError) throw err;
    throw new RemoteError(`git push to ${remote.display}: ${(err as Error).message}`, { cause: err });
  }
  const parts: Uint8Array[] = [];
  for await (const chunk of res.body ?? []) parts.push(chunk);
  if (res.statusCode !== 200) {
    throw new RemoteError(`git push to ${remote.display}: HTTP ${res.statusCode}`, {
      hint: res.statusCode === 401 || res.statusCode === 403 ? 'check --git-username / --git-password-env' : 'check the repository URL',
    });
  }
  return Buffer.concat(parts);
}
