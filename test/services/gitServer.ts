import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from './exec.ts';
import { startNginx, type NginxService } from './nginx.ts';

/**
 * A real git server over HTTPS: git-http-backend (git's own smart HTTP
 * server) behind nginx and fcgiwrap, with Basic auth and a throwaway CA.
 * Repositories are bare repos under one root; a pre-receive hook can refuse
 * pushes to "protected" branches with a message, as hosted servers do.
 */
export interface GitServerOptions {
  /** Accounts for Basic auth; default one user `airlock` with a random password. */
  users?: Record<string, string>;
}

export interface GitServer {
  /** https://127.0.0.1:PORT/git/NAME.git */
  url(name: string): string;
  caFile: string;
  username: string;
  password: string;
  /** Where the bare repositories live. */
  root: string;
  /**
   * Create a bare repository; with `files`, a first commit on `branch` (default main) holding them;
   * with `pushOptions`, receive-pack advertises push-options (receive.advertisePushOptions=true).
   */
  createRepo(name: string, opts?: { branch?: string; files?: Record<string, string>; pushOptions?: boolean }): Promise<string>;
  /**
   * A pre-receive hook that records each push's ref updates and push options
   * (GIT_PUSH_OPTION_<i>), as GitLab and Gitea read them; `pushes` returns them.
   */
  recordPushes(name: string): Promise<void>;
  pushes(name: string): Promise<RecordedPush[]>;
  /** Refuse pushes to these branches of a repository (pre-receive hook), with the server's message. */
  protect(name: string, branches: string[]): Promise<void>;
  /** `git` run against a bare repository (inspection in tests). */
  git(name: string, args: string[]): Promise<string>;
  nginx: NginxService;
  stop(): Promise<void>;
}

export interface RecordedPush {
  refs: { old: string; new: string; ref: string }[];
  options: string[];
}

