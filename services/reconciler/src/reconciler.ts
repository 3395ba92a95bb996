import { hostname } from "node:os";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import {
  coerceError,
  completeDocumentIfFinished,
  endWaitingDuplicates,
  isWorkKey,
  objectCreatedEvent,
  QueueProducer,
  QueueSender,
  RECONCILED_QUEUES,
  settleBatch,
  silentLogger,
  type Logger,
  type QueueKey,
  type LivenessProbe,
  type QueueUrls,
  type ReconciledQueue,
  type WorkerObservers,
} from "@docpipe/queue";
import { drainMarks } from "./drains.js";
import { finishedButOpen, KINDS, settledButOpen, stopWaiting, takeLost, waitingInVain, type LostKind, type LostRow } from "./lost.js";

export interface ReconcilerOptions extends WorkerObservers {
  prisma: PrismaClient;
  sqs: SQSClient;
  queueUrls: Record<QueueKey, QueueUrls>;
  /** Where chunks, page PDFs and PNGs are. */
  workBucket: string;
  logger?: Logger;
  /** In audit records. @defaultValue `reconciler@<hostname>:<pid>` */
  workerId?: string;
  /** A unit untouched for this long may have lost its message (if its queue has drained since). @defaultValue 600 */
  idleSeconds?: number;
  /** How long a queue must look empty before that counts; SQS's counts settle within about a minute. @defaultValue 60 */
  settleSeconds?: number;
  /** Allowance for clock differences between SQS, the database and the workers. @defaultValue 5 */
  skewSeconds?: number;
  /** Seconds between passes once started. @defaultValue 300 */
  intervalSeconds?: number;
  /** Units taken per statement. @defaultValue 500 */
  pageSize?: number;
}

export interface PassOptions {
  /** Overrides `idleSeconds` for this pass; `0` after a crash of everything (`docpipe resume`). */
  idleSeconds?: number;
  /** Only this batch's units. */
  batchId?: string;
}

export interface PassResult {
  /** Messages re-sent, per kind of unit. */
  resent: Record<LostKind, number>;
  /** Documents ended and batches completed whose last worker died before doing it. */
  documentsEnded: number;
  batchesCompleted: number;
  /** Per queue: before when nothing sent to it is left (null: not known yet). */
  marks: Record<ReconciledQueue, string | null>;
}

export interface Reconciler {
  /** One pass now; see {@link reconcile}. */
  runOnce(opts?: PassOptions): Promise<PassResult>;
  /** A pass every `intervalSeconds`, the first one at once. */
  start(): void;
  /** Stops the loop after the pass under way. */
  stop(): Promise<void>;
}

const ORDER: LostKind[] = ["document", "large", "small", "chunk", "page", "image"];

/**
 * The reconciler: finds units (documents, chunks, pages) that are unfinished, idle past a
 * threshold and have no message left anywhere, and sends each the message that continues it,
 * recorded as `reconciled`. How it knows that no message is left without scanning a queue:
 * see drains.ts (a queue's drain mark) and the README. Idempotent by construction: a unit is
 * taken by one statement that touches it, so it is not taken again until its new message has
 * had the time a first one gets; stages are idempotent, so a message that turns out not to
 * have been lost costs a skipped delivery, not a second render.
 */
