import { systemClock, type Clock } from "./clock.js";
import { defaults } from "../defaults.js";

export type BreakerState = "closed" | "open" | "half-open";

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. @defaultValue 5 */
  failureThreshold?: number;
  /** How long the circuit stays open before one probe request is let through. @defaultValue 30000 */
  cooldownMs?: number;
  /** @defaultValue the system clock */
  clock?: Clock;
}

export type BreakerListener = (state: BreakerState, info: { consecutiveFailures: number }) => void;

/**
 * A consecutive-failure circuit breaker.
 *
 * - closed: calls go through; `failureThreshold` failures in a row open it.
 * - open: no calls for `cooldownMs`.
 * - half-open: after the cool-down exactly one probe goes through; its success closes the
 *   circuit, its failure opens it for another cool-down. Other callers wait meanwhile.
 *
 * Callers ask {@link tryAcquire} before a call and report the outcome with {@link onSuccess},
 * {@link onFailure} or {@link onAbandon} (the call was never judged, e.g. aborted).
 */
export class CircuitBreaker {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  private readonly clock: Clock;
  private failures = 0;
  private openedAt: number | undefined;
  private probeInFlight = false;
  private lastReported: BreakerState = "closed";
  private readonly listeners = new Set<BreakerListener>();
  private opens = 0;

  constructor(opts: CircuitBreakerOptions = {}) {
    this.failureThreshold = opts.failureThreshold ?? defaults.breakerFailureThreshold;
    this.cooldownMs = opts.cooldownMs ?? defaults.breakerCooldownMs;
    if (!(this.failureThreshold >= 1)) throw new RangeError("failureThreshold must be >= 1");
    if (!(this.cooldownMs >= 0)) throw new RangeError("cooldownMs must be >= 0");
    this.clock = opts.clock ?? systemClock;
  }

  get state(): BreakerState {
    if (this.openedAt === undefined) return "closed";
    return this.clock.now() - this.openedAt >= this.cooldownMs ? "half-open" : "open";
  }

  /** How many times the circuit has opened (for logs and tests). */
  get openCount(): number {
    return this.opens;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Milliseconds until a probe may be sent; 0 when calls may go now (closed, or half-open without a probe out). */
  remainingCooldownMs(): number {
    if (this.openedAt === undefined) return 0;
    return Math.max(0, this.openedAt + this.cooldownMs - this.clock.now());
  }

  /** True when the caller may make a call now (and, when half-open, makes it the probe). */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "open") return false;
    if (this.probeInFlight) return false;
    this.probeInFlight = true;
    this.emit("half-open");
    return true;
  }

  /** True when a call would be admitted now, without taking the probe slot. */
  get admitting(): boolean {
    const state = this.state;
    return state === "closed" || (state === "half-open" && !this.probeInFlight);
  }

  onSuccess(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.probeInFlight = false;
    this.emit("closed");
  }

  onFailure(): void {
    this.failures += 1;
    const wasProbe = this.probeInFlight;
    this.probeInFlight = false;
    if (wasProbe || (this.openedAt === undefined && this.failures >= this.failureThreshold)) {
      this.openedAt = this.clock.now();
      this.opens += 1;
      this.emit("open");
    }
  }

  /** The admitted call ended without telling anything about the endpoint (aborted, or a client-side error). */
  onAbandon(): void {
    this.probeInFlight = false;
  }

  /** Subscribes to state changes; returns an unsubscribe function. */
  onStateChange(listener: BreakerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(state: BreakerState): void {
    if (state === this.lastReported && state !== "open") return;
    this.lastReported = state;
    for (const l of this.listeners) l(state, { consecutiveFailures: this.failures });
  }
}
