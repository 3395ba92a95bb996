import { z } from "zod";
import { documentStates } from "./schemas.js";

// ---- Responses: documented at /docs (OpenAPI), checked against real answers in the tests. ----

const timestamp = z.iso.datetime({ offset: true }).meta({ example: "2026-11-26T19:00:00.000Z" });
const uuid = z.uuid().meta({ example: "6f1c1a52-3f0e-4a8e-9a43-0b7b1d1f2c3a" });

export const ErrorResponse = z
  .object({
    error: z.object({
      code: z.string().meta({ example: "rate_limited" }),
      message: z.string(),
      details: z.unknown(),
    }),
  })
  .meta({ id: "Error", description: "Every error the API answers: a stable `code` to switch on, a `message` for a person, `details` (null, or what the code says)", example: { error: { code: "prefix_not_allowed", message: 'API key dp_1a2b3c4d may not submit "other/" in bucket scans-inbox', details: { bucket: "scans-inbox", prefixes: ["other/"], allowedPrefixes: ["2026/"] } } } });

export const BatchAccepted = z.object({ batchId: uuid, state: z.literal("listing") }).meta({ id: "BatchAccepted" });

/** `POST /batches` again with an Idempotency-Key already used with the same body: the batch it created, as it is now. */
export const BatchReplayed = z
  .object({ batchId: uuid, state: z.enum(["listing", "processing", "completed", "failed"]), replayed: z.literal(true) })
  .meta({ id: "BatchReplayed" });

/** Pages of a batch per stage, for progress bars: `expected` counts the pages of documents whose page count is known. */
export const PageProgress = z.object({ expected: z.int(), split: z.int(), rendered: z.int(), done: z.int(), failed: z.int() });

/** A batch that has made no progress for too long, and where its unfinished work waits. */
export const Stall = z
  .object({
    since: timestamp.meta({ description: "Time of the batch's last audit event (its creation when it has none): nothing has happened since." }),
    stage: z.string().meta({
      description:
        "The pipeline stage holding most of the batch's unfinished documents (`ingestion` while the listing has not finished, " +
        "then `classify`, `split-large`, `split-small`, `convert`, `inference`).",
    }),
    documents: z.int().meta({ description: "Unfinished documents at that stage." }),
    lastStage: z.string().nullable().meta({ description: "Stage of the last audit event, when there is one." }),
  })
  .nullable();

export const BatchStatusResponse = z.object({
  batchId: uuid,
  label: z.string().nullable(),
  bucket: z.string(),
  prefixes: z.array(z.string()),
  state: z.enum(["listing", "processing", "completed", "failed"]),
  onTooLarge: z.enum(["reject", "split"]),
  onDamagedPage: z.enum(["flag", "fail"]),
  failure: z.object({ code: z.string(), reason: z.string().nullable() }).nullable(),
  parentBatchId: uuid.nullable(),
  continuedIn: uuid.nullable().meta({ description: "The follow-up batch a split listing continued in." }),
  documentCount: z.int(),
  skippedCount: z.int(),
  documents: z
    .object(Object.fromEntries(documentStates.map((s) => [s, z.int()])) as Record<(typeof documentStates)[number], z.ZodInt>)
    .meta({ description: "Documents per state; every state is present." }),
  pages: PageProgress,
  listing: z.object({ finished: z.boolean(), prefixIndex: z.int(), prefix: z.string().nullable() }),
  createdAt: timestamp,
  listedAt: timestamp.nullable(),
  completedAt: timestamp.nullable(),
  stalled: Stall.meta({ description: "Set when the unfinished batch has had no audit event for STALL_AFTER_SECONDS: since when, and the stage holding most of its unfinished documents." }),
}).meta({ id: "BatchStatus" });

export const DocumentsPage = z.object({
  items: z.array(
    z.object({
      id: uuid,
      bucket: z.string(),
      key: z.string(),
      state: z.enum(documentStates),
      class: z.enum(["large", "small", "single"]).nullable(),
      size: z.number().nullable(),
      pageCount: z.int().nullable(),
      failureCode: z.string().nullable(),
      failureReason: z.string().nullable(),
      createdAt: timestamp,
      updatedAt: timestamp,
      completedAt: timestamp.nullable(),
    }),
  ),
  nextCursor: z.string().nullable(),
}).meta({ id: "DocumentsPage" });

