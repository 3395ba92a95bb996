/** The page converter's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Time to render one page before its render thread is replaced: RENDER_TIMEOUT_MS. */
  renderTimeoutMs: 60_000,
  /** Deliveries of a page that time out before it fails for good: RENDER_TIMEOUT_ATTEMPTS. */
  renderTimeoutAttempts: 2,
  /** Page PDFs up to this size are read into memory and handed to a render thread; larger ones go through a file. */
  inMemoryMaxBytes: 32 * 2 ** 20,
  /**
   * Pages in hand per render thread. A page spends about as long on its download, its upload and
   * its database statements as in its render, and a large page (a poster, a map) holds its thread
   * for seconds: with two pages per thread the threads waited for pages half of the time while
   * hundreds were queued (bench:e2e, per-thread busy time). The pages beyond the threads wait in
   * the pool's queue, downloaded (each a few hundred KB), so a freed thread starts the next at once.
   */
  pagesPerRenderThread: 4,
} as const;
