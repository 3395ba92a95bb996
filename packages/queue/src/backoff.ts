import { setTimeout as delay } from "node:timers/promises";

export interface BackoffOptions {
  /** Ceiling of the first attempt's delay. */
  base: number;
  /** No delay is ever longer than this. */
  cap: number;
  /** Source of randomness in [0, 1); tests pass a fixed one. @defaultValue `Math.random` */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: a uniform pick in `[0, min(cap, base * 2^(attempt-1))]`.
 * Full jitter spreads retries of many workers that failed together (an S3 or database blip)
 * instead of sending them back in waves. `attempt` is 1-based; units are whatever `base` is in.
 */
export function fullJitterBackoff(attempt: number, opts: BackoffOptions): number {
  const n = Math.max(1, Math.floor(attempt));
  // 2^(n-1) overflows to Infinity for huge n, which min() turns into `cap`.
  const ceiling = Math.min(opts.cap, opts.base * 2 ** (n - 1));
  const random = opts.random ?? Math.random;
  return random() * ceiling;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await delay(ms, undefined, signal ? { signal } : undefined);
}
