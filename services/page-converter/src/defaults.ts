/** The page converter's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Time to render one page before its render thread is replaced: RENDER_TIMEOUT_MS. */
  renderTimeoutMs: 60_000,
  /** Deliveries of a page that time out before it fails for good: RENDER_TIMEOUT_ATTEMPTS. */
  renderTimeoutAttempts: 2,
  /** Page PDFs up to this size are read into memory and handed to a render thread; larger ones go through a file. */
  inMemoryMaxBytes: 32 * 2 ** 20,
} as const;
