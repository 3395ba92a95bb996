import { fullJitterBackoff } from "@docpipe/queue";

/** The window of the waits between model calls for one page. */
export interface ModelBackoff {
  /** Delay ceiling of the first retry. */
  baseMs: number;
  /** No retry waits longer than this (except when the server asks for longer with Retry-After). */
  capMs: number;
}

/**
 * The wait before a retry: exponential with full jitter (the pipeline's one backoff), but
 * never less than what the server asked for in Retry-After (a throttled endpoint knows better
 * than our guess).
 *
 * @param attempt 0 for the first retry, 1 for the second, ...
 * @param random a source of numbers in [0, 1); injectable for tests
 */
export function retryDelayMs(attempt: number, backoff: ModelBackoff, retryAfterMs?: number, random: () => number = Math.random): number {
  const jitter = Math.floor(fullJitterBackoff(attempt + 1, { base: backoff.baseMs, cap: backoff.capMs, random }));
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
