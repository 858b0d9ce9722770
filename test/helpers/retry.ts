import type { RetryPolicy } from '../../shared/registry/retry.ts';

/** Retries that keep tests quick: the same behaviour, millisecond delays. */
export const FAST_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 20, maxDelayMs: 200, maxRetryAfterMs: 5_000 };
