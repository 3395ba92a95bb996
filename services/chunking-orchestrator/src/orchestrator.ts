import { createHash } from "node:crypto";
import { join } from "node:path";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { admitDocumentPages, type PageAdmission } from "@docpipe/api-keys";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { Prisma, type DocumentClass, type PrismaClient } from "@docpipe/db";
import { PdfPool } from "@docpipe/pdf";
import {
  failDocument,
  StageRunner,
  openedDetails,
  alreadyDone,
  type Committed,
  NOW,
  type StageResult,
  type StageScope,
  IngestMessage,
  completeIfDuplicate,
  consumedQueue,
  PermanentError,
  QueueProducer,
  createLogger,
  createWorker,
  downloadToFile,
  recordDeadLetter,
  recordPoison,
  toS3Error,
  type DuplicateOf,
  type Logger,
  type QueueKey,
  type QueueUrls,
  recordPageSplit,
  classByPageCount,
  defaultThresholds,
  DEFAULT_MAX_PAGES,
  isLargeBySize,
  type WorkerObservers,
} from "@docpipe/queue";
import { defaults } from "./defaults.js";

export interface OrchestratorOptions extends WorkerObservers {
  sqs: SQSClient;
  s3: S3Client;
  prisma: PrismaClient;
  queueUrls: Record<QueueKey, QueueUrls>;
  logger?: Logger;
  /** Worker id in audit records and logs. @defaultValue "chunking-orchestrator" */
  name?: string;
  /** @defaultValue 10 MiB */
  largeSizeBytes?: number;
  /** @defaultValue 10 */
  largePageCount?: number;
  /** Guard against absurd page counts in files under the size limit. @defaultValue 100000 */
  maxPages?: number;
  /** Messages handled at once. @defaultValue 4 */
  concurrency?: number;
  /** Parent directory of the per-message temp directories. @defaultValue os.tmpdir() */
  tmpDir?: string;
  /** Passed to the worker; tests shorten it. */
  waitTimeSeconds?: number;
  /** Visibility given on receive and on every heartbeat. @defaultValue the ingest queue's, from the catalog (60) */
  visibilityTimeoutSeconds?: number;
  /** Opens documents off the event loop (the caller closes it); otherwise one of `pdfThreads` is built at start. */
  pool?: PdfPool;
  /** Worker threads that open and count documents. @defaultValue 1 */
  pdfThreads?: number;
}

export interface Orchestrator {
  start(): void;
  stop(opts?: { timeoutMs?: number }): Promise<void>;
}

interface Route {
  cls: DocumentClass;
  size: number;
  pageCount?: number;
  /** The engine that counted the pages, and what the engines said while opening the file. */
  opened?: { engine: string; warnings: string[] };
}

/** Same content as a document done in an earlier batch, which the batch asked to skip: nothing to route. */
interface Duplicate {
  duplicate: DuplicateOf;
  size: number;
  contentHash: string;
}

const STAGE = "classify" as const;

/**
 * Consumes the ingest queue and routes each document to the large, small or single-page
 * queue. Files over the size limit are never downloaded; the rest are downloaded to a temp
 * file and opened to count their pages. What cannot be a usable PDF fails the document and
 * dead-letters the message at once.
 */
