export interface BackoffOptions {
  /** Delay ceiling of the first retry. @defaultValue 200 */
  baseMs?: number;
  /** No retry waits longer than this (except when the server asks for longer with Retry-After). @defaultValue 10000 */
  capMs?: number;
}

/**
 * "Full jitter" exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * a uniformly random delay in [0, min(cap, base * 2^attempt)). Spreading retries over the
 * whole window keeps a fleet of clients from retrying in lock step.
 *
 * @param attempt 0 for the first retry, 1 for the second, ...
 * @param random a source of numbers in [0, 1); injectable for tests
 */
export function fullJitterDelayMs(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = opts.baseMs ?? 200;
  const cap = opts.capMs ?? 10_000;
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

/**
 * The wait before a retry: full jitter, but never less than what the server asked for in
 * Retry-After (a throttled endpoint knows better than our guess).
 */
export function retryDelayMs(
  attempt: number,
  opts: BackoffOptions = {},
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const jitter = fullJitterDelayMs(attempt, opts, random);
  return retryAfterMs !== undefined && retryAfterMs > jitter ? retryAfterMs : jitter;
}

/**
 * Parses an HTTP Retry-After header: delay-seconds or an HTTP date. Returns milliseconds,
 * or undefined when absent or unparseable.
 */
export function parseRetryAfterMs(header: string | null | undefined, nowEpochMs: number = Date.now()): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (value === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowEpochMs);
}
