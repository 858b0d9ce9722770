/**
 * Every failure a user can act on is an AirlockError carrying the exit code of
 * DESIGN.md section 4. Anything else that escapes is a bug (exit 1).
 */
export const ExitCode = {
  Ok: 0,
  Internal: 1,
  Usage: 2,
  Verification: 3,
  Remote: 4,
  Policy: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class AirlockError extends Error {
  readonly exitCode: ExitCode;
  /** What the user can do about it, printed after the message. */
  readonly hint?: string;

  constructor(exitCode: ExitCode, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = options?.hint;
  }
}

/** Bad flags, a bad spec or config: exit 2. */
export class UsageError extends AirlockError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ExitCode.Usage, message, options);
  }
}

/** Content that does not match what it claims (digest, size, signature, hostile bundle): exit 3. */
export class VerificationError extends AirlockError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ExitCode.Verification, message, options);
  }
}

/** A server that is unreachable, refuses auth or fails: exit 4. */
export class RemoteError extends AirlockError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ExitCode.Remote, message, options);
  }
}

/** A policy refusal (tag points elsewhere, non-fast-forward push): exit 5. */
export class PolicyError extends AirlockError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ExitCode.Policy, message, options);
  }
}

export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof AirlockError ? err.exitCode : ExitCode.Internal;
}
