import type { S3Client } from "@aws-sdk/client-s3";
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { DEFAULT_DPI, DEFAULT_MAX_PIXELS, PdfPool, RenderPool } from "@docpipe/pdf";
import {
  StageRunner,
  alreadyDone,
  type StageResult,
  type StageScope,
  createWorker,
  DEFAULT_MAX_PAGES,
  DEFAULT_STOP_TIMEOUT_SECONDS,
  failDocument,
  failPage,
  noteDocumentFailure,
  failureReason,
  fullJitterBackoff,
  IngestMessage,
  LargeDocMessage,
  parseImageKey,
  parseS3Event,
  PermanentError,
  recordDeadLetter,
  recordPoison,
  SinglePageMessage,
  SmallDocMessage,
  toStageError,
  type HandlerContext,
  type Logger,
  type QueueKey,
  type QueueUrls,
  type S3Event,
  type Worker,
  defaultThresholds,
  type ClassifyThresholds,
  type TaskProtection,
  type WorkerObservers,
} from "@docpipe/queue";
import { pino } from "pino";
import { allAttributes, deadLetterCause, REPLAYS_ATTRIBUTE, replaysOf, resendAttributes, type DeadLetterCause } from "./attributes.js";
import { defaults, SQS_MAX_DELAY_SECONDS } from "./defaults.js";
import { breakDown, type BreakdownDeps, type BreakdownJob, type BreakdownResult } from "./breakdown.js";

export interface FailsafeOptions extends WorkerObservers {
  sqs: SQSClient;
  s3: S3Client;
  prisma: PrismaClient;
  /** Every DLQ is read; `parked` receives what the failsafe gives up on; `convertedImage` receives replays. */
  queueUrls: Record<QueueKey, QueueUrls>;
  /** Where pages and PNGs go, under the normal path's keys. */
  workBucket: string;
  logger?: Logger;
  /** Worker id in audit records. @defaultValue `failsafe/<pid>` */
  workerId?: string;
  /** As the page converter's. @defaultValue 150 */
  dpi?: number;
  /** As the page converter's. @defaultValue 50_000_000 */
  maxPixels?: number;
  /** Time for one page; a page that overruns it here fails (this is its last try). @defaultValue 120000 */
  renderTimeoutMs?: number;
  /** Documents with more pages fail as too_many_pages. @defaultValue 100000 */
  maxPages?: number;
  /** A pool to share (the caller closes it); otherwise one of `renderThreads` is built on first use. */
  pool?: RenderPool;
  /** @defaultValue 1: the failsafe is the slow path and should not starve the converter */
  renderThreads?: number;
  /** Dead letters broken down at once, per DLQ. @defaultValue 1: the slow, sure path */
  concurrency?: number;
  /** Classification for ingest messages, which never reached the orchestrator's decision. @defaultValue the orchestrator's defaults */
  thresholds?: ClassifyThresholds;
  /** @defaultValue os.tmpdir() */
  tmpDir?: string;
  /**
   * Receives of one dead letter (SQS's ApproximateReceiveCount, which on AWS includes its
   * receives in the source queue) before the failsafe gives up on a transient fault: the
   * message is parked and the document failed as `failsafe_retries_exhausted`. @defaultValue 20
   */
  maxAttempts?: number;
  /** Replays of one image message before it is parked and its page failed. @defaultValue 5 */
  maxReplays?: number;
  /** Ceiling of the first replay's delay (full jitter, doubling per replay). @defaultValue 30 */
  replayBaseSeconds?: number;
  /** Longest replay delay; SQS allows at most 900. @defaultValue 900 */
  replayMaxSeconds?: number;
  /** Randomness of the replay jitter; tests pass a fixed one. @defaultValue Math.random */
  random?: () => number;
  /** Visibility of a dead letter being broken down (extended while it runs). @defaultValue 300 */
  visibilityTimeoutSeconds?: number;
  /** Long-poll wait of the workers. @defaultValue 20 */
  waitTimeSeconds?: number;
  /** Seconds to wait for in-flight work on stop before releasing it. @defaultValue 25 */
  stopTimeoutSeconds?: number;
  /**
   * Held while a document dead letter is broken down, which can outlast the 120 s between
   * SIGTERM and SIGKILL; image replays are quick and go without. @defaultValue none
   */
  taskProtection?: TaskProtection;
}

