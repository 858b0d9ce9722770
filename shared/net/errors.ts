/**
 * A network failure in words a user can act on: "connection refused",
 * "TLS: certificate signed by unknown authority: pass --ca-file", "host not
 * found". Node's and undici's error codes (ECONNREFUSED, UND_ERR_SOCKET,
 * UNABLE_TO_VERIFY_LEAF_SIGNATURE...) are matched here, so none of them
 * reaches a message.
 */

import { STALL_CODES, stallWords } from './timeout.ts';

/** What kind of failure: a retry summary groups by it, a preflight error names it. */
export interface NetworkCause {
  /** Short words: "connection refused". */
  words: string;
  /** TLS failures: another retry will not help. */
  tls: boolean;
}

const BY_CODE: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the server',
  ECONNABORTED: 'connection aborted',
  EPIPE: 'connection closed by the server while sending',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'host not found (DNS)',
  EAI_AGAIN: 'host name lookup failed for now (DNS)',
  ENETUNREACH: 'network unreachable',
  EHOSTUNREACH: 'host unreachable',
  EADDRNOTAVAIL: 'address not available',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_DESTROYED: 'connection closed',
  UND_ERR_ABORTED: 'request aborted',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'the answer was cut short',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'the request body did not match its length',
  UND_ERR_INFO: 'the server answered something undici cannot read',
  HPE_INVALID_CONSTANT: 'the server does not speak HTTP here',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS: the server does not speak TLS here (plain HTTP?): pass --plain-http if it is meant to',
};

const TLS_UNKNOWN_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

const TLS_OTHER: Record<string, string> = {
  CERT_HAS_EXPIRED: 'TLS: the server certificate has expired',
  CERT_NOT_YET_VALID: 'TLS: the server certificate is not valid yet (check the clock)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: the server certificate is not for this host name',
  CERT_REVOKED: 'TLS: the server certificate is revoked',
};

export const UNKNOWN_CA_WORDS = 'TLS: certificate signed by unknown authority: pass --ca-file';

/** The codes on an error and its causes, outermost first. */
function codesOf(err: unknown): { codes: string[]; messages: string[] } {
  const codes: string[] = [];
  const messages: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') codes.push(code);
    messages.push(e.message);
    // AggregateError (happy eyeballs: one error per address tried).
    if (e instanceof AggregateError) for (const inner of e.errors) if (inner instanceof Error) {
      const c = (inner as NodeJS.ErrnoException).code;
      if (typeof c === 'string') codes.push(c);
    }
  }
  return { codes, messages };
}

/** The cause of a network failure in words, or undefined when it is not one we know. */
export function networkCause(err: unknown): NetworkCause | undefined {
  const { codes, messages } = codesOf(err);
  // The innermost code is the most specific (undici wraps the socket's error).
  for (const code of [...codes].reverse()) {
    if (TLS_UNKNOWN_CA.has(code)) return { words: UNKNOWN_CA_WORDS, tls: true };
    if (TLS_OTHER[code]) return { words: TLS_OTHER[code], tls: true };
  }
  for (const code of [...codes].reverse()) {
    if (STALL_CODES.has(code)) return { words: stallWords(), tls: false };
    const words = BY_CODE[code];
    if (words) return { words, tls: code.startsWith('ERR_SSL') };
  }
  const text = messages.join(': ');
  if (/wrong version number|packet length too long|unknown protocol/i.test(text)) return { words: BY_CODE.ERR_SSL_WRONG_VERSION_NUMBER!, tls: true };
  if (/self[- ]signed certificate|unable to verify the first certificate|unable to get local issuer/i.test(text)) return { words: UNKNOWN_CA_WORDS, tls: true };
  if (/other side closed|socket hang up/i.test(text)) return { words: 'connection closed by the server', tls: false };
  return undefined;
}

/**
 * The failure in words for a message: the known cause, else the error's own
 * messages with any undici code name left out.
 */
export function describeNetworkFailure(err: unknown): string {
  const cause = networkCause(err);
  if (cause) return cause.words;
  const { messages } = codesOf(err);
  const text = [...new Set(messages.filter((m) => m !== ''))].join(': ') || String(err);
  return text.replace(/\s*\(?\bUND_ERR_[A-Z_]+\)?/g, '').trim() || 'network failure';
}
