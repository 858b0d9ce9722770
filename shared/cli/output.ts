/**
 * The one shape of every --json line (docs/json-output.md):
 *
 *   {"ts": ISO time, "event": "progress" | "log" | "result" | "error", ...fields}
 *
 * A command prints exactly one "result" line when it succeeds and one "error"
 * line (with its exit code) when it fails; "progress" and "log" lines may come
 * before either. Everything goes to stdout, one JSON object a line.
 */

export type JsonEvent = 'progress' | 'log' | 'result' | 'error';

/** The commands that print a result, and what each calls itself in the "command" field. */
export type CommandName = 'pack' | 'verify' | 'inspect' | 'load' | 'promote' | 'approve' | 'upload' | 'download' | 'split' | 'keygen' | 'inventory';

/** One JSON line: ts and event first; a field named ts or event cannot override them. */
export function jsonLine(event: JsonEvent, fields: Record<string, unknown> = {}, now: Date = new Date()): string {
  const { ts: _ts, event: _event, ...rest } = fields;
  return JSON.stringify({ ts: now.toISOString(), event, ...rest }) + '\n';
}

/**
 * The result of a command that succeeded: one {"event":"result","command",...}
 * line on stdout with --json, else the human text.
 */
export function printResult(command: CommandName, result: object, json: boolean, human: () => string, out: NodeJS.WritableStream = process.stdout): void {
  if (json) {
    out.write(jsonLine('result', { command, ...(result as Record<string, unknown>) }));
    return;
  }
  const text = human();
  out.write(text.endsWith('\n') ? text : `${text}\n`);
}
