import type { DocumentClass } from "@docpipe/db";

/** Thresholds of the classification; see DESIGN.md. */
export interface ClassifyThresholds {
  /** A document larger than this (bytes) is large without being opened. @defaultValue 10 MiB */
  largeSizeBytes: number;
  /** A document with more pages than this is large. @defaultValue 10 */
  largePageCount: number;
}

export const defaultThresholds: ClassifyThresholds = { largeSizeBytes: 10 * 1024 * 1024, largePageCount: 10 };

/** Size alone decides over the limit, so a multi-gigabyte file is never opened just to count its pages. */
export function isLargeBySize(size: number, t: ClassifyThresholds): boolean {
  return size > t.largeSizeBytes;
}

/** Class of a document under the size limit, from its page count (at least 1). */
export function classByPageCount(pageCount: number, t: ClassifyThresholds): DocumentClass {
  if (pageCount > t.largePageCount) return "large";
  return pageCount === 1 ? "single" : "small";
}
