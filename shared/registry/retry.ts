/**
 * When and how long to wait before trying a request again: connection errors,
 * 429 and 5xx are retried with exponential backoff and full jitter, and a
 * server's Retry-After (seconds or an HTTP date) is honoured, capped.
 */
export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** The longest Retry-After we accept before giving up on the request. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 6,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 120_000,
};

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status);
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  // A body shorter than the server's own Content-Length: the connection was cut.
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'AIRLOCK_STALL',
]);

/** A network-level failure worth another try (not TLS or DNS-not-found errors). */
export function isRetryableNetworkError(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && RETRYABLE_CODES.has(code)) return true;
    if (e.message === 'other side closed' || e.message === 'socket hang up') return true;
  }
  return false;
}

/** Milliseconds a Retry-After header asks for, or undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Delay before try number `attempt + 1` (attempt counts from 1 for the first
 * failure). Full jitter: a uniform pick in [0, min(max, base * 2^(attempt-1))],
 * but never below what the server asked for with Retry-After.
 */
export function retryDelayMs(
  attempt: number,
  policy: RetryPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.round(ceiling * random());
  if (retryAfterMs === undefined) return jittered;
  return Math.min(Math.max(retryAfterMs, jittered), policy.maxRetryAfterMs);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