export const UsageResponse = z
  .object({
    key: z.object({ id: uuid, prefix: z.string(), name: z.string(), owner: z.string() }),
    plan: z.object({
      name: z.string(),
      ratePerSecond: z.number(),
      burst: z.int(),
      quotaDocuments: z.int().nullable(),
      quotaPages: z.int().nullable(),
      quotaPeriod: z.enum(["day", "month"]),
    }),
    quota: z.object({
      period: z.enum(["day", "month"]),
      limit: z.int().nullable(),
      used: z.int(),
      remaining: z.int().nullable(),
      pages: z
        .object({ limit: z.int().nullable(), used: z.int(), remaining: z.int().nullable() })
        .describe("The page quota: pages are charged once per document, when its page count is first known"),
      resetsAt: timestamp,
    }),
    days: z.array(z.object({ day: z.iso.date(), requests: z.int(), throttled: z.int(), batches: z.int(), documents: z.int(), pages: z.int() })),
  })
  .meta({
    id: "Usage",
    example: {
      key: { id: "6f1c1a52-3f0e-4a8e-9a43-0b7b1d1f2c3a", prefix: "dp_1a2b3c4d", name: "scanner-3", owner: "records-team" },
      plan: { name: "standard", ratePerSecond: 10, burst: 20, quotaDocuments: 100000, quotaPages: 2000000, quotaPeriod: "day" },
      quota: {
        period: "day",
        limit: 100000,
        used: 1200,
        remaining: 98800,
        pages: { limit: 2000000, used: 30500, remaining: 1969500 },
        resetsAt: "2026-11-27T00:00:00.000Z",
      },
      days: [{ day: "2026-11-26", requests: 310, throttled: 4, batches: 3, documents: 1200, pages: 30500 }],
    },
  });

export const DocumentReport = z.object({
  documentId: uuid,
  bucket: z.string(),
  key: z.string(),
  state: z.string(),
  pageCount: z.int().nullable(),
  pngCount: z.int(),
  degradedCount: z.int().meta({ description: "Pages whose PNG no engine drew cleanly (kept under `onDamagedPage: \"flag\"`)." }),
  resultCount: z.int(),
  failureCode: z.string().nullable(),
  failureReason: z.string().nullable(),
  duplicateOfId: uuid.nullable().meta({ description: "The document of an earlier batch this one was skipped for (same content)." }),
});

/** What happened to a batch, computed from the database alone. */
export const BatchReport = z.object({
  batchId: uuid,
  label: z.string().nullable(),
  state: z.string(),
  documents: z
    .object({
      total: z.int(),
      done: z.int(),
      failed: z.int(),
      inProgress: z.int(),
      skippedNonPdf: z.int(),
      skippedDuplicates: z.int(),
    })
    .meta({
      description:
        "`done` includes `skippedDuplicates`: documents of a batch with `skipAlreadyProcessed` whose content matched a document " +
        "done in an earlier batch. They end done with no pages of their own (their `duplicateOfId` names the document whose " +
        "results stand for them), so they add nothing to `pages` and are left out of `features`' documentsWithout.",
    }),
  pages: z.object({
    total: z.int(),
    rendered: z.int(),
    degraded: z.int().meta({ description: "Rendered pages that no engine drew cleanly: their PNG is the best there is (batch option `onDamagedPage: \"flag\"`)." }),
    withResults: z.int(),
    failed: z.int(),
  }),
  degraded: z
    .array(z.object({ reason: z.string(), pages: z.int(), documents: z.int() }))
    .meta({ description: "Degraded pages per kind of damage (`zlib error`, `jbig2`, `undecodable image`, ...), most pages first." }),
  failures: z
    .array(z.object({ code: z.string(), reason: z.string(), documents: z.int() }))
    .meta({ description: "Failed documents grouped by failure code, with the most common reason of each." }),
  features: z
    .array(z.object({ feature: z.string(), pages: z.int(), documentsWith: z.int(), documentsWithout: z.int() }))
    .meta({ description: "Per feature the model reported: pages with it, and done documents with and without it." }),
  stages: z
    .array(
      z.object({
        stage: z.string(),
        attempts: z.int(),
        failures: z.int(),
        p50Ms: z.int().nullable(),
        p90Ms: z.int().nullable(),
        p99Ms: z.int().nullable(),
      }),
    )
    .meta({ description: "Duration of finished stage attempts (succeeded, failed or dead-lettered), per stage." }),
  throughput: z.object({ elapsedSeconds: z.number(), pagesPerMinute: z.number(), documentsPerMinute: z.number() }),
  stalled: Stall.meta({ description: "Set while the batch is unfinished and nothing has happened to it for the stall threshold." }),
  perDocument: z
    .array(DocumentReport)
    .optional()
    .meta({ description: "With `?documents=true`: one entry per document in key order, at most `limit` (1000) per answer." }),
  perDocumentNextCursor: z
    .string()
    .nullable()
    .optional()
    .meta({ description: "With `?documents=true`: pass it as `cursor` (with documents=true) for the next entries; null after the last." }),
}).meta({ id: "BatchReport" });

