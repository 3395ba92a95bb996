/** The splitter's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Pages per chunk written by the large role: CHUNK_PAGES. */
  chunkPages: 10,
  /** Messages handled at once per role: disk and memory bound the large one. */
  concurrency: { large: 1, small: 2 },
  /**
   * Pieces of one split uploaded at once, and the most bytes they hold together (a larger piece
   * goes alone): one at a time, a split waited on S3 and SQS for most of its time.
   */
  uploadsPerSplit: 4,
  uploadBytesPerSplit: 32 * 2 ** 20,
} as const;
