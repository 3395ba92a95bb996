/** The orchestrator's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Messages handled at once: CONCURRENCY. */
  concurrency: 4,
  /** Worker threads that open documents: mupdf work stays off the event loop. */
  pdfThreads: 1,
} as const;