/** The answer of `POST /batches/:id/retry-failed`. */
export const RetryFailedResponse = z.object({
  batchId: uuid,
  state: z.string().meta({ description: "The batch's state after the retry: `processing` when anything was re-sent." }),
  retried: z.object({ documents: z.int(), pages: z.int() }),
  resent: z
    .object({ ingest: z.int(), singlePage: z.int(), convertedImage: z.int() })
    .meta({ description: "Messages sent: whole documents to the ingest queue, pages to the single-page or converted-image queue." }),
  byFailureCode: z.record(z.string(), z.int()).meta({ description: "Documents retried, per the failure code they had." }),
  expectedToFailAgain: z.int().meta({
    description:
      "Of those, documents whose failure was in the file itself (not a PDF, encrypted, corrupt…): they fail again unless the object was replaced.",
  }),
  note: z.string().optional().meta({ description: "Set when some retried documents will fail again." }),
}).meta({ id: "RetryFailed" });

/** A page of `GET /documents/:id`; more fields may be present (loose objects: the database's columns pass through). */
const PageDetail = z.looseObject({
  id: uuid,
  pageNumber: z.int(),
  state: z.string().meta({ description: "`pending`, `rendered`, `done` or `failed`" }),
  pdfKey: z.string().nullable(),
  imageKey: z.string().nullable(),
  width: z.int().nullable(),
  height: z.int().nullable(),
  dpi: z.int().nullable(),
  renderMs: z.int().nullable(),
  engine: z.string().nullable().meta({ description: "The engine whose image the PNG is: `mupdf`, or `pdfium` when mupdf could not open the file or drew the page with damage." }),
  degraded: z.boolean().meta({ description: "No engine drew the page cleanly: its PNG is the best image there is (batch option `onDamagedPage: \"flag\"`)." }),
  degradedReason: z.string().nullable().meta({ description: "With `degraded`: the kind of damage (`zlib error`, `jbig2`, `undecodable image`, ...)." }),
  warnings: z.array(z.string()).meta({ description: "What the engines said while drawing the page (mupdf's warnings, why an engine gave up)." }),
  failureCode: z.string().nullable(),
  failureReason: z.string().nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
  result: z
    .looseObject({ modelName: z.string(), modelVersion: z.string(), features: z.array(z.string()), latencyMs: z.int(), createdAt: timestamp })
    .nullable()
    .meta({ description: "The model's result summary, once the page is scored." }),
});

/** One record of a document's audit trail: a stage attempt and how it ended. */
const AuditRecord = z.looseObject({
  id: z.string().meta({ description: "Sequence number (a 64-bit integer, as a string)." }),
  batchId: uuid.nullable(),
  documentId: uuid.nullable(),
  pageNumber: z.int().nullable(),
  stage: z.string(),
  outcome: z.string().meta({ description: "`started`, `succeeded`, `failed`, `dead_lettered`, `replayed`, `skipped`, …" }),
  workerId: z.string(),
  attempt: z.int(),
  durationMs: z.int().nullable(),
  errorCode: z.string().nullable(),
  errorMessage: z.string().nullable(),
  messageId: z.string().nullable(),
  details: z.unknown(),
  createdAt: timestamp,
});

/** `GET /documents/:id`: the document, its pages (with result summaries) and its audit trail in time order. */
export const DocumentDetail = z
  .looseObject({
    id: uuid,
    batchId: uuid,
    bucket: z.string(),
    key: z.string(),
    size: z.number().nullable(),
    state: z.enum(documentStates),
    class: z.enum(["large", "small", "single"]).nullable(),
    pageCount: z.int().nullable(),
    failureCode: z.string().nullable(),
    failureReason: z.string().nullable(),
    duplicateOfId: uuid.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    completedAt: timestamp.nullable(),
    pages: z.array(PageDetail),
    auditTrail: z.array(AuditRecord),
  })
  .meta({ id: "Document" });

export type ErrorResponse = z.infer<typeof ErrorResponse>;
export type BatchAccepted = z.infer<typeof BatchAccepted>;
export type BatchReplayed = z.infer<typeof BatchReplayed>;
export type PageProgress = z.infer<typeof PageProgress>;
export type BatchStatus = z.infer<typeof BatchStatusResponse>;
export type DocumentsPage = z.infer<typeof DocumentsPage>;
export type UsageResponse = z.infer<typeof UsageResponse>;
export type BatchReport = z.infer<typeof BatchReport>;
export type DocumentReport = z.infer<typeof DocumentReport>;
export type RetryFailedResponse = z.infer<typeof RetryFailedResponse>;
export type DocumentDetail = z.infer<typeof DocumentDetail>;
