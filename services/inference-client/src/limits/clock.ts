/**
 * Time as the limiters see it. Production uses the wall clock; unit tests pass a
 * {@link ManualClock} so that rate limits, cool-downs and backoff are checked without sleeping.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale (only differences matter). */
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  // At least `ms` on now()'s scale: a timer runs off the event loop's cached time and can fire a
  // fraction of a millisecond early, and a Retry-After of 1 s must not be retried at 999.9 ms.
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const until = performance.now() + Math.max(0, ms);
      let timer: NodeJS.Timeout;
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortReason(signal!));
      };
      const wait = (left: number) => {
        timer = setTimeout(() => {
          const rest = until - performance.now();
          if (rest > 0) return wait(Math.ceil(rest));
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, left);
      };
      wait(Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new DOMException("aborted", "AbortError");
}

interface Sleeper {
  at: number;
  resolve: () => void;
}

/** A clock that only moves when told to; sleepers wake in time order as it advances. */
export class ManualClock implements Clock {
  private t: number;
  private sleepers: Sleeper[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const sleeper: Sleeper = { at: this.t + Math.max(0, ms), resolve };
      this.sleepers.push(sleeper);
      signal?.addEventListener(
        "abort",
        () => {
          this.sleepers = this.sleepers.filter((s) => s !== sleeper);
          reject(abortReason(signal));
        },
        { once: true },
      );
    });
  }

  /** Number of pending sleeps (lets a test wait until code under test is parked). */
  get pending(): number {
    return this.sleepers.length;
  }

  /** Moves time forward by `ms`, waking every sleeper that is due, and lets their continuations run. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    // Let code that is about to sleep register first, so it sleeps from the current time.
    await flushMicrotasks();
    for (;;) {
      this.sleepers.sort((a, b) => a.at - b.at);
      const next = this.sleepers[0];
      if (!next || next.at > target) break;
      this.sleepers.shift();
      this.t = next.at;
      next.resolve();
      await flushMicrotasks();
    }
    this.t = target;
    await flushMicrotasks();
  }
}

/** Lets promise continuations queued so far run (several hops, for chained awaits). */
export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
