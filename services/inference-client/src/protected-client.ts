import { noMetrics, type Logger, type Metrics } from "@docpipe/queue";
import { retryDelayMs, type ModelBackoff } from "./limits/backoff.js";
import { defaults } from "./defaults.js";
import { CircuitBreaker } from "./limits/circuit-breaker.js";
import { systemClock, type Clock } from "./limits/clock.js";
import { Semaphore } from "./limits/semaphore.js";
import { TokenBucket } from "./limits/token-bucket.js";
import { ModelThrottledError, ModelUnavailableError } from "./model/errors.js";
import type { ModelInvoker, ModelRequest, ModelResponse } from "./model/invoker.js";

export interface ProtectionOptions {
  /** Requests in flight at once from this task. @defaultValue 4 */
  maxConcurrency?: number;
  /** Steady requests per second from this task; 0 disables the limit. @defaultValue 20 */
  ratePerSecond?: number;
  /** Requests that may go at once after a quiet spell. @defaultValue 10 */
  burst?: number;
  /** Calls per page while the breaker stays closed (first try included); then the message is retried by the queue. @defaultValue 5 */
  maxAttempts?: number;
  /**
   * Backoff between attempts (full jitter; Retry-After wins when longer), and after a 429 that
   * names no Retry-After. @defaultValue base 200 ms, cap 10 s
   */
  backoff?: ModelBackoff;
  /** Consecutive failures that open the breaker. @defaultValue 5 */
  breakerFailureThreshold?: number;
  /** How long the breaker stays open before one probe. @defaultValue 30000 */
  breakerCooldownMs?: number;
  /** @defaultValue the system clock */
  clock?: Clock;
  /** @defaultValue Math.random */
  random?: () => number;
  logger?: Logger;
  /** ModelLatency per answered call, ModelThrottled (429) and ModelServerErrors (5xx) per failed one, BreakerOpen. */
  metrics?: Metrics;
}

export interface InvocationOutcome {
  response: ModelResponse;
  /** Duration of the successful call alone. */
  latencyMs: number;
  /** Calls made for this page, the successful one included. */
  calls: number;
}

/**
 * The model endpoint behind its guards: a concurrency cap, a token bucket, retries with full
 * jitter, and a circuit breaker.
 *
 * While the breaker is open, {@link invoke} waits (it does not fail): the caller keeps its
 * queue message in flight, its visibility extended by the worker's heartbeat, and the worker
 * polls no more once every slot is taken by a waiting message. So an outage costs each held
 * message nothing beyond the receive it already had, instead of one receive per cool-down.
 * `signal` (the worker stopping) ends the wait.
 *
 * A throttled call (429) is back-pressure, not a failure: the page waits the Retry-After (or
 * backs off) and calls again, as often as it takes, holding its message the same way. It
 * neither counts towards the breaker nor resets it, and uses none of the page's attempts, so a
 * plan that admits less than the tasks offer is used to its rate instead of tripping breakers.
 */
export class ProtectedModelClient {
  readonly semaphore: Semaphore;
  readonly bucket: TokenBucket;
  readonly breaker: CircuitBreaker;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly maxAttempts: number;
  private readonly backoff: ModelBackoff;
  private readonly logger: Logger | undefined;
  private readonly metrics: Metrics;