export const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export async function startGitServer(opts: GitServerOptions = {}): Promise<GitServer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-git-'));
  const root = path.join(dir, 'repos');
  const www = path.join(dir, 'www');
  await fsp.mkdir(root);
  await fsp.mkdir(www);
  const users = opts.users ?? { airlock: crypto.randomBytes(12).toString('base64url') };
  const [username, password] = Object.entries(users)[0]!;
  const htpasswd = path.join(dir, 'htpasswd');
  let text = '';
  for (const [u, p] of Object.entries(users)) text += (await run('htpasswd', ['-Bbn', u, p])).stdout.trim() + '\n';
  await fsp.writeFile(htpasswd, text, { mode: 0o600 });

  const socket = path.join(dir, 'fcgiwrap.sock');
  // Its own process group: fcgiwrap pre-forks workers, and stop() ends them all.
  const fcgi: ChildProcess = spawn('/usr/sbin/fcgiwrap', ['-c', '4', '-s', `unix:${socket}`], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let fcgiErr = '';
  fcgi.stderr!.setEncoding('utf8').on('data', (c: string) => (fcgiErr += c));
  for (let i = 0; ; i++) {
    if (await fsp.stat(socket).then(() => true, () => false)) break;
    if (fcgi.exitCode !== null || i > 200) {
      if (fcgi.pid && fcgi.exitCode === null) process.kill(-fcgi.pid, 'SIGKILL');
      throw new Error(`fcgiwrap did not start: ${fcgiErr}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }

  const locations = [
    '    location ~ ^/git(/.*)$ {',
    '      auth_basic "airlock test git";',
    `      auth_basic_user_file ${htpasswd};`,
    '      client_max_body_size 0;',
    `      fastcgi_pass unix:${socket};`,
    `      fastcgi_param SCRIPT_FILENAME ${GIT_HTTP_BACKEND};`,
    `      fastcgi_param GIT_PROJECT_ROOT ${root};`,
    '      fastcgi_param GIT_HTTP_EXPORT_ALL "";',
    '      fastcgi_param PATH_INFO $1;',
    '      fastcgi_param REMOTE_USER $remote_user;',
    '      fastcgi_param QUERY_STRING $query_string;',
    '      fastcgi_param REQUEST_METHOD $request_method;',
    '      fastcgi_param CONTENT_TYPE $content_type;',
    '      fastcgi_param CONTENT_LENGTH $content_length;',
    '      fastcgi_param HTTP_GIT_PROTOCOL $http_git_protocol;',
    '      fastcgi_param GIT_CONFIG_NOSYSTEM 1;',
    '      fastcgi_param HOME ' + dir + ';',
    '    }',
  ].join('\n');
  let nginx: NginxService;
  try {
    nginx = await startNginx({ root: www, tls: true, locations });
  } catch (err) {
    if (fcgi.pid) process.kill(-fcgi.pid, 'SIGKILL');
    throw err;
  }

  const bare = (name: string) => path.join(root, `${name}.git`);
  const git = async (name: string, args: string[]) => (await run('git', ['--git-dir', bare(name), ...args])).stdout;
  return {
    url: (name) => `${nginx.url}/git/${name}.git`,
    caFile: nginx.caFile!,
    username,
    password,
    root,
    nginx,
    git,
    async createRepo(name, o = {}) {
      const branch = o.branch ?? 'main';
      await run('git', ['init', '--bare', '--quiet', '--initial-branch', branch, bare(name)]);
      await git(name, ['config', 'http.receivepack', 'true']);
      await git(name, ['config', 'uploadpack.allowAnySHA1InWant', 'true']);
      if (o.pushOptions) await git(name, ['config', 'receive.advertisePushOptions', 'true']);
      if (o.files) {
        const work = await fsp.mkdtemp(path.join(dir, 'seed-'));
        for (const [file, content] of Object.entries(o.files)) {
          await fsp.mkdir(path.dirname(path.join(work, file)), { recursive: true });
          await fsp.writeFile(path.join(work, file), content);
        }
        const g = (args: string[]) => run('git', ['-C', work, '-c', 'user.name=seed', '-c', 'user.email=seed@example.test', ...args]);
        await g(['init', '--quiet', '--initial-branch', branch]);
        await g(['add', '-A']);
        await g(['commit', '--quiet', '-m', 'seed']);
        await g(['push', '--quiet', bare(name), `${branch}:${branch}`]);
        await fsp.rm(work, { recursive: true, force: true });
      }
      return bare(name);
    },
    async protect(name, branches) {
      const hook = path.join(bare(name), 'hooks', 'pre-receive');
      const cases = branches.map((b) => `    refs/heads/${b}) echo "GL-HOOK-ERR: branch ${b} is protected: open a merge request instead" >&2; exit 1 ;;`).join('\n');
      await fsp.writeFile(hook, `#!/bin/sh\nwhile read old new ref; do\n  case "$ref" in\n${cases}\n  esac\ndone\nexit 0\n`, { mode: 0o755 });
    },
    async recordPushes(name) {
      const log = path.join(bare(name), 'recorded-pushes.log');
      await fsp.writeFile(
        path.join(bare(name), 'hooks', 'pre-receive'),
        [
          '#!/bin/sh',
          `log='${log}'`,
          'echo push >> "$log"',
          'while read old new ref; do printf \'ref %s %s %s\\n\' "$old" "$new" "$ref" >> "$log"; done',
          'i=0',
          'while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do',
          '  eval "v=\\$GIT_PUSH_OPTION_$i"',
          '  printf \'option %s\\n\' "$v" >> "$log"',
          '  i=$((i + 1))',
          'done',
          'exit 0',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
    },
    async pushes(name) {
      const text = await fsp.readFile(path.join(bare(name), 'recorded-pushes.log'), 'utf8').catch(() => '');
      const out: RecordedPush[] = [];
      for (const line of text.split('\n')) {
        if (line === 'push') out.push({ refs: [], options: [] });
        else if (line.startsWith('ref ')) {
          const [old, nu, ref] = line.slice(4).split(' ');
          out.at(-1)!.refs.push({ old: old!, new: nu!, ref: ref! });
        } else if (line.startsWith('option ')) out.at(-1)!.options.push(line.slice('option '.length));
      }
      return out;
    },
    async stop() {
      await nginx.stop();
      if (fcgi.exitCode === null && fcgi.pid) {
        const exited = new Promise((r) => fcgi.once('exit', r));
        process.kill(-fcgi.pid, 'SIGKILL');
        await exited;
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