export function createReconciler(opts: ReconcilerOptions): Reconciler {
  const { prisma, sqs, queueUrls, workBucket } = opts;
  const logger = (opts.logger ?? silentLogger()).child({ component: "reconciler" });
  const workerId = opts.workerId ?? `reconciler@${hostname()}:${process.pid}`;
  const pageSize = opts.pageSize ?? 500;
  const intervalMs = (opts.intervalSeconds ?? 300) * 1000;
  const producers = {
    ingest: new QueueProducer({ sqs, queueUrl: queueUrls.ingest.url, queue: "ingest", logger }),
    large: new QueueProducer({ sqs, queueUrl: queueUrls.large.url, queue: "large", logger }),
    small: new QueueProducer({ sqs, queueUrl: queueUrls.small.url, queue: "small", logger }),
    singlePage: new QueueProducer({ sqs, queueUrl: queueUrls.singlePage.url, queue: "singlePage", logger }),
  };
  const images = new QueueSender({ sqs, queueUrl: queueUrls.convertedImage.url, queueName: "converted-image", logger });

  async function send(kind: LostKind, rows: LostRow[]): Promise<void> {
    const ids = (r: LostRow) => ({ version: 1 as const, batchId: r.batchId, documentId: r.documentId });
    const sizeOf = (r: LostRow) => (r.size === null ? {} : { size: Number(r.size) });
    switch (kind) {
      case "document":
        return producers.ingest.send(rows.map((r) => ({ ...ids(r), bucket: r.bucket, key: r.key, ...sizeOf(r) })));
      case "large":
        return producers.large.send(
          rows.map((r) => ({ ...ids(r), bucket: r.bucket, key: r.key, size: Number(r.size ?? 0), ...(r.pageCount !== null && { pageCount: r.pageCount }) })),
        );
      case "small":
      case "chunk":
        return producers.small.send(
          rows.map((r) => ({ ...ids(r), bucket: kind === "chunk" ? workBucket : r.bucket, key: r.key, firstPage: r.firstPage!, lastPage: r.lastPage! })),
        );
      case "page":
        return producers.singlePage.send(
          rows.map((r) => ({ ...ids(r), bucket: isWorkKey(r, r.pdfKey!) ? workBucket : r.bucket, key: r.pdfKey!, pageNumber: r.pageNumber! })),
        );
      case "image": {
        const region = await sqs.config.region();
        return images.sendBodies(rows.map((r) => objectCreatedEvent(workBucket, r.imageKey!, region, "docpipe-reconciler")));
      }
    }
  }

  async function runOnce(pass: PassOptions = {}): Promise<PassResult> {
    const idleMs = (pass.idleSeconds ?? opts.idleSeconds ?? 600) * 1000;
    const marks = await drainMarks({
      prisma,
      sqs,
      queueUrls,
      settleMs: (opts.settleSeconds ?? 60) * 1000,
      skewMs: (opts.skewSeconds ?? 5) * 1000,
    });
    const [{ now }] = await prisma.$queryRaw<[{ now: Date }]>`SELECT now() AS now`;
    const idleBefore = new Date(now.getTime() - idleMs);
    const result: PassResult = {
      resent: { document: 0, large: 0, small: 0, chunk: 0, page: 0, image: 0 },
      documentsEnded: 0,
      batchesCompleted: 0,
      marks: Object.fromEntries(RECONCILED_QUEUES.map((q) => [q, marks[q]?.toISOString() ?? null])) as PassResult["marks"],
    };

    for (const kind of ORDER) {
      const mark = marks[KINDS[kind].queue];
      // Nothing is known to be gone from that queue yet.
      if (!mark) continue;
      const cutoff = new Date(Math.min(mark.getTime(), idleBefore.getTime()));
      for (;;) {
        const rows = await takeLost(prisma, { kind, cutoff, mark, limit: pageSize, workerId, ...(pass.batchId && { batchId: pass.batchId }) });
        if (rows.length === 0) break;
        try {
          await send(kind, rows);
          result.resent[kind] += rows.length;
        } catch (e) {
          // They were touched: they come back once idle again, and the next pass re-sends them.
          logger.error({ err: coerceError(e), kind, units: rows.length }, "re-sending lost units failed");
        }
        if (rows.length < pageSize) break;
      }
    }

    for (const doc of await finishedButOpen(prisma, idleBefore, pageSize, pass.batchId)) {
      if (await completeDocumentIfFinished(prisma, doc)) result.documentsEnded++;
    }
    for (const { holder, gone } of await waitingInVain(prisma, idleBefore, pageSize, pass.batchId)) {
      if (gone) await stopWaiting(prisma, holder);
      else result.documentsEnded += await endWaitingDuplicates(prisma, holder);
    }
    for (const batchId of await settledButOpen(prisma, pass.batchId)) {
      if (await settleBatch(prisma, batchId)) result.batchesCompleted++;
    }
    const resent = Object.values(result.resent).reduce((a, b) => a + b, 0);
    opts.metrics?.count("ReconcilePasses");
    opts.metrics?.count("UnitsReconciled", resent);
    if (resent > 0 || result.documentsEnded > 0 || result.batchesCompleted > 0) {
      logger.warn({ resent: result.resent, documentsEnded: result.documentsEnded, batchesCompleted: result.batchesCompleted }, "reconciled units whose message was lost");
    } else {
      logger.debug({ marks: result.marks }, "nothing to reconcile");
    }
    return result;
  }

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  // Alive while passes end, well or not (a failed pass is logged and tried again): a pass that
  // hangs past two intervals and a few minutes fails the health check, and ECS replaces the task.
  let probe: LivenessProbe | undefined;
  const loop = () => {
    running = runOnce()
      .catch((e: unknown) => logger.error({ err: coerceError(e) }, "reconcile pass failed; trying again next time"))
      .finally(() => {
        probe?.beat();
        running = undefined;
        if (!stopped) timer = setTimeout(loop, intervalMs);
      });
  };

  return {
    runOnce,
    start() {
      if (timer || running) return;
      stopped = false;
      probe = opts.liveness?.loop("reconcile", 2 * intervalMs + 300_000);
      logger.info({ intervalSeconds: intervalMs / 1000, idleSeconds: opts.idleSeconds ?? 600 }, "reconciler started");
      loop();
    },
    async stop() {
      stopped = true;
      probe?.close();
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
