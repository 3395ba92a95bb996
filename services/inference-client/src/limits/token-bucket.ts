import { systemClock, type Clock } from "./clock.js";

export interface TokenBucketOptions {
  /** Tokens added per second: the steady request rate. `0` or `Infinity` disables the limit. */
  ratePerSecond: number;
  /** Bucket size: how many requests may go at once after a quiet spell. @defaultValue 1 */
  burst?: number;
  /** @defaultValue the system clock */
  clock?: Clock;
}

/**
 * A token bucket: requests spend one token each; tokens refill continuously at the steady
 * rate up to `burst`. The bucket starts full, so a fresh task may send `burst` at once.
 */
export class TokenBucket {
  private readonly rate: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(opts: TokenBucketOptions) {
    if (!(opts.ratePerSecond >= 0)) throw new RangeError("ratePerSecond must be >= 0");
    const burst = opts.burst ?? 1;
    if (!(burst >= 1)) throw new RangeError("burst must be >= 1");
    this.rate = opts.ratePerSecond;
    this.burst = burst;
    this.clock = opts.clock ?? systemClock;
    this.tokens = burst;
    this.last = this.clock.now();
  }

  private get unlimited(): boolean {
    return this.rate === 0 || this.rate === Infinity;
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = now - this.last;
    this.last = now;
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }

  /** Takes a token if one is available now. */
  tryTake(): boolean {
    if (this.unlimited) return true;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Milliseconds until a token will be available (0 when one is available now). */
  msUntilToken(): number {
    if (this.unlimited) return 0;
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }

  /** Waits for a token and takes it; rejects if `signal` aborts first. */
  async take(signal?: AbortSignal): Promise<void> {
    while (!this.tryTake()) {
      await this.clock.sleep(Math.max(1, this.msUntilToken()), signal);
    }
  }

  /** Tokens available now (fractional), for logs and tests. */
  get available(): number {
    if (this.unlimited) return Infinity;
    this.refill();
    return this.tokens;
  }
}