export interface Failsafe {
  start(): void;
  stop(): Promise<void>;
}

const STAGE = "failsafe" as const;

const DOCUMENT_QUEUES = ["ingest", "large", "small", "singlePage"] as const;
type DocumentQueue = (typeof DOCUMENT_QUEUES)[number];
type DocumentMessage = IngestMessage | LargeDocMessage | SmallDocMessage | SinglePageMessage;

const parsers: Record<DocumentQueue, (b: unknown) => DocumentMessage> = {
  ingest: (b) => IngestMessage.parse(b),
  large: (b) => LargeDocMessage.parse(b),
  small: (b) => SmallDocMessage.parse(b),
  singlePage: (b) => SinglePageMessage.parse(b),
};

function jobOf(queue: DocumentQueue, msg: DocumentMessage): BreakdownJob {
  const base = { batchId: msg.batchId, documentId: msg.documentId, bucket: msg.bucket, key: msg.key };
  if ("pageNumber" in msg) return { ...base, kind: "page", firstPage: msg.pageNumber, lastPage: msg.pageNumber };
  if ("firstPage" in msg) return { ...base, kind: "range", firstPage: msg.firstPage, lastPage: msg.lastPage };
  return { ...base, kind: "document", firstPage: 1, classify: queue === "ingest" };
}

/**
 * The failsafe: one worker per dead-letter queue.
 *
 * - ingest, large, small, single-page DLQs: a message that ran out of retries (or that SQS
 *   moved because its workers died) is broken down to pages and PNGs in this process, with
 *   the normal path's keys and rows; one dead-lettered for a permanent reason is not redone
 *   (its document already failed with the reason), only recorded.
 * - converted-image DLQ: replayed to its queue after a growing, jittered delay, counting
 *   replays in a message attribute; past `maxReplays` parked for a person, page and document failed.
 * - What the failsafe itself cannot handle (poison, a transient fault on every attempt) goes
 *   to the parked queue.
 * Every document touched gets `failsafe` audit records with why it had failed.
 */
