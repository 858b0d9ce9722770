import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { UsageError } from '../../shared/cli/errors.ts';

/**
 * The spec's `set` map (`global.ingress.enabled: true`) as a values file,
 * passed to helm as the last `-f` (so it wins over every values file, as
 * `--set` would).
 *
 * Why a file and not `--set`: `--set` parses its argument again (commas split
 * pairs, `=` and `[` are syntax, "1.10" becomes the number 1.1, "true" a
 * boolean), and `--set-string`/`--set-literal` each get only part of that
 * right. A YAML file carries every scalar exactly as the spec typed it: a
 * string stays a string whatever it holds, a number stays a number.
 *
 * Keys use `--set`'s path syntax: `.` separates map keys (`\.` is a literal
 * dot: `podAnnotations.prometheus\.io/scrape`), `name[N]` is element N of a
 * list (the list replaces the chart's, as with `--set`). null removes a key
 * from the chart's defaults, as in a values file.
 */
export type SetValue = string | number | boolean | null;

/** The most a `[N]` index may be (helm's own --set limit is 65536). */
const MAX_INDEX = 10_000;

type Tree = Record<string, unknown> | unknown[];

export function setToValues(set: Record<string, SetValue>, where = 'set'): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(set)) {
    const path = parseSetKey(key, where);
    let node: Tree = root;
    for (const [i, step] of path.entries()) {
      const last = i === path.length - 1;
      const nextIsIndex = !last && typeof path[i + 1] === 'number';
      const existing = getStep(node, step);
      if (last) {
        if (existing !== undefined && isTree(existing)) conflict(where, key);
        setStep(node, step, value);
        break;
      }
      if (existing === undefined || existing === null) {
        const child: Tree = nextIsIndex ? [] : {};
        setStep(node, step, child);
        node = child;
      } else if (isTree(existing) && Array.isArray(existing) === nextIsIndex) {
        node = existing;
      } else {
        conflict(where, key);
      }
    }
  }
  return root;
}

/** Write setToValues(set) to `file` as YAML. */
export async function writeSetValues(set: Record<string, SetValue>, file: string, where?: string): Promise<void> {
  // YAML 1.1 as helm reads it (go-yaml): a string "yes", "on" or "0755" is written quoted, so it stays a string.
  await writeFile(file, stringify(setToValues(set, where), { version: '1.1' }), { mode: 0o600 });
}

/** "a.b\.c[2].d" -> ["a", "b.c", 2, "d"] */
export function parseSetKey(key: string, where = 'set'): (string | number)[] {
  const bad = (why: string): never => {
    throw new UsageError(`${where}: key ${JSON.stringify(key)}: ${why}`, {
      hint: 'keys are paths as helm --set takes them: a.b.c, a\\.literal\\.dot, list[0].name',
    });
  };
  const path: (string | number)[] = [];
  let name = '';
  let named = false;
  let i = 0;
  const endSegment = () => {
    if (!named) bad('an empty name between dots');
    path.push(name);
    name = '';
    named = false;
  };
  while (i < key.length) {
    const c = key[i]!;
    if (c === '\\') {
      if (i + 1 >= key.length) bad('a trailing backslash');
      name += key[i + 1];
      named = true;
      i += 2;
    } else if (c === '.') {
      if (named) endSegment();
      else if (path.length === 0 || typeof path[path.length - 1] !== 'number') bad('an empty name between dots');
      i++;
    } else if (c === '[') {
      if (named) endSegment();
      else if (path.length === 0) bad('an index without a name');
      const close = key.indexOf(']', i);
      const digits = close < 0 ? '' : key.slice(i + 1, close);
      if (!/^\d+$/.test(digits)) bad('an index is [N] with N a number');
      const n = Number(digits);
      if (n > MAX_INDEX) bad(`index ${n} is above ${MAX_INDEX}`);
      path.push(n);
      i = close + 1;
      if (i < key.length && key[i] !== '.' && key[i] !== '[') bad('an index is followed by "." or another index');
    } else if (c === ']') {
      bad('a "]" without "["');
    } else {
      name += c;
      named = true;
      i++;
    }
  }
  if (named) endSegment();
  else if (path.length === 0 || typeof path[path.length - 1] !== 'number') bad('an empty name');
  return path;
}

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null;
}

function getStep(node: Tree, step: string | number): unknown {
  if (Array.isArray(node)) return typeof step === 'number' ? node[step] : undefined;
  return typeof step === 'string' && Object.hasOwn(node, step) ? node[step] : undefined;
}

function setStep(node: Tree, step: string | number, value: unknown): void {
  if (Array.isArray(node)) {
    const index = step as number;
    while (node.length < index) node.push(null);
    node[index] = value;
  } else {
    Object.defineProperty(node, step as string, { value, enumerable: true, writable: true, configurable: true });
  }
}

function conflict(where: string, key: string): never {
  throw new UsageError(`${where}: key ${JSON.stringify(key)} sets a value where another key needs a map or a list (or the other way round)`, {
    hint: 'give each path once: either the value itself or the keys under it',
  });
}
