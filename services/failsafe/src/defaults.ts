/** SQS delays a message by at most this many seconds. */
export const SQS_MAX_DELAY_SECONDS = 900;

/** The failsafe's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Time for one page; this is its last try, so longer than the converter's: RENDER_TIMEOUT_MS. */
  renderTimeoutMs: 120_000,
  /** The slow, sure path must not starve the converter: RENDER_THREADS. */
  renderThreads: 1,
  /** Dead letters broken down at once per DLQ: CONCURRENCY. */
  concurrency: 1,
  /** Receives of one dead letter before a transient fault parks it: FAILSAFE_MAX_ATTEMPTS. */
  maxAttempts: 20,
  /** Replays of one image message before it is parked: FAILSAFE_MAX_REPLAYS. */
  maxReplays: 5,
  /** Ceiling of the first replay's delay: FAILSAFE_REPLAY_BASE_SECONDS. */
  replayBaseSeconds: 30,
  /** Longest replay delay: FAILSAFE_REPLAY_MAX_SECONDS. */
  replayMaxSeconds: SQS_MAX_DELAY_SECONDS,
} as const;
