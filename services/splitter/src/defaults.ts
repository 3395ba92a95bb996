/** The splitter's own defaults, read by its options and its environment alike. */
export const defaults = {
  /** Pages per chunk written by the large role: CHUNK_PAGES. */
  chunkPages: 10,
  /** Messages handled at once per role: disk and memory bound the large one. */
  concurrency: { large: 1, small: 2 },
} as const;
