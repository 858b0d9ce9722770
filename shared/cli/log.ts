/**
 * Logging for every command: human lines on stderr, or (--json) one JSON
 * object a line on stdout ({"ts","event":"log","level","message",...fields}).
 * Everything written goes through redact(), so a
 * credential that slips into a message or a field never reaches the terminal
 * or a CI log.
 */

import { jsonLine } from './output.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

const MASK = '***';

const SECRET_KEYS =
  'password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|identitytoken|' +
  'x-amz-signature|x-amz-credential|x-amz-security-token|aws_secret_access_key|aws_session_token';

const REDACTIONS: [RegExp, string][] = [
  // Authorization / Proxy-Authorization headers: keep the scheme, mask the credential.
  [/(authorization"?\s*[:=]\s*"?)((?:basic|bearer|token|digest)\s+)?[^\s",;]+/gi, `$1$2${MASK}`],
  // user:password@ in URLs (the user stays: it helps to see which account was used).
  [/([a-z][a-z0-9+.-]*:\/\/[^\s/?#:@]+):[^\s/?#]*@/gi, `$1:${MASK}@`],
  // "password": "..." in JSON text (and docker config's "auth": "<base64>").
  [new RegExp(`("(?:${SECRET_KEYS}|auth)"\\s*:\\s*")(?:[^"\\\\]|\\\\.)*"`, 'gi'), `$1${MASK}"`],
  // password=... in query strings, form bodies, command lines.
  [new RegExp(`\\b(${SECRET_KEYS})=[^&\\s"']+`, 'gi'), `$1=${MASK}`],
];

/** Mask credentials in free text: Authorization headers, password=..., user:pass@ in URLs. */
export function redact(s: string): string {
  let out = s;
  for (const [re, replacement] of REDACTIONS) out = out.replace(re, replacement);
  return out;
}

/** redact() applied to every string inside a value (for structured fields). */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redact(value);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return redact(value.message);
  if (value instanceof URL) return redact(value.href);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = /^(authorization|password|passwd|secret|token|identitytoken|auth)$/i.test(k) ? MASK : redactValue(v, depth + 1);
  }
  return out;
}

/** Something that owns a redrawn status line (Progress) and must get out of the way of a log line. */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}

export interface LoggerOptions {
  /** One JSON object a line on stdout instead of human lines on stderr. */
  json?: boolean;
  /** Show debug messages. Default: AIRLOCK_DEBUG=1 in the environment. */
  debug?: boolean;
  /** Human output. Default process.stderr. */
  stream?: NodeJS.WritableStream;
  /** JSON output. Default process.stdout. */
  jsonStream?: NodeJS.WritableStream;
  /** Clock for the "ts" field (tests). */
  now?: () => Date;
}

export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.AIRLOCK_DEBUG;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return JSON.stringify(v);
}

export class Logger {
  readonly json: boolean;
  readonly debugEnabled: boolean;
  private readonly stream: NodeJS.WritableStream;
  private readonly jsonStream: NodeJS.WritableStream;
  private readonly now: () => Date;
  private statusLine: StatusLine | undefined;

  constructor(options: LoggerOptions = {}) {
    this.json = options.json ?? false;
    this.debugEnabled = options.debug ?? debugEnabled();
    this.stream = options.stream ?? process.stderr;
    this.jsonStream = options.jsonStream ?? process.stdout;
    this.now = options.now ?? (() => new Date());
  }

  /** Clear a status line before each log line and redraw it after (see Progress). */
  attachStatusLine(line: StatusLine | undefined): void {
    this.statusLine = line;
  }

  debug(message: string, fields?: Fields): void {
    if (this.debugEnabled) this.write('debug', message, fields);
  }

  info(message: string, fields?: Fields): void {
    this.write('info', message, fields);
  }

  warn(message: string, fields?: Fields): void {
    this.write('warn', message, fields);
  }

  error(message: string, fields?: Fields): void {
    this.write('error', message, fields);
  }

  private write(level: Level, message: string, fields?: Fields): void {
    const clean = fields === undefined ? undefined : (redactValue(fields) as Fields);
    if (this.json) {
      this.jsonStream.write(jsonLine('log', { ...clean, level, message: redact(message) }, this.now()));
      return;
    }
    const prefix = level === 'info' ? '' : `airlock: ${level === 'warn' ? 'warning' : level}: `;
    let line = prefix + redact(message);
    if (clean) {
      const parts = Object.entries(clean)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${formatValue(v)}`);
      if (parts.length > 0) line += ' ' + parts.join(' ');
    }
    this.statusLine?.clear();
    this.stream.write(line + '\n');
    this.statusLine?.redraw();
  }
}
