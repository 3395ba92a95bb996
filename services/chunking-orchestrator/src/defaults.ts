/** The orchestrator's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Messages handled at once: CONCURRENCY. */
  concurrency: 4,
} as const;
