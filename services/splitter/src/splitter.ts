import { createHash } from "node:crypto";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { admitDocumentPages } from "@docpipe/api-keys";
import { Prisma, queryRows, type PrismaClient } from "@docpipe/db";
import { PdfPool } from "@docpipe/pdf";
import {
  failDocument,
  StageRunner,
  openedDetails,
  alreadyDone,
  LargeDocMessage,
  PermanentError,
  QueueProducer,
  SmallDocMessage,
  chunkKey,
  completeIfDuplicate,
  consumedQueue,
  createLogger,
  createWorker,
  DEFAULT_MAX_PAGES,
  downloadToFile,
  pageKey,
  recordDeadLetter,
  recordPoison,
  uploadFile,
  type StageResult,
  type StageScope,
  type Logger,
  type QueueKey,
  type QueueUrls,
  intermediateTags,
  recordPagesSplit,
  documentSplitWrites,
  recordChunks,
  rangeSplitWrites,
  type Committed,
  type TaskProtection,
  type WorkerObservers,
} from "@docpipe/queue";
import { defaults } from "./defaults.js";
import { PieceUploads } from "./uploads.js";

export type SplitterRole = "large" | "small";

export interface SplitterOptions extends WorkerObservers {
  /** `large`: large queue → ≤chunkPages chunks on the small queue; `small`: small queue → single pages. */
  role: SplitterRole;
  sqs: SQSClient;
  s3: S3Client;
  prisma: PrismaClient;
  queueUrls: Record<QueueKey, QueueUrls>;
  /** Bucket that receives chunks and pages. */
  workBucket: string;
  logger?: Logger;
  /** Worker id in audit records and logs. @defaultValue `splitter-${role}` */
  name?: string;
  /** Pages per chunk (large role). @defaultValue 10 */
  chunkPages?: number;
  /** Documents with more pages fail as `too_many_pages`. @defaultValue 100000 */
  maxPages?: number;
  /** Messages handled at once. @defaultValue 1 for large, 2 for small */
  concurrency?: number;
  /** Visibility given on receive and on every heartbeat. @defaultValue the queue's, from the catalog (large 300, small 120) */
  visibilityTimeoutSeconds?: number;
  /** Visibility heartbeat period; long splits keep their message while they run. @defaultValue a third of the visibility timeout */
  heartbeatSeconds?: number;
  /** Parent directory of the per-message temp directories. @defaultValue os.tmpdir() */
  tmpDir?: string;
  /** Passed to the worker; tests shorten it. */
  waitTimeSeconds?: number;
  /**
   * Held while a large split runs (the large role only): a split can outlast the 120 s between
   * SIGTERM and SIGKILL, so scale-in and deployments wait for it. @defaultValue none
   */
  taskProtection?: TaskProtection;
  /**
   * Sources of at least this many bytes are inspected and split by native mutool, as every file
   * of 2 GiB or more is (mupdf's WASM build cannot read past 2 GiB; it cannot be raised beyond
   * that). Lowering it sends small files down the same path: how tests cover it without
   * gigabytes. @defaultValue 2 GiB
   */
  nativeMinBytes?: number;
  /** Opens and splits documents off the event loop (the caller closes it); otherwise one of `pdfThreads` is built at start. */
  pool?: PdfPool;
  /**
   * Worker threads that open and split documents. A split holds its thread until it ends, so
   * fewer threads than messages in hand make splits wait. @defaultValue the concurrency
   */
  pdfThreads?: number;
}

export interface Splitter {
  start(): void;
  stop(opts?: { timeoutMs?: number }): Promise<void>;
}

/** Messages are sent in groups this large: one SendMessageBatch each. */
const SEND_GROUP = 10;

/**
 * Collects messages and sends them SEND_GROUP at a time, so a split makes one SQS call per ten
 * pieces; `beforeSend` writes what must exist before a group's messages do (the pages' rows).
 */
function batcher<K extends "small" | "singlePage">(
  producer: QueueProducer<K>,
  beforeSend?: (group: Parameters<QueueProducer<K>["send"]>[0]) => Promise<void>,
) {
  type Input = Parameters<QueueProducer<K>["send"]>[0][number];
  let pending: Input[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const group = pending;
    pending = [];
    await beforeSend?.(group);
    await producer.send(group);
  };
  return {
    add: async (m: Input): Promise<void> => {
      pending.push(m);
      if (pending.length >= SEND_GROUP) await flush();
    },
    flush,
  };
}

/**
 * The splitter service. Both roles stream their input from S3 to a local file and open it with
 * random-access reads, so memory does not grow with the file; pieces come back from the worker
 * in memory and are uploaded from there, several at once (see PieceUploads). Keys, rows and messages are deterministic per page range,
 * so a redelivered message rewrites the same objects and upserts the same rows.
 */
