/** The inference client's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Time for one model call: MODEL_TIMEOUT_MS. */
  modelTimeoutMs: 30_000,
  /** Model calls in flight at once from one task: MODEL_MAX_CONCURRENCY. */
  maxConcurrency: 4,
  /** Steady model calls per second from one task: MODEL_RATE_PER_SECOND. */
  ratePerSecond: 20,
  /** Calls that may go at once after a quiet spell: MODEL_BURST. */
  burst: 10,
  /** Calls per page while the breaker stays closed: MODEL_MAX_ATTEMPTS. */
  maxAttempts: 5,
  /** The retry window: MODEL_RETRY_BASE_MS and MODEL_RETRY_CAP_MS. */
  backoff: { baseMs: 200, capMs: 10_000 },
  /** Consecutive failures that open the breaker: BREAKER_FAILURE_THRESHOLD. */
  breakerFailureThreshold: 5,
  /** How long the breaker stays open before one probe: BREAKER_COOLDOWN_MS. */
  breakerCooldownMs: 30_000,
} as const;