export function createFailsafe(opts: FailsafeOptions): Failsafe {
  const logger = (opts.logger ?? pino({ level: "silent" })).child({ component: "failsafe" });
  const workerId = opts.workerId ?? `failsafe/${process.pid}`;
  const { prisma, sqs, queueUrls } = opts;
  const stages = new StageRunner({ prisma, workerId, logger, ...(opts.tmpDir !== undefined && { tmpDir: opts.tmpDir }) });
  const renderTimeoutMs = opts.renderTimeoutMs ?? defaults.renderTimeoutMs;
  let pool = opts.pool;
  let ownPool: RenderPool | undefined;
  let splitPool: PdfPool | undefined;
  const deps: BreakdownDeps = {
    prisma,
    s3: opts.s3,
    pool: () => (pool ??= ownPool = new RenderPool({ size: opts.renderThreads ?? defaults.renderThreads, timeoutMs: renderTimeoutMs })),
    // A breakdown holds its split worker until it ends: one per breakdown that can run at once.
    splitPool: () => (splitPool ??= new PdfPool({ size: DOCUMENT_QUEUES.length * (opts.concurrency ?? defaults.concurrency) })),
    workBucket: opts.workBucket,
    dpi: opts.dpi ?? DEFAULT_DPI,
    maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
    renderTimeoutMs,
    maxPages: opts.maxPages ?? DEFAULT_MAX_PAGES,
    thresholds: opts.thresholds ?? defaultThresholds,
  };
  const maxReplays = opts.maxReplays ?? defaults.maxReplays;
  const replayBase = opts.replayBaseSeconds ?? defaults.replayBaseSeconds;
  const replayMax = Math.min(SQS_MAX_DELAY_SECONDS, opts.replayMaxSeconds ?? defaults.replayMaxSeconds);
  const common = {
    sqs,
    dlqUrl: queueUrls.parked.url,
    maxReceiveCount: opts.maxAttempts ?? defaults.maxAttempts,
    logger,
    liveness: opts.liveness,
    metrics: opts.metrics,
    ...(opts.waitTimeSeconds !== undefined && { waitTimeSeconds: opts.waitTimeSeconds }),
  };

  const why = (cause: DeadLetterCause) => ({ errorCode: cause.errorCode, errorMessage: cause.errorMessage });

  async function handleDocument(queue: DocumentQueue, msg: DocumentMessage, ctx: HandlerContext): Promise<void> {
    const cause = deadLetterCause(ctx.message);
    await stages.run({
      stage: STAGE,
      unit: {
        batchId: msg.batchId,
        documentId: msg.documentId,
        ...("pageNumber" in msg && { pageNumber: msg.pageNumber }),
        ...("firstPage" in msg && { firstPage: msg.firstPage, lastPage: msg.lastPage }),
      },
      ctx,
      details: { queue, ...cause.details },
      cause: why(cause),
      lookup: () => unfinished(msg, cause),
      work: (a) => rescue(queue, msg, a),
    });
  }

  async function unfinished(msg: DocumentMessage, cause: DeadLetterCause) {
    // Redoing it would fail the same way; its stage already failed the document with the reason.
    if (cause.reason === "permanent" || cause.reason === "poison") return alreadyDone({ action: "not reprocessed: permanent failure" });
    const doc = await prisma.document.findUnique({ where: { id: msg.documentId }, select: { state: true } });
    if (!doc || doc.state === "done" || doc.state === "failed") return alreadyDone({ action: `document ${doc?.state ?? "missing"}` });
    return undefined;
  }

  /** Breaks the dead letter's document, chunk or page down to PNGs; what cannot be saved fails the document here, not in a DLQ. */
  async function rescue(queue: DocumentQueue, msg: DocumentMessage, a: StageScope): Promise<StageResult> {
    let result: BreakdownResult;
    try {
      result = await breakDown(deps, jobOf(queue, msg), a);
    } catch (e) {
      const err = toStageError(e);
      if (!(err instanceof PermanentError)) throw err;
      const reason = failureReason(err);
      await failDocument(prisma, msg, { code: err.code, reason });
      a.log.warn({ errorCode: err.code }, "document cannot be broken down; failed");
      return { outcome: "failed", error: { code: err.code, message: reason } };
    }
    const details = { pages: result.pages, rendered: result.rendered, skipped: result.skipped, failedPages: result.failed.map((f) => f.pageNumber) };
    a.log.info({ ...result, failed: result.failed.length }, "document broken down by the failsafe");
    const firstFailure = result.failed[0];
    if (!firstFailure) return { details };
    // A page no path can render keeps the document from done: it fails as the converter's
    // would, once the pages that did render have their results.
    const code = `convert_${firstFailure.code}`;
    await noteDocumentFailure(prisma, msg, { code, reason: `page ${firstFailure.pageNumber}: ${firstFailure.reason}` });
    return { outcome: "failed", error: { code, message: firstFailure.reason }, details };
  }

  /** The failsafe's own give-up: a transient fault on every attempt. Parked for a person; the document fails. */
  async function onDocumentGivenUp(queue: DocumentQueue, msg: DocumentMessage, error: PermanentError, ctx: HandlerContext): Promise<void> {
    const reason = `the failsafe gave up after ${ctx.attempt} attempts; the message is parked for a person (${error.message})`;
    const givenUp = new PermanentError(`failsafe_${error.code}`, reason, { cause: error });
    await recordDeadLetter(stages, STAGE, msg, givenUp, ctx, { queue, parked: true });
  }

  async function handleImage(event: S3Event, ctx: HandlerContext): Promise<void> {
    if (event.kind === "test") return;
    const cause = deadLetterCause(ctx.message);
    const refs = event.records.flatMap((r) => parseImageKey(r.key) ?? []);
    const base = { attempt: ctx.attempt, messageId: ctx.messageId, ...why(cause) };
    const each = (fn: (ref: (typeof refs)[number]) => Promise<void>) => Promise.all(refs.map(fn));
    const replays = replaysOf(ctx.message);

    if (cause.reason === "permanent" || cause.reason === "poison") {
      await each((ref) =>
        stages.audit.record({ stage: STAGE, outcome: "skipped", ...ref, ...base, details: { queue: "convertedImage", ...cause.details, action: "not replayed: permanent failure" } }),
      );
      return;
    }
    const pages = await prisma.page.findMany({
      where: { OR: refs.map((r) => ({ documentId: r.documentId, pageNumber: r.pageNumber })) },
      select: { state: true },
    });
    if (refs.length > 0 && pages.length === refs.length && pages.every((p) => p.state === "done")) {
      await each((ref) => stages.audit.record({ stage: STAGE, outcome: "skipped", ...ref, ...base, details: { queue: "convertedImage", action: "page already done" } }));
      return;
    }

    if (replays >= maxReplays) {
      await sqs.send(
        new SendMessageCommand({ QueueUrl: queueUrls.parked.url, MessageBody: ctx.message.Body ?? "", MessageAttributes: allAttributes(ctx.message) }),
      );
      const reason = `inference failed after ${replays} replays by the failsafe; parked for a person (last error ${cause.errorCode}: ${cause.errorMessage})`;
      await each(async (ref) => {
        // The page will never get a result, so its document cannot be done.
        await failPage(prisma, ref, {
          pageCode: "replay_limit",
          pageReason: reason,
          documentCode: "inference_replay_limit",
          documentReason: `page ${ref.pageNumber}: ${reason}`,
          failFrom: ["pending", "rendered", "failed"],
        });
        await stages.audit.record({
          stage: STAGE,
          outcome: "dead_lettered",
          ...ref,
          ...base,
          details: { queue: "convertedImage", ...cause.details, replays, parked: true },
        });
      });
      ctx.logger.warn({ replays }, "image message parked after its last replay");
      return;
    }

    const replay = replays + 1;
    const delaySeconds = Math.min(
      SQS_MAX_DELAY_SECONDS,
      Math.round(fullJitterBackoff(replay, { base: replayBase, cap: replayMax, ...(opts.random && { random: opts.random }) })),
    );
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrls.convertedImage.url,
        MessageBody: ctx.message.Body ?? "",
        DelaySeconds: delaySeconds,
        MessageAttributes: {
          ...resendAttributes(ctx.message, { keepDocpipe: true }),
          [REPLAYS_ATTRIBUTE]: { DataType: "Number", StringValue: String(replay) },
        },
      }),
    );
    await each((ref) =>
      stages.audit.record({
        stage: STAGE,
        outcome: "replayed",
        ...ref,
        ...base,
        details: { queue: "convertedImage", ...cause.details, replay, maxReplays, delaySeconds },
      }),
    );
    ctx.logger.info({ replay, delaySeconds }, "image message replayed");
  }

  const workers: Worker[] = DOCUMENT_QUEUES.map((queue) =>
    createWorker<DocumentMessage>({
      ...common,
      name: `${workerId}/${queue}`,
      queueUrl: queueUrls[queue].dlqUrl,
      parse: parsers[queue],
      handle: (msg, ctx) => handleDocument(queue, msg, ctx),
      onPoison: (info) => recordPoison(stages.audit, STAGE, info),
      onDeadLetter: (msg, error, ctx) => onDocumentGivenUp(queue, msg, error, ctx),
      concurrency: opts.concurrency ?? defaults.concurrency,
      batchSize: 1,
      visibilityTimeoutSeconds: opts.visibilityTimeoutSeconds ?? 300,
      taskProtection: opts.taskProtection,
    }),
  );
  workers.push(
    createWorker<S3Event>({
      ...common,
      name: `${workerId}/convertedImage`,
      queueUrl: queueUrls.convertedImage.dlqUrl,
      parse: parseS3Event,
      handle: handleImage,
      onPoison: (info) => recordPoison(stages.audit, STAGE, info),
      concurrency: 4,
      visibilityTimeoutSeconds: 60,
    }),
  );

  return {
    start() {
      for (const w of workers) w.start();
      logger.info({ maxReplays, replayBaseSeconds: replayBase, replayMaxSeconds: replayMax }, "failsafe started");
    },
    async stop() {
      try {
        await Promise.all(workers.map((w) => w.stop({ timeoutMs: (opts.stopTimeoutSeconds ?? DEFAULT_STOP_TIMEOUT_SECONDS) * 1000 })));
      } finally {
        await ownPool?.close();
        await splitPool?.close();
        await stages.flush();
      }
    },
  };
}
