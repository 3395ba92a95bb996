import { z } from "zod";

/**
 * The message catalog: every queue of the pipeline, its message schema (with a version
 * field), its visibility timeout and its retry policy, in one place. Infrastructure, the
 * local stack and the workers all read queue settings from here.
 */

const id = z.uuid();
const s3Object = { bucket: z.string().min(1), key: z.string().min(1) };

/** ingestion → chunking-orchestrator: one document found under a batch's prefixes. */
export const IngestMessage = z.strictObject({
  version: z.literal(1),
  batchId: id,
  documentId: id,
  ...s3Object,
  /** Size from the listing: the orchestrator classifies by it and asks S3 (HeadObject) only when it is absent. */
  size: z.number().int().nonnegative().optional(),
});

/** chunking-orchestrator → splitter (large role): split into ≤10-page chunks. */
export const LargeDocMessage = z.strictObject({
  version: z.literal(1),
  batchId: id,
  documentId: id,
  ...s3Object,
  size: z.number().int().nonnegative(),
  /** Known when the orchestrator opened the file (over the page limit, under the size limit). */
  pageCount: z.number().int().positive().optional(),
});

/**
 * orchestrator or large splitter → splitter (small role): split into single pages.
 * The file holds pages `firstPage..lastPage` of the original document, in order.
 */
export const SmallDocMessage = z
  .strictObject({
    version: z.literal(1),
    batchId: id,
    documentId: id,
    ...s3Object,
    firstPage: z.number().int().positive(),
    lastPage: z.number().int().positive(),
  })
  .refine((m) => m.lastPage >= m.firstPage, { message: "lastPage must not be before firstPage" });

/**
 * orchestrator or small splitter → page-converter: render one page to PNG.
 * The file is either a single-page PDF or the original one-page document.
 */
export const SinglePageMessage = z.strictObject({
  version: z.literal(1),
  batchId: id,
  documentId: id,
  ...s3Object,
  /** 1-based page number in the original document. */
  pageNumber: z.number().int().positive(),
});

export type IngestMessage = z.infer<typeof IngestMessage>;
export type LargeDocMessage = z.infer<typeof LargeDocMessage>;
export type SmallDocMessage = z.infer<typeof SmallDocMessage>;
export type SinglePageMessage = z.infer<typeof SinglePageMessage>;

export interface QueueSpec {
  /** Base name; the deployed name is `${prefix}${name}` and its DLQ `${prefix}${name}-dlq`. */
  readonly name: string;
  /** Long enough for one typical message; long jobs extend it with heartbeats. */
  readonly visibilityTimeoutSeconds: number;
  /** Receives before SQS moves a message to the DLQ (transient failures only; permanent ones go at once). */
  readonly maxReceiveCount: number;
}

export const queues = {
  ingest: { name: "ingest", visibilityTimeoutSeconds: 60, maxReceiveCount: 5 },
  large: { name: "large", visibilityTimeoutSeconds: 300, maxReceiveCount: 3 },
  small: { name: "small", visibilityTimeoutSeconds: 120, maxReceiveCount: 5 },
  singlePage: { name: "single-page", visibilityTimeoutSeconds: 120, maxReceiveCount: 5 },
  /** Receives S3 object-created notifications for the images prefix, not our own messages. */
  convertedImage: { name: "converted-image", visibilityTimeoutSeconds: 120, maxReceiveCount: 8 },
  /**
   * Messages the failsafe gave up on, parked for a person (who reads them, then redrives them
   * with `docpipe redrive parked --to <queue>` or deletes them). No service consumes it; the
   * receive count is high so that looking at a message does not move it on to its DLQ.
   */
  parked: { name: "parked", visibilityTimeoutSeconds: 300, maxReceiveCount: 100 },
} as const satisfies Record<string, QueueSpec>;

export type QueueKey = keyof typeof queues;

/** The queues whose messages continue a unit, which the reconciler watches and re-sends to; `parked` is a person's, not the pipeline's. */
export const RECONCILED_QUEUES = ["ingest", "large", "small", "singlePage", "convertedImage"] as const satisfies readonly QueueKey[];
export type ReconciledQueue = (typeof RECONCILED_QUEUES)[number];

/** Schemas of the queues whose messages we write ourselves. */
export const messageSchemas = {
  ingest: IngestMessage,
  large: LargeDocMessage,
  small: SmallDocMessage,
  singlePage: SinglePageMessage,
} as const;

export const dlqName = (spec: QueueSpec): string => `${spec.name}-dlq`;

/** Pipeline stages as they appear in audit records. */
export const stages = [
  "ingestion",
  "classify",
  "split-large",
  "split-small",
  "convert",
  "inference",
  "failsafe",
] as const;
export type Stage = (typeof stages)[number];