export function createOrchestrator(opts: OrchestratorOptions): Orchestrator {
  const name = opts.name ?? "chunking-orchestrator";
  const logger = opts.logger ?? createLogger({ service: name });
  const { prisma, s3, sqs, queueUrls } = opts;
  const thresholds = {
    largeSizeBytes: opts.largeSizeBytes ?? defaultThresholds.largeSizeBytes,
    largePageCount: opts.largePageCount ?? defaultThresholds.largePageCount,
  };
  const maxPages = opts.maxPages ?? DEFAULT_MAX_PAGES;
  const consumed = consumedQueue("ingest", queueUrls.ingest, opts.visibilityTimeoutSeconds);
  // A claim lasts as long as the message stays hidden: its redelivery after a crash finds the claim expired or its own.
  const stages = new StageRunner({
    prisma,
    workerId: name,
    logger,
    leaseSeconds: consumed.visibilityTimeoutSeconds,
    ...(opts.tmpDir !== undefined && { tmpDir: opts.tmpDir }),
  });
  let ownPool: PdfPool | undefined;
  const pdf = (): PdfPool => opts.pool ?? (ownPool ??= new PdfPool({ size: opts.pdfThreads ?? defaults.pdfThreads }));
  const producers = {
    large: new QueueProducer({ sqs, queueUrl: queueUrls.large.url, queue: "large", logger }),
    small: new QueueProducer({ sqs, queueUrl: queueUrls.small.url, queue: "small", logger }),
    singlePage: new QueueProducer({ sqs, queueUrl: queueUrls.singlePage.url, queue: "singlePage", logger }),
  };

  /** A missing object is S3ObjectNotFoundError (permanent, reported as source_missing); anything else retries. */
  async function headSize(bucket: string, key: string): Promise<number> {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (e) {
      throw toS3Error(e, "head", bucket, key);
    }
  }

  /**
   * Downloads the file (hashing it on the way), stores its hash, and either finds it is a
   * duplicate the batch skips (before opening it at all) or counts its pages.
   */
  async function openSource(
    msg: IngestMessage,
    a: StageScope,
  ): Promise<
    | { contentHash: string; duplicate: DuplicateOf; size: number }
    | { contentHash: string; pageCount: number; opened: Route["opened"]; size: number }
    | { large: true; size: number }
  > {
    const path = join(await a.dir(), "source.pdf");
    const hash = createHash("sha256");
    const size = await downloadToFile(s3, msg.bucket, msg.key, path, { hash });
    // Replaced by a bigger file since it was listed: over the limit, size alone decides.
    if (isLargeBySize(size, thresholds)) return { large: true, size };
    const contentHash = hash.digest("hex");
    const duplicate = await completeIfDuplicate(prisma, msg, contentHash);
    if (duplicate) return { contentHash, duplicate, size };
    const { pageCount, repaired, engine, warnings } = await pdf().inspect(path, { maxPages });
    if (repaired) a.log.warn({ pageCount }, "source pdf was repaired on open");
    if (warnings.length > 0) a.log.debug({ engine, warnings }, "pdf engine messages while opening");
    return { contentHash, pageCount, opened: { engine, warnings }, size };
  }

  async function route(msg: IngestMessage, a: StageScope): Promise<Route | Duplicate> {
    // The listing's size saves a HeadObject per document; a file that changed since is caught
    // by its download below (or, if it was listed large, by the large splitter, which reads it).
    const listed = msg.size ?? (await headSize(msg.bucket, msg.key));
    // Over the limit the file is not downloaded here: the large splitter hashes it.
    if (isLargeBySize(listed, thresholds)) return { cls: "large", size: listed };
    const opened = await openSource(msg, a);
    if ("large" in opened) return { cls: "large", size: opened.size };
    if ("duplicate" in opened) return { duplicate: opened.duplicate, size: opened.size, contentHash: opened.contentHash };
    return { cls: classByPageCount(opened.pageCount, thresholds), size: opened.size, pageCount: opened.pageCount, opened: opened.opened };
  }

  async function dispatch(msg: IngestMessage, r: Route): Promise<void> {
    const base = { version: 1 as const, batchId: msg.batchId, documentId: msg.documentId, bucket: msg.bucket, key: msg.key };
    switch (r.cls) {
      case "large":
        await producers.large.send([{ ...base, size: r.size, ...(r.pageCount ? { pageCount: r.pageCount } : {}) }]);
        return;
      case "small":
        await producers.small.send([{ ...base, firstPage: 1, lastPage: r.pageCount ?? 1 }]);
        return;
      case "single":
        // The page row exists before its message does, so the converter always finds it.
        await recordPageSplit(prisma, msg, 1, msg.key);
        await producers.singlePage.send([{ ...base, pageNumber: 1 }]);
        return;
    }
  }

  /**
   * The state moves past `queued` only after the routed message was sent, so a document that
   * has moved on was routed already: a redelivery has nothing left to do.
   */
  async function unrouted(msg: IngestMessage) {
    const doc = await prisma.document.findUnique({ where: { id: msg.documentId }, select: { state: true } });
    if (!doc) throw new PermanentError("document_missing", `document ${msg.documentId} not found`);
    if (doc.state !== "queued") return alreadyDone({ state: doc.state });
    return undefined;
  }

  async function classify(msg: IngestMessage, a: StageScope): Promise<StageResult | Committed> {
    const r = await route(msg, a);
    if ("duplicate" in r) {
      // completeIfDuplicate has ended the document done (and settled its batch), or made it wait for the one being processed.
      await prisma.document.update({ where: { id: msg.documentId }, data: { size: BigInt(r.size) } });
      const { documentId: duplicateOf, batchId, waiting } = r.duplicate;
      a.log.info({ duplicateOf, waiting }, waiting ? "same content being processed in another batch; document waits for it" : "same content done in an earlier batch; document skipped");
      return { outcome: "skipped", details: { duplicateOf, batchId, waiting, contentHash: r.contentHash } };
    }
    // Facts first (they never regress anything), then the message, then the state.
    await prisma.document.update({ where: { id: msg.documentId }, data: { class: r.cls, size: BigInt(r.size) } });
    if (r.pageCount !== undefined) {
      // The page count's first record, charged to the key's page quota: a document over it ends here, before any page work.
      const pages = await admitDocumentPages(prisma, msg.documentId, r.pageCount);
      if (!pages.admitted) return refusePages(msg, pages, a);
    }
    await dispatch(msg, r);
    // The state, with the succeeded record, in one statement.
    const [state, from] = r.cls === "single" ? (["converting", ["queued", "classified"]] as const) : (["classified", ["queued"]] as const);
    const routed = Prisma.sql`routed_document AS (
      UPDATE "Document" SET "state" = ${state}::"DocumentState", "updatedAt" = ${NOW}
      WHERE "id" = ${msg.documentId}::uuid AND "state"::text = ANY(${[...from]}::text[]))`;
    a.log.info({ class: r.cls, size: r.size, pageCount: r.pageCount }, "document classified");
    return (await a.commitStatement({ class: r.cls, size: r.size, pageCount: r.pageCount ?? null, ...openedDetails(r.opened) }, { with: routed })).committed;
  }

  /** A document whose pages do not fit its key's page quota: failed with the reason, its message done (not dead-lettered). */
  async function refusePages(msg: IngestMessage, refusal: Exclude<PageAdmission, { admitted: true }>, a: StageScope): Promise<StageResult> {
    await failDocument(prisma, msg, { code: refusal.code, reason: refusal.reason });
    a.log.info({ limit: refusal.limit, used: refusal.used }, "document over its key's page quota; failed before any page work");
    return { outcome: "failed", error: { code: refusal.code, message: refusal.reason }, details: { limit: refusal.limit, used: refusal.used } };
  }

  const worker = createWorker<IngestMessage>({
    name,
    ...consumed,
    sqs,
    parse: (body) => IngestMessage.parse(body),
    handle: (msg, ctx) => stages.run({ stage: STAGE, unit: msg, ctx, lookup: () => unrouted(msg), work: (a) => classify(msg, a) }),
    onPoison: (info) => recordPoison(stages.audit, STAGE, info),
    onDeadLetter: (msg, error, ctx) => recordDeadLetter(stages, STAGE, msg, error, ctx),
    liveness: opts.liveness,
    metrics: opts.metrics,
    concurrency: opts.concurrency ?? defaults.concurrency,
    logger,
    ...(opts.waitTimeSeconds !== undefined ? { waitTimeSeconds: opts.waitTimeSeconds } : {}),
  });

  return {
    start: () => {
      // The threads load mupdf while the first messages are on their way, not after the first one is in hand.
      pdf();
      worker.start();
    },
    stop: async (o) => {
      await worker.stop(o);
      await stages.flush();
      await ownPool?.close();
    },
  };
}
