import { stat, readFile } from 'node:fs/promises';
import { Composer, Parser, parse, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { UsageError, VerificationError, type AirlockError } from '../cli/errors.ts';

/**
 * YAML nobody vouches for (manifests, charts, values, the spec) read within
 * limits, so that a hostile file is refused with a clear error instead of
 * exhausting memory or the stack:
 *
 *   - a file may hold at most 64 MiB (AIRLOCK_MAX_YAML_FILE_MIB), checked before it is read;
 *   - one document at most 16 MiB (AIRLOCK_MAX_YAML_DOCUMENT_MIB): the Kubernetes API
 *     takes no object above 3 MiB, and parsing costs ~40 bytes of memory per byte;
 *   - nesting at most 200 levels deep (the yaml library recurses; ~800 levels
 *     overflow its stack and can take the process down);
 *   - aliases that would expand past 100 nodes are refused ("billion laughs").
 *
 * Documents are parsed one at a time, so memory is the text plus one document.
 * Whose fault a refusal is decides the exit code: `blame: 'user'` (the spec,
 * values files: exit 2) or `'source'` (fetched manifests and charts: exit 3).
 */
export interface YamlLimits {
  maxFileBytes: number;
  maxDocumentBytes: number;
  maxDepth: number;
  maxAliasCount: number;
}

export type Blame = 'user' | 'source';

const MiB = 1024 * 1024;

export function yamlLimits(env: NodeJS.ProcessEnv = process.env): YamlLimits {
  return {
    maxFileBytes: mibFrom(env, 'AIRLOCK_MAX_YAML_FILE_MIB', 64),
    maxDocumentBytes: mibFrom(env, 'AIRLOCK_MAX_YAML_DOCUMENT_MIB', 16),
    maxDepth: 200,
    maxAliasCount: 100,
  };
}

function mibFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback * MiB;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name}=${JSON.stringify(text)} is not a positive number of MiB`);
  return Math.floor(n * MiB);
}

function refusal(blame: Blame, message: string, hint?: string): AirlockError {
  return blame === 'user' ? new UsageError(message, { hint }) : new VerificationError(message, { hint });
}

const RAISE_HINT = 'Kubernetes objects are far smaller; if this file is genuine, raise the cap with AIRLOCK_MAX_YAML_FILE_MIB / AIRLOCK_MAX_YAML_DOCUMENT_MIB';

/** The text of a YAML file, refused before it is read when it is larger than the cap. */
export async function readYamlText(file: string, what: string, blame: Blame, limits = yamlLimits()): Promise<string> {
  const { size } = await stat(file);
  if (size > limits.maxFileBytes) {
    throw refusal(blame, `${what}: ${mib(size)} MiB of YAML, more than the ${mib(limits.maxFileBytes)} MiB a YAML file may hold`, RAISE_HINT);
  }
  return readFile(file, 'utf8');
}

/**
 * Throws when `text` is larger, holds a larger document, or nests deeper than
 * the limits. A single pass over the text, no parsing: lines give block
 * nesting (one level per deeper indentation and per "- " or "? " before the
 * content), brackets outside quotes and comments give flow nesting. It may
 * over-count a little on odd text; it never lets the parser's recursion run away.
 */
export function checkYamlShape(text: string, what: string, blame: Blame, limits = yamlLimits()): void {
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.maxFileBytes) {
    throw refusal(blame, `${what}: ${mib(bytes)} MiB of YAML, more than the ${mib(limits.maxFileBytes)} MiB a YAML file may hold`, RAISE_HINT);
  }
  const problem = shapeProblem(text, limits);
  if (problem !== undefined) throw refusal(blame, `${what}: ${problem}`, problem.includes('MiB') ? RAISE_HINT : undefined);
}

function shapeProblem(text: string, limits: YamlLimits): string | undefined {
  const indents: number[] = [];
  let flow = 0;
  let quote: '"' | "'" | undefined;
  let docStart = 0;
  let line = 0;
  for (let start = 0; start < text.length; line++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (isDocumentMarker(text, start, end)) {
      if (start - docStart > limits.maxDocumentBytes) return documentTooBig(start - docStart, limits, line);
      docStart = start;
      indents.length = 0;
      flow = 0;
      quote = undefined;
    }
    let p = start;
    let block = indents.length;
    if (flow === 0) {
      quote = undefined; // a quote that did not close on its line was no quote (an apostrophe in plain text)
      while (p < end && text.charCodeAt(p) === 0x20) p++;
      const indent = p - start;
      const c = text[p];
      if (p < end && c !== '#' && c !== '\r') {
        while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
        indents.push(indent);
        block = indents.length;
        while ((text[p] === '-' || text[p] === '?') && (text[p + 1] === ' ' || text[p + 1] === '\t')) {
          block++;
          p += 2;
          while (text[p] === ' ' || text[p] === '\t') p++;
        }
      }
    }
    for (; p < end; p++) {
      const c = text[p];
      if (quote === '"') {
        if (c === '\\') p++;
        else if (c === '"') quote = undefined;
      } else if (quote === "'") {
        if (c === "'") quote = undefined; // '' (an escaped quote) closes and reopens
      } else if (c === '#' && (p === start || text[p - 1] === ' ' || text[p - 1] === '\t')) {
        break;
      } else if ((c === '"' || c === "'") && (p === start || ' \t[{,:'.includes(text[p - 1]!))) {
        quote = c;
      } else if (c === '[' || c === '{') {
        flow++;
      } else if ((c === ']' || c === '}') && flow > 0) {
        flow--;
      }
      if (block + flow > limits.maxDepth) return `nests deeper than ${limits.maxDepth} levels (line ${line + 1})`;
    }
    if (block > limits.maxDepth) return `nests deeper than ${limits.maxDepth} levels (line ${line + 1})`;
    start = end + 1;
  }
  if (text.length - docStart > limits.maxDocumentBytes) return documentTooBig(Buffer.byteLength(text.slice(docStart)), limits, line);
  return undefined;
}

function isDocumentMarker(text: string, start: number, end: number): boolean {
  const head = text.slice(start, start + 3);
  if (head !== '---' && head !== '...') return false;
  const next = text[start + 3];
  return start + 3 >= end || next === ' ' || next === '\t' || next === '\r';
}

function documentTooBig(bytes: number, limits: YamlLimits, line: number): string {
  return `a YAML document ending at line ${line} holds ${mib(bytes)} MiB, more than the ${mib(limits.maxDocumentBytes)} MiB one document may hold`;
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0);
}

export type YamlParseOptions = ParseOptions & DocumentOptions & SchemaOptions;

/**
 * Every document of `text`, composed one at a time and handed to `each`
 * (which may turn it into plain data: use `toJs` for the alias cap). Syntax
 * errors are the caller's to report from `doc.errors`.
 */
export function forEachYamlDocument(
  text: string,
  what: string,
  blame: Blame,
  each: (doc: Document.Parsed) => void,
  options: YamlParseOptions = {},
  limits = yamlLimits(),
): void {
  checkYamlShape(text, what, blame, limits);
  const composer = new Composer(options);
  for (const doc of composer.compose(new Parser().parse(text))) each(doc);
}

/** A document as plain data, refusing alias expansion past the cap. */
export function toJs(doc: Document.Parsed, what: string, blame: Blame, limits = yamlLimits()): unknown {
  try {
    return doc.toJS({ maxAliasCount: limits.maxAliasCount });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) throw aliasBomb(what, blame, limits);
    throw err;
  }
}

/**
 * One YAML document as plain data (yaml's parse), within the limits. Syntax
 * errors surface as yaml's own errors for the caller to word.
 */
export function parseYamlValue(text: string, what: string, blame: Blame, options: YamlParseOptions = {}, limits = yamlLimits()): unknown {
  checkYamlShape(text, what, blame, limits);
  try {
    return parse(text, { ...options, maxAliasCount: limits.maxAliasCount });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) throw aliasBomb(what, blame, limits);
    throw err;
  }
}

function aliasBomb(what: string, blame: Blame, limits: YamlLimits): AirlockError {
  return refusal(blame, `${what}: its aliases expand past ${limits.maxAliasCount} nodes (a YAML alias bomb?)`, 'write the repeated values out, or use fewer anchors and aliases');
}
