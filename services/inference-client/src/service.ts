import type { SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import {
  StageRunner,
  type Committed,
  type StageScope,
  childLogger,
  consumedQueue,
  createWorker,
  DEFAULT_STOP_TIMEOUT_SECONDS,
  failureReason,
  isForeignKeyViolation,
  isNotNullViolation,
  parseImageKey,
  parseS3Event,
  PermanentError,
  recordPageDeadLetter,
  recordPoison,
  settleBatchIfEnded,
  type PageDoneRow,
  TransientError,
  type HandlerContext,
  type Logger,
  type QueueKey,
  type QueueUrls,
  type S3Event,
  type S3EventRecord,
  type WorkerObservers,
} from "@docpipe/queue";
import { pino } from "pino";
import { ProtectedModelClient, type ProtectionOptions } from "./protected-client.js";
import type { BreakerState } from "./limits/circuit-breaker.js";
import { HttpModelInvoker, type HttpInvokerOptions, type ModelInvoker } from "./model/invoker.js";
import { scoredWrites, type PageRef } from "./results.js";

export interface InferenceClientOptions extends ProtectionOptions, WorkerObservers {
  sqs: SQSClient;
  prisma: PrismaClient;
  /** Only `convertedImage` is used. */
  queueUrls: Pick<Record<QueueKey, QueueUrls>, "convertedImage">;
  /** The endpoint: an invoker (e.g. {@link SageMakerModelInvoker}), or the HTTP settings for one. */
  model: ModelInvoker | HttpInvokerOptions;
  /**
   * Messages handled at once. Above `maxConcurrency` so that pages waiting for the database or
   * for a token do not leave the endpoint idle. @defaultValue 2 × maxConcurrency
   */
  workerConcurrency?: number;
  /** Seconds to wait for in-flight pages on stop before releasing them to the queue. @defaultValue 25 */
  stopTimeoutSeconds?: number;
  /** Long-poll wait of the worker. @defaultValue 20 */
  waitTimeSeconds?: number;
  /** Visibility given on receive and on every heartbeat. @defaultValue the converted-image queue's, from the catalog (120) */
  visibilityTimeoutSeconds?: number;
  /** Worker id in audit records. @defaultValue `inference-client/<pid>` */
  workerId?: string;
  logger?: Logger;
}

export interface InferenceClientStatus {
  breaker: BreakerState;
  /** Times the breaker has opened since start. */
  breakerOpens: number;
  /** Model calls in flight now. */
  callsInFlight: number;
  /** Messages being handled now. */
  messagesInFlight: number;
}

export interface InferenceClient {
  start(): void;
  stop(): Promise<void>;
  status(): InferenceClientStatus;
}

const STAGE = "inference" as const;
/** Grace period on stop while the breaker holds pages: enough for a probe in progress to land. */
const HELD_RELEASE_MS = 1_000;

/** Builds the inference client: converted-image queue → model endpoint → one InferenceResult per page. */
export function createInferenceClient(opts: InferenceClientOptions): InferenceClient {
  const logger = (opts.logger ?? pino({ level: "silent" })).child({ component: "inference-client" });
  const workerId = opts.workerId ?? `inference-client/${process.pid}`;
  const invoker = "invoke" in opts.model ? opts.model : new HttpModelInvoker(opts.model);
  const client = new ProtectedModelClient(invoker, { ...opts, logger });
  const consumed = consumedQueue("convertedImage", opts.queueUrls.convertedImage, opts.visibilityTimeoutSeconds);
  const stages = new StageRunner({ prisma: opts.prisma, workerId, logger, leaseSeconds: consumed.visibilityTimeoutSeconds });
  const { prisma } = opts;
  // Ends any wait still running after the worker has stopped (belt and braces: the worker
  // aborts each message's own signal when it releases it).
  const stopping = new AbortController();

  async function handleRecord(record: S3EventRecord, ctx: HandlerContext, signal: AbortSignal): Promise<void> {
    if (!record.eventName.startsWith("ObjectCreated:")) {
      ctx.logger.info({ eventName: record.eventName, key: record.key }, "not an object-created event; ignoring");
      return;
    }
    const ref = parseImageKey(record.key);
    if (!ref) {
      ctx.logger.info({ bucket: record.bucket, key: record.key }, "key is not a page image; ignoring");
      return;
    }
    const log = childLogger(ctx.logger, { batchId: ref.batchId, documentId: ref.documentId, pageNumber: ref.pageNumber });
    const page = { batchId: ref.batchId, documentId: ref.documentId, pageNumber: ref.pageNumber };
    try {
      await stages.run({
        stage: STAGE,
        unit: ref,
        ctx: { ...ctx, logger: log },
        // A permanent failure is recorded once, by onDeadLetter, with the page's reason.
        recordPermanentFailure: false,
        // The claim is the page's only look: a redelivery of a scored (done) page loses it, and is
        // recorded as a lookup would have; the result statement finds the page row itself.
        checkRecordedWhenDone: true,
        work: (a) => score(record, page, a, signal),
      });
    } catch (e) {
      // The `started` record names a batch and document that do not exist: a stray object.
      if (e instanceof TransientError && e.code === "audit_write_failed" && isForeignKeyViolation(e.cause)) throw await missingPage(page, record.key, e);
      throw e;
    }
  }

  /** Why a page has no row (rare: only then is this looked up). */
  async function missingPage(page: PageRef, key: string, cause: unknown): Promise<Error> {
    const doc = await prisma.document.findUnique({ where: { id: page.documentId }, select: { id: true } });
    const errIds = { cause, documentId: page.documentId, pageNumber: page.pageNumber, key };
    // No document: a stray object no retry will explain. A document without this page row
    // is a producer that has not written it yet: retry.
    if (!doc) return new PermanentError("unknown_document", `no document ${page.documentId} for ${key}`, errIds);
    return new TransientError("unknown_page", `document has no page ${page.pageNumber} yet`, errIds);
  }

  async function score(record: S3EventRecord, page: PageRef, a: StageScope, signal: AbortSignal): Promise<Committed> {
    const outcome = await client.invoke({ bucket: record.bucket, key: record.key }, signal, a.signal);
    const { latencyMs, calls } = outcome;
    const details = { model: outcome.response.model, features: outcome.response.features, latencyMs, calls };
    // The result, the page, its document and the succeeded record in one statement: a kill
    // cannot leave a scored page whose trail lacks the stage, or a last page whose document waits.
    let committed: Committed;
    let row: PageDoneRow;
    try {
      ({ committed, row } = await a.commitStatement<PageDoneRow>(details, scoredWrites(page, outcome.response, latencyMs)));
    } catch (e) {
      if (!isNotNullViolation(e)) throw e;
      throw await missingPage(page, record.key, e);
    }
    const documentEnded = await settleBatchIfEnded(prisma, page.batchId, row);
    a.log.info({ latencyMs, calls, features: outcome.response.features }, "page scored");
    if (documentEnded) a.log.info({ state: row.documentState }, "document ended");
    return committed;
  }

  async function onDeadLetter(event: S3Event, error: PermanentError, ctx: HandlerContext): Promise<void> {
    const key = error.ids.key;
    const record = event.kind === "records" ? (event.records.find((r) => r.key === key) ?? event.records[0]) : undefined;
    const ref = record ? parseImageKey(record.key) : undefined;
    if (ref) {
      // A page that will never get a result keeps its document from done: fail both, with the reason.
      await recordPageDeadLetter(stages, STAGE, ref, error, ctx, { failFrom: ["pending", "rendered", "failed"] });
      return;
    }
    await stages.audit.record({
      stage: STAGE,
      outcome: "dead_lettered",
      attempt: ctx.attempt,
      messageId: ctx.messageId,
      errorCode: error.code,
      errorMessage: failureReason(error),
    });
  }

  const worker = createWorker<S3Event>({
    name: workerId,
    ...consumed,
    sqs: opts.sqs,
    parse: parseS3Event,
    concurrency: opts.workerConcurrency ?? 2 * client.semaphore.limit,
    liveness: opts.liveness,
    metrics: opts.metrics,
    ...(opts.waitTimeSeconds !== undefined && { waitTimeSeconds: opts.waitTimeSeconds }),
    logger,
    handle: async (event, ctx) => {
      if (event.kind === "test") {
        ctx.logger.info("S3 test event; ignoring");
        return;
      }
      const signal = AbortSignal.any([ctx.signal, stopping.signal]);
      // S3 sends one record per event; several are handled in turn.
      for (const record of event.records) await handleRecord(record, ctx, signal);
    },
    onPoison: (info) => recordPoison(stages.audit, STAGE, info),
    onDeadLetter,
  });

  return {
    start() {
      worker.start();
      logger.info({ endpoint: invoker.description, maxConcurrency: client.semaphore.limit }, "inference client started");
    },
    async stop() {
      // Pages held for an open breaker cannot finish: let the worker give them back at once
      // (visibility 0, not counted as a failure) instead of after the full grace period.
      const holding = client.breaker.state !== "closed";
      const timeoutMs = holding ? HELD_RELEASE_MS : (opts.stopTimeoutSeconds ?? DEFAULT_STOP_TIMEOUT_SECONDS) * 1000;
      try {
        await worker.stop({ timeoutMs });
      } finally {
        stopping.abort(new Error("inference client stopped"));
        await stages.flush();
      }
    },
    status: () => ({
      breaker: client.breaker.state,
      breakerOpens: client.breaker.openCount,
      callsInFlight: client.semaphore.inUse,
      messagesInFlight: worker.inFlight,
    }),
  };
}