  constructor(
    private readonly invoker: ModelInvoker,
    opts: ProtectionOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.semaphore = new Semaphore(opts.maxConcurrency ?? defaults.maxConcurrency);
    this.bucket = new TokenBucket({ ratePerSecond: opts.ratePerSecond ?? defaults.ratePerSecond, burst: opts.burst ?? defaults.burst, clock: this.clock });
    this.breaker = new CircuitBreaker({
      ...(opts.breakerFailureThreshold !== undefined && { failureThreshold: opts.breakerFailureThreshold }),
      ...(opts.breakerCooldownMs !== undefined && { cooldownMs: opts.breakerCooldownMs }),
      clock: this.clock,
    });
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? defaults.maxAttempts);
    this.backoff = opts.backoff ?? defaults.backoff;
    this.logger = opts.logger?.child({ component: "model-client" });
    this.metrics = opts.metrics ?? noMetrics;
    this.metrics.gauge("BreakerOpen", () => (this.breaker.state === "closed" ? 0 : 1));
    this.breaker.onStateChange((state, info) => {
      const fields = { breaker: state, consecutiveFailures: info.consecutiveFailures, endpoint: invoker.description };
      if (state === "open") this.logger?.warn({ ...fields, cooldownMs: this.breaker.cooldownMs }, "circuit breaker opened; holding messages");
      else this.logger?.info(fields, "circuit breaker state changed");
    });
  }

  /**
   * Scores one page. Resolves with the answer; rejects with {@link ModelUnavailableError}
   * after `maxAttempts` failed calls (throttled ones not counted) while the breaker stayed closed, with a permanent
   * `ModelRejectedError` when the endpoint refuses the page, or with the signal's reason.
   *
   * @param signal ends every wait (breaker, permit, token, backoff)
   * @param callSignal aborts a call in progress; defaults to `signal`. A stopping worker passes a
   *   separate one so that calls already made can finish while nothing new starts.
   */
  async invoke(request: ModelRequest, signal: AbortSignal, callSignal: AbortSignal = signal): Promise<InvocationOutcome> {
    let failures = 0;
    let throttles = 0;
    let calls = 0;
    for (;;) {
      await this.waitForBreaker(signal);
      const release = await this.semaphore.acquire(signal);
      let failure: ModelUnavailableError | undefined;
      let throttled: ModelThrottledError | undefined;
      try {
        await this.bucket.take(signal);
        // The breaker may have opened while we queued for a permit or a token.
        if (!this.breaker.tryAcquire()) continue;
        calls += 1;
        const started = this.clock.now();
        try {
          const response = await this.invoker.invoke(request, callSignal);
          this.breaker.onSuccess();
          const latencyMs = Math.round(this.clock.now() - started);
          this.metrics.record("ModelLatency", latencyMs);
          return { response, latencyMs, calls };
        } catch (e) {
          if (e instanceof ModelThrottledError && !callSignal.aborted) {
            // Neither health nor sickness: a probe that was throttled leaves the next call to probe.
            this.breaker.onAbandon();
            this.metrics.count("ModelThrottled");
            throttled = e;
          } else if (e instanceof ModelUnavailableError && !callSignal.aborted) {
            this.breaker.onFailure();
            if (e.status !== undefined && e.status >= 500) this.metrics.count("ModelServerErrors");
            failure = e;
          } else {
            // Aborted by us, or refused (the endpoint works; this page is the problem).
            if (callSignal.aborted) this.breaker.onAbandon();
            else this.breaker.onSuccess();
            throw e;
          }
        }
      } finally {
        release();
      }
      if (throttled) {
        throttles += 1;
        const delay = throttled.retryAfterMs ?? retryDelayMs(throttles - 1, this.backoff, undefined, this.random);
        this.logger?.debug({ errorCode: throttled.code, retryInMs: delay, throttles }, "model call throttled; waiting");
        await this.clock.sleep(delay, signal);
        continue;
      }
      if (!failure) continue;
      if (this.breaker.state !== "closed") {
        // An outage, not this page's bad luck: hold on, and start a fresh budget once it ends.
        failures = 0;
        continue;
      }
      failures += 1;
      if (failures >= this.maxAttempts) throw failure;
      const delay = retryDelayMs(failures - 1, this.backoff, failure.retryAfterMs, this.random);
      this.logger?.debug({ errorCode: failure.code, retryInMs: delay, failures }, "model call failed; retrying");
      await this.clock.sleep(delay, signal);
    }
  }

  /** Waits while the breaker is open, or half-open with its probe already out. */
  private async waitForBreaker(signal: AbortSignal): Promise<void> {
    while (!this.breaker.admitting) {
      const remaining = this.breaker.remainingCooldownMs();
      // Half-open with a probe out: look again soon; the probe's outcome decides.
      await this.clock.sleep(remaining > 0 ? remaining : 50, signal);
    }
  }
}
