/**
 * Deterministic S3 keys in the work bucket. A retried stage writes the same keys, so a
 * redelivery overwrites instead of duplicating.
 */
export interface DocumentRef {
  readonly batchId: string;
  readonly documentId: string;
}

const documentPrefix = (d: DocumentRef): string => `batches/${d.batchId}/documents/${d.documentId}`;

export const chunkKey = (d: DocumentRef, first: number, last: number): string =>
  `${documentPrefix(d)}/chunks/${first}-${last}.pdf`;

export const pageKey = (d: DocumentRef, page: number): string => `${documentPrefix(d)}/pages/${page}.pdf`;

export const imageKey = (d: DocumentRef, page: number): string => `${documentPrefix(d)}/images/${page}.png`;

/**
 * Whether a key is one of the document's own in the work bucket (a chunk, page or image), as
 * opposed to its source: a single-page document's page PDF is the source object itself.
 */
export const isWorkKey = (d: DocumentRef, key: string): boolean => key.startsWith(`${documentPrefix(d)}/`);

/** The prefix under which PNGs land; S3 notifications on it feed the converted-image queue. */
export const IMAGES_KEY_PATTERN = /^batches\/([0-9a-f-]{36})\/documents\/([0-9a-f-]{36})\/images\/(\d+)\.png$/;

/** Reads the ids back out of an image key, or returns undefined for any other key. */
export function parseImageKey(key: string): (DocumentRef & { pageNumber: number }) | undefined {
  const m = IMAGES_KEY_PATTERN.exec(key);
  if (!m) return undefined;
  return { batchId: m[1]!, documentId: m[2]!, pageNumber: Number(m[3]) };
}

/**
 * Object tag on intermediates (chunks and single-page PDFs): S3 lifecycle rules cannot match
 * `chunks/` in the middle of a key, so the bucket expires intermediates by this tag instead.
 */
export const INTERMEDIATE_TAG = "docpipe-intermediate";
export type IntermediateKind = "chunk" | "page";
export const intermediateTags = (kind: IntermediateKind): Record<string, string> => ({ [INTERMEDIATE_TAG]: kind });
