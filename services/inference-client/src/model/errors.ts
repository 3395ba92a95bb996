import { PermanentError, TransientError, type DocpipeErrorOptions } from "@docpipe/queue";

/**
 * The endpoint failed in a way a later call may not: 5xx, a timeout, a refused connection, a
 * malformed answer, a refused key. Counts against the circuit breaker and is retried.
 */
export class ModelUnavailableError extends TransientError {
  /** Milliseconds the endpoint asked us to wait (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined;
  /** HTTP status, when there was a response. */
  readonly status: number | undefined;
  constructor(code: string, message: string, opts?: DocpipeErrorOptions & { retryAfterMs?: number; status?: number }) {
    const { retryAfterMs, status, ...rest } = opts ?? {};
    super(code, message, rest);
    this.retryAfterMs = retryAfterMs;
    this.status = status;
  }
}

/**
 * The endpoint, or the usage plan in front of it, asked us to slow down: a 429, or SageMaker's
 * ThrottlingException. Back-pressure, not a fault: the caller waits the Retry-After (or backs
 * off) and calls again, without counting it against the breaker or the page's attempts.
 */
export class ModelThrottledError extends ModelUnavailableError {}

/**
 * The endpoint answered and refused this request (a 4xx other than 401/403/408/429): the page
 * itself is the problem, so no retry helps and the message is dead-lettered.
 */
export class ModelRejectedError extends PermanentError {
  readonly status: number | undefined;
  constructor(code: string, message: string, opts?: DocpipeErrorOptions & { status?: number }) {
    const { status, ...rest } = opts ?? {};
    super(code, message, rest);
    this.status = status;
  }
}

/**
 * Sorts an HTTP status into retryable or not. 401/403 are retryable on purpose: they mean our
 * credentials or the gateway are misconfigured (or the key was rotated, which the HTTP invoker
 * handles by reading it again), which an operator fixes; dead-lettering every page of a batch
 * for it would be worse. They still count against the breaker.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 401 || status === 403 || status >= 500;
}