export function createSplitter(opts: SplitterOptions): Splitter {
  const { role, prisma, s3, sqs, queueUrls, workBucket } = opts;
  const name = opts.name ?? `splitter-${role}`;
  const logger = opts.logger ?? createLogger({ service: name });
  const chunkPages = opts.chunkPages ?? defaults.chunkPages;
  const maxPages = opts.maxPages ?? DEFAULT_MAX_PAGES;
  const consumed = consumedQueue(role, queueUrls[role], opts.visibilityTimeoutSeconds);
  const stages = new StageRunner({
    prisma,
    workerId: name,
    logger,
    leaseSeconds: consumed.visibilityTimeoutSeconds,
    ...(opts.tmpDir !== undefined && { tmpDir: opts.tmpDir }),
  });
  const concurrency = opts.concurrency ?? defaults.concurrency[role];
  // What inspect and split are given alike, so a file is read by the same engine throughout.
  const limits = { maxPages, ...(opts.nativeMinBytes !== undefined && { nativeMinBytes: opts.nativeMinBytes }) };
  let ownPool: PdfPool | undefined;
  const pdf = (): PdfPool => opts.pool ?? (ownPool ??= new PdfPool({ size: opts.pdfThreads ?? concurrency }));
  const smallProducer = new QueueProducer({ sqs, queueUrl: queueUrls.small.url, queue: "small", logger });
  const singlePageProducer = new QueueProducer({ sqs, queueUrl: queueUrls.singlePage.url, queue: "singlePage", logger });
  const pieceUploads = () => new PieceUploads(defaults.uploadsPerSplit, defaults.uploadBytesPerSplit);

  /**
   * A document already done or failed has nothing left to split; a missing one is a message
   * that belongs to no batch.
   */
  async function unfinished(documentId: string) {
    const [doc] = await queryRows<{ state: string }>(prisma, Prisma.sql`SELECT state::text AS state FROM "Document" WHERE id = ${documentId}::uuid`);
    if (!doc) throw new PermanentError("document_missing", `document ${documentId} not found`);
    if (doc.state === "failed" || doc.state === "done") return alreadyDone({ state: doc.state });
    return undefined;
  }

  /** Moves the document forward to `state` from any of `from`; never backwards. */
  async function advance(documentId: string, from: ("queued" | "classified" | "splitting")[], state: "splitting" | "converting") {
    await prisma.document.updateMany({ where: { id: documentId, state: { in: from } }, data: { state } });
  }

  async function splitLarge(msg: LargeDocMessage, a: StageScope): Promise<StageResult | Committed> {
    const { log } = a;
    const dir = await a.dir();
    if (msg.pageCount !== undefined && msg.pageCount > maxPages) {
      // Counted by the orchestrator already: no need to download gigabytes to refuse it.
      throw new PermanentError("too_many_pages", `${msg.pageCount} pages is over MAX_PAGES ${maxPages}`);
    }
    await advance(msg.documentId, ["queued", "classified"], "splitting");
    const src = join(dir, "source.pdf");
    // Over the size limit the orchestrator never downloaded the file: its content hash is taken
    // here, on the stream, and a duplicate the batch skips ends before the file is even opened.
    const hash = msg.pageCount === undefined ? createHash("sha256") : undefined;
    const bytes = await downloadToFile(s3, msg.bucket, msg.key, src, { ...(hash && { hash }) });
    if (hash) {
      const contentHash = hash.digest("hex");
      const duplicate = await completeIfDuplicate(prisma, msg, contentHash);
      if (duplicate) {
        const { documentId: duplicateOf, batchId, waiting } = duplicate;
        log.info({ duplicateOf, waiting }, waiting ? "same content being processed in another batch; document waits for it" : "same content done in an earlier batch; document skipped");
        return { outcome: "skipped", details: { duplicateOf, batchId, waiting, contentHash, bytes } };
      }
    }
    // Not a PDF, encrypted, corrupt or over MAX_PAGES: a permanent PdfError.
    const opened = await pdf().inspect(src, limits);
    const { pageCount } = opened;
    if (opened.warnings.length > 0) log.debug({ engine: opened.engine, warnings: opened.warnings }, "pdf engine messages while opening");
    if (msg.pageCount !== undefined && msg.pageCount !== pageCount) {
      log.warn({ expected: msg.pageCount, pageCount }, "page count differs from the orchestrator's");
    }
    // Over the size limit the orchestrator never opened the file: this is the first count, charged
    // to the key's page quota; a document over it ends here, before any chunk is written.
    const pages = await admitDocumentPages(prisma, msg.documentId, pageCount);
    if (!pages.admitted) {
      await failDocument(prisma, msg, { code: pages.code, reason: pages.reason });
      log.info({ pageCount, limit: pages.limit, used: pages.used }, "document over its key's page quota; failed before any page work");
      return { outcome: "failed", error: { code: pages.code, message: pages.reason }, details: { pageCount, limit: pages.limit, used: pages.used } };
    }
    // The chunks' rows exist before their messages do: one statement per group.
    const send = batcher(smallProducer, (group) => recordChunks(prisma, msg, group));
    let chunks = 0;
    // Chunks come back from the worker in memory: no chunk file.
    const uploads = pieceUploads();
    try {
      for await (const chunk of pdf().splitPieces(src, { dir: join(dir, "chunks"), pagesPerChunk: chunkPages, ...limits })) {
        // A stop (SIGTERM) releases a long split between pieces instead of holding the task past its grace period.
        a.throwIfStopping();
        const key = chunkKey(msg, chunk.first, chunk.last);
        await uploads.add(chunk.bytes.byteLength, async () => {
          await uploadFile(s3, workBucket, key, chunk.bytes, "application/pdf", { tags: intermediateTags("chunk") });
          await send.add({ version: 1, batchId: msg.batchId, documentId: msg.documentId, bucket: workBucket, key,
            firstPage: chunk.first, lastPage: chunk.last });
        });
        chunks++;
      }
      await uploads.settle();
    } finally {
      await uploads.idle();
    }
    await send.flush();
    log.info({ pageCount, chunks, bytes }, "document split into chunks");
    // The completion record: a duplicate delivery finds the document split, and the reconciler
    // knows its chunks are each on their own from here on.
    return (await a.commitStatement({ pageCount, chunks, bytes, ...openedDetails(opened) }, { with: documentSplitWrites(msg) })).committed;
  }

  async function splitSmall(msg: SmallDocMessage, a: StageScope): Promise<Committed> {
    const { log } = a;
    const dir = await a.dir();
    if (msg.lastPage > maxPages) {
      throw new PermanentError("too_many_pages", `page ${msg.lastPage} is past MAX_PAGES ${maxPages}`);
    }
    const src = join(dir, "source.pdf");
    await downloadToFile(s3, msg.bucket, msg.key, src);
    const expected = msg.lastPage - msg.firstPage + 1;
    const opened = await pdf().inspect(src, limits);
    const { pageCount } = opened;
    if (opened.warnings.length > 0) log.debug({ engine: opened.engine, warnings: opened.warnings }, "pdf engine messages while opening");
    if (pageCount !== expected) {
      throw new PermanentError("page_count_mismatch",
        `s3://${msg.bucket}/${msg.key} has ${pageCount} pages, the message names pages ${msg.firstPage}-${msg.lastPage}`);
    }
    // The pages' rows exist before their messages do (one statement per group, which also moves
    // the document on to splitting), so the converter always finds them.
    const send = batcher(singlePageProducer, (group) =>
      recordPagesSplit(prisma, msg, group.map((m) => ({ pageNumber: m.pageNumber, pdfKey: m.key })), { splitting: true }),
    );
    const uploads = pieceUploads();
    try {
      for await (const piece of pdf().splitPieces(src, { dir: join(dir, "pages"), pagesPerChunk: 1, ...limits })) {
        a.throwIfStopping();
        // Page numbers are the original document's: a chunk of pages 731-740 yields pages 731..740.
        const pageNumber = msg.firstPage + piece.first - 1;
        const key = pageKey(msg, pageNumber);
        await uploads.add(piece.bytes.byteLength, async () => {
          await uploadFile(s3, workBucket, key, piece.bytes, "application/pdf", { tags: intermediateTags("page") });
          await send.add({ version: 1, batchId: msg.batchId, documentId: msg.documentId, bucket: workBucket, key, pageNumber });
        });
      }
      await uploads.settle();
    } finally {
      await uploads.idle();
    }
    await send.flush();
    log.info({ pages: expected }, "split into pages");
    // The completion record (the range's chunk row, made here for a small document) and the document's move to converting.
    return (await a.commitStatement({ pages: expected, ...openedDetails(opened) }, { with: rangeSplitWrites(msg, msg) })).committed;
  }

  const common = {
    name,
    sqs,
    logger,
    liveness: opts.liveness,
    metrics: opts.metrics,
    ...(opts.heartbeatSeconds !== undefined && { heartbeatSeconds: opts.heartbeatSeconds }),
    ...(opts.waitTimeSeconds !== undefined && { waitTimeSeconds: opts.waitTimeSeconds }),
  };
  const worker =
    role === "large"
      ? createWorker<LargeDocMessage>({
          ...common,
          ...consumed,
          parse: (body) => LargeDocMessage.parse(body),
          handle: (msg, ctx) =>
            stages.run({ stage: "split-large", unit: msg, ctx, lookup: () => unfinished(msg.documentId), work: (a) => splitLarge(msg, a) }),
          onPoison: (info) => recordPoison(stages.audit, "split-large", info),
          onDeadLetter: (msg, error, ctx) => recordDeadLetter(stages, "split-large", msg, error, ctx),
          taskProtection: opts.taskProtection,
          concurrency,
          batchSize: 1,
        })
      : createWorker<SmallDocMessage>({
          ...common,
          ...consumed,
          parse: (body) => SmallDocMessage.parse(body),
          handle: (msg, ctx) =>
            stages.run({
              stage: "split-small",
              unit: { batchId: msg.batchId, documentId: msg.documentId, firstPage: msg.firstPage, lastPage: msg.lastPage, key: msg.key },
              ctx,
              lookup: () => unfinished(msg.documentId),
              work: (a) => splitSmall(msg, a),
            }),
          onPoison: (info) => recordPoison(stages.audit, "split-small", info),
          onDeadLetter: (msg, error, ctx) =>
            recordDeadLetter(stages, "split-small", msg, error, ctx, { firstPage: msg.firstPage, lastPage: msg.lastPage }),
          concurrency,
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
