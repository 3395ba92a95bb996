import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  type QueueAttributeName,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { Consumer } from "sqs-consumer";
import { fullJitterBackoff, sleep } from "./backoff.js";
import { sendToDeadLetterQueue, type DeadLetterReason } from "./dead-letter.js";
import { coerceError, errorCode, PermanentError, PoisonMessageError } from "./errors.js";
import { childLogger, silentLogger, type Logger } from "./logger.js";

export interface HandlerContext {
  messageId: string;
  /** SQS ApproximateReceiveCount: 1 on the first delivery, higher on every retry. */
  attempt: number;
  /** Bound with `messageId`, `attempt` and, when the message has them, `batchId`/`documentId`/`pageNumber`. */
  logger: Logger;
  /**
   * Aborted when the worker gives the message back: `stop()` ran out of time, or a heartbeat
   * found the message no longer ours. Long handlers should pass it on to what they wait for.
   */
  signal: AbortSignal;
  /** The SQS message as received, with its attributes (e.g. for `readDeadLetterInfo`); never log its body. */
  message: Message;
}

export interface PoisonInfo {
  messageId: string;
  /** The raw body; record its size or a hash, never log it. */
  body: string;
  error: Error;
  attempt: number;
}

export interface WorkerOptions<T> {
  /** Service name, used for logs and as the dead-letter `workerId`. */
  name: string;
  queueUrl: string;
  dlqUrl: string;
  sqs: SQSClient;
  /** Turns the JSON-parsed body into a message, e.g. `(b) => SmallDocMessage.parse(b)`. Throwing makes it poison. */
  parse: (body: unknown) => T;
  /** Does the work. Resolve to acknowledge; throw {@link PermanentError} to dead-letter; throw anything else to retry. */
  handle: (message: T, ctx: HandlerContext) => Promise<void>;
  /** Records a poison message (audit). If it throws, the message is retried instead of dead-lettered unrecorded. */
  onPoison?: (info: PoisonInfo) => Promise<void>;
  /** Records a permanent failure (audit, document state). If it throws, the message is retried. */
  onDeadLetter?: (message: T, error: PermanentError, ctx: HandlerContext) => Promise<void>;
  /** Messages handled at once by this process. @defaultValue `1` */
  concurrency?: number;
  /** Most messages asked for per ReceiveMessage (1–10); never more than `concurrency`. @defaultValue `10` */
  batchSize?: number;
  /** Visibility given on receive and on every heartbeat. @defaultValue `60` */
  visibilityTimeoutSeconds?: number;
  /** Seconds between visibility extensions while a handler runs; less than the visibility timeout. @defaultValue a third of it */
  heartbeatSeconds?: number;
  logger?: Logger;
  /** Long-poll wait (1–20). @defaultValue `20` */
  waitTimeSeconds?: number;
  /**
   * The queue's redrive `maxReceiveCount`. When set, a transient failure on the last receive is
   * dead-lettered by the worker (with reason `retries_exhausted` and `onDeadLetter`) instead of
   * left for SQS to move silently. @defaultValue unset: SQS's redrive handles it
   */
  maxReceiveCount?: number;
  /** Ceiling of the first retry's delay (exponential, full jitter). @defaultValue `5` */
  retryBaseSeconds?: number;
  /** Longest retry delay. @defaultValue `900` */
  retryMaxSeconds?: number;
}

export interface Worker {
  start(): void;
  /**
   * Stops receiving and waits for in-flight handlers. Those still running after `timeoutMs`
   * are given back to the queue (visibility 0) and their `signal` aborted; nothing is lost.
   * @defaultValue `timeoutMs: 25000` (ECS waits 30 s between SIGTERM and SIGKILL)
   */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  readonly running: boolean;
  /** Messages being handled right now. */
  readonly inFlight: number;
  readonly stats: Readonly<WorkerStats>;
}

interface Job {
  message: Message;
  controller: AbortController;
  heartbeat?: NodeJS.Timeout;
  /** The heartbeat request in flight, awaited before the message's fate is sent so it cannot overwrite it. */
  beat?: Promise<void>;
  released: boolean;
  done: boolean;
}

/** Counters since start, for health checks and tests. */
export interface WorkerStats {
  received: number;
  succeeded: number;
  retried: number;
  deadLettered: number;
  poison: number;
}

/** Codes SQS answers when a receipt handle is no longer ours (the message was redelivered or deleted). */
const LOST_RECEIPT = new Set(["ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"]);
const MAX_VISIBILITY_SECONDS = 43_200;

const clamp = (n: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, n));

function messageIds(value: unknown): { batchId?: string; documentId?: string; pageNumber?: number } {
  if (typeof value !== "object" || value === null) return {};
  const v = value as Record<string, unknown>;
  return {
    ...(typeof v.batchId === "string" && { batchId: v.batchId }),
    ...(typeof v.documentId === "string" && { documentId: v.documentId }),
    ...(typeof v.pageNumber === "number" && { pageNumber: v.pageNumber }),
  };
}

/**
 * A queue worker on sqs-consumer.
 *
 * Concurrency: sqs-consumer awaits its batch handler before it polls again, so a plain
 * `handleMessage` would hold a whole batch hostage to its slowest message. Instead the batch
 * handler only dispatches each message into a pool of `concurrency` slots and returns once a
 * slot is free, after setting the next receive's size to the free slots. Slots refill one by
 * one as handlers finish, never more than `concurrency` messages are held (none waits
 * invisible in a local queue), and one consumer per process keeps one long poll open. The
 * worker acknowledges, retries and dead-letters each message itself.
 */
export function createWorker<T>(opts: WorkerOptions<T>): Worker {
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 1));
  const maxReceive = clamp(Math.floor(opts.batchSize ?? 10), 1, 10);
  const visibility = clamp(Math.floor(opts.visibilityTimeoutSeconds ?? 60), 1, MAX_VISIBILITY_SECONDS);
  const heartbeatSeconds = opts.heartbeatSeconds ?? Math.max(1, Math.floor(visibility / 3));
  if (heartbeatSeconds >= visibility) {
    throw new RangeError(`heartbeatSeconds (${heartbeatSeconds}) must be less than visibilityTimeoutSeconds (${visibility})`);
  }
  const retryBase = opts.retryBaseSeconds ?? 5;
  const retryMax = opts.retryMaxSeconds ?? 900;
  const logger = (opts.logger ?? silentLogger()).child({ component: "worker", worker: opts.name });
  const { sqs, queueUrl } = opts;

  const jobs = new Set<Job>();
  const stats: WorkerStats = { received: 0, succeeded: 0, retried: 0, deadLettered: 0, poison: 0 };
  let started = false;
  let stopping = false;
  let stopPromise: Promise<void> | undefined;
  let receiveFailures = 0;
  const stopSignal = new AbortController();
  /** Resolvers waiting for a free slot or for the last job to finish. */
  let waiters: (() => void)[] = [];
  const wake = (): void => {
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  };
  const nextChange = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));

  const receiveSize = (): number => clamp(concurrency - jobs.size, 1, Math.min(maxReceive, concurrency));

  const consumer = Consumer.create({
    queueUrl,
    sqs,
    batchSize: receiveSize(),
    visibilityTimeout: visibility,
    waitTimeSeconds: clamp(opts.waitTimeSeconds ?? 20, 1, 20),
    // The receive count under both names: AWS reads MessageSystemAttributeNames, while
    // local-aws-sqs only honours the older AttributeNames.
    attributeNames: ["ApproximateReceiveCount" as QueueAttributeName],
    messageSystemAttributeNames: ["ApproximateReceiveCount"],
    // All attributes, so a dead-lettered copy keeps the original's.
    messageAttributeNames: ["All"],
    shouldDeleteMessages: false,
    // sqs-consumer polls again at once after most receive errors (a refused connection, a
    // missing queue); back off with jitter instead of spinning on a broken endpoint.
    preReceiveMessageCallback: async () => {
      if (receiveFailures > 0) await sleep(fullJitterBackoff(receiveFailures, { base: 1_000, cap: 30_000 }), stopSignal.signal);
    },
    postReceiveMessageCallback: async () => {
      receiveFailures = 0;
    },
    handleMessageBatch: async (messages) => {
      if (stopping) {
        // Received by the poll that was open when stop() was called: hand straight back.
        await Promise.all(messages.map((m) => changeVisibility(m, 0, logger)));
        return [];
      }
      for (const m of messages) dispatch(m);
      while (jobs.size >= concurrency && !stopping) await nextChange();
      if (!stopping) consumer.updateOption("batchSize", receiveSize());
      return [];
    },
  });
  consumer.on("empty", () => {
    if (!stopping) consumer.updateOption("batchSize", receiveSize());
  });
  consumer.on("error", (err) => {
    // The aborted long poll of stop() lands here too.
    if (stopping) return;
    receiveFailures++;
    logger.error({ err, consecutiveFailures: receiveFailures }, "receiving messages failed");
  });

  async function changeVisibility(m: Message, seconds: number, log: Logger): Promise<boolean> {
    try {
      await sqs.send(
        new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: seconds }),
      );
      return true;
    } catch (e) {
      log.warn({ err: coerceError(e), visibilitySeconds: seconds }, "changing message visibility failed");
      return false;
    }
  }

  async function deleteMessage(m: Message): Promise<void> {
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
  }

  function startHeartbeat(job: Job, log: Logger): void {
    job.heartbeat = setInterval(() => {
      if (job.beat) return; // the previous extension is still on its way
      job.beat = sqs
        .send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: queueUrl,
            ReceiptHandle: job.message.ReceiptHandle,
            VisibilityTimeout: visibility,
          }),
        )
        .then(() => log.debug({ visibilitySeconds: visibility }, "visibility extended"))
        .catch((e: unknown) => {
          if (job.done) return;
          const err = coerceError(e);
          if (LOST_RECEIPT.has(err.name)) {
            // Someone else may now hold this message; the handler should stop wasting work.
            clearInterval(job.heartbeat);
            log.warn({ err }, "message lost to the queue during a heartbeat; aborting its handler");
            job.controller.abort(err);
          } else {
            log.warn({ err }, "visibility heartbeat failed; will try again");
          }
        })
        .finally(() => {
          job.beat = undefined;
        });
    }, heartbeatSeconds * 1000);
    job.heartbeat.unref();
  }

  /** Ends the heartbeat before the message is acknowledged, retried or moved, so no late extension undoes that. */
  async function stopHeartbeat(job: Job): Promise<void> {
    job.done = true;
    clearInterval(job.heartbeat);
    await job.beat;
  }

  function dispatch(message: Message): void {
    const job: Job = { message, controller: new AbortController(), released: false, done: false };
    jobs.add(job);
    stats.received++;
    void handleJob(job)
      .catch((e: unknown) => logger.error({ err: coerceError(e), messageId: message.MessageId }, "message processing crashed"))
      .finally(() => {
        job.done = true;
        clearInterval(job.heartbeat);
        jobs.delete(job);
        wake();
      });
  }

  async function handleJob(job: Job): Promise<void> {
    const m = job.message;
    const messageId = m.MessageId ?? "unknown";
    const attempt = Math.max(1, Number(m.Attributes?.ApproximateReceiveCount ?? 1) || 1);
    let log = childLogger(logger, { messageId, attempt });
    startHeartbeat(job, log);
    const startedAt = performance.now();
    const body = m.Body ?? "";

    let value: T;
    try {
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch (e) {
        throw new PoisonMessageError("invalid_json", "message body is not JSON", { cause: e, queueUrl, messageId });
      }
      try {
        value = opts.parse(json);
      } catch (e) {
        if (e instanceof PoisonMessageError) throw e;
        const err = coerceError(e);
        throw new PoisonMessageError("invalid_message", `message does not match its schema: ${err.message}`, {
          cause: err,
          queueUrl,
          messageId,
        });
      }
    } catch (e) {
      const error = e as PoisonMessageError;
      log.warn({ errorCode: error.code, bytes: Buffer.byteLength(body) }, "poison message; dead-lettering");
      try {
        await opts.onPoison?.({ messageId, body, error, attempt });
      } catch (hookError) {
        await retryLater(job, attempt, coerceError(hookError), log, "recording the poison message failed");
        return;
      }
      await deadLetter(job, "poison", error, attempt, log);
      return;
    }

    log = childLogger(log, messageIds(value));
    const ctx: HandlerContext = { messageId, attempt, logger: log, signal: job.controller.signal, message: m };
    try {
      await opts.handle(value, ctx);
    } catch (e) {
      const err = coerceError(e);
      const durationMs = Math.round(performance.now() - startedAt);
      let permanent: PermanentError | undefined;
      let reason: DeadLetterReason = "permanent";
      if (err instanceof PermanentError) {
        permanent = err;
      } else if (opts.maxReceiveCount !== undefined && attempt >= opts.maxReceiveCount) {
        reason = "retries_exhausted";
        permanent = new PermanentError("retries_exhausted", `gave up after ${attempt} attempts: ${err.message}`, {
          cause: err,
          queueUrl,
          messageId,
        });
      }
      if (!permanent) {
        await retryLater(job, attempt, err, log, "handler failed; will retry", durationMs);
        return;
      }
      log.warn({ err, errorCode: permanent.code, durationMs, reason }, "handler failed permanently; dead-lettering");
      try {
        await opts.onDeadLetter?.(value, permanent, ctx);
      } catch (hookError) {
        await retryLater(job, attempt, coerceError(hookError), log, "recording the dead letter failed");
        return;
      }
      await deadLetter(job, reason, permanent, attempt, log);
      return;
    }

    await stopHeartbeat(job);
    try {
      await deleteMessage(m);
      stats.succeeded++;
      log.debug({ durationMs: Math.round(performance.now() - startedAt) }, "message handled");
    } catch (e) {
      // The work is done and idempotent; a redelivery repeats it harmlessly.
      log.warn({ err: coerceError(e) }, "acknowledging a handled message failed; it will be redelivered");
    }
  }

  async function retryLater(job: Job, attempt: number, err: Error, log: Logger, msg: string, durationMs?: number): Promise<void> {
    await stopHeartbeat(job);
    if (job.released) return;
    stats.retried++;
    const delay = Math.round(fullJitterBackoff(attempt, { base: retryBase, cap: retryMax }));
    log.warn({ err, errorCode: errorCode(err), retryInSeconds: delay, durationMs }, msg);
    await changeVisibility(job.message, clamp(delay, 0, MAX_VISIBILITY_SECONDS), log);
  }

  async function deadLetter(job: Job, reason: DeadLetterReason, err: Error, attempt: number, log: Logger): Promise<void> {
    await stopHeartbeat(job);
    // Given back by stop(): another worker may hold it now, and a DLQ copy would duplicate it.
    if (job.released) return;
    try {
      const dlqMessageId = await sendToDeadLetterQueue(sqs, opts.dlqUrl, job.message, {
        reason,
        errorCode: errorCode(err),
        errorMessage: err.message,
        sourceQueueUrl: queueUrl,
        ...(job.message.MessageId !== undefined && { sourceMessageId: job.message.MessageId }),
        attempt,
        workerId: opts.name,
      });
      await deleteMessage(job.message);
      stats.deadLettered++;
      if (reason === "poison") stats.poison++;
      log.info({ reason, errorCode: errorCode(err), dlqMessageId }, "message dead-lettered");
    } catch (e) {
      // Not moved (or moved but not deleted): leave it for a retry, which moves it again. A
      // duplicate in the DLQ is harmless; a lost message is not.
      await retryLater(job, attempt, coerceError(e), log, "dead-lettering failed; will retry");
    }
  }

  async function drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (jobs.size > 0 || consumer.status.isPolling) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      // Polling ends without a job finishing, so look again every 100 ms as well.
      await Promise.race([nextChange(), new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, 100))))]);
      clearTimeout(timer);
    }
    if (jobs.size === 0) return;
    const unfinished = [...jobs];
    logger.warn({ count: unfinished.length, timeoutMs }, "stop timed out; releasing unfinished messages to the queue");
    await Promise.all(
      unfinished.map(async (job) => {
        job.released = true;
        await stopHeartbeat(job);
        job.controller.abort(new Error("worker stopped; message released to the queue"));
        await changeVisibility(job.message, 0, logger.child({ messageId: job.message.MessageId }));
      }),
    );
  }

  return {
    start(): void {
      if (started) return;
      started = true;
      consumer.start();
      logger.info({ concurrency, visibilitySeconds: visibility, heartbeatSeconds }, "worker started");
    },
    stop(stopOpts?: { timeoutMs?: number }): Promise<void> {
      if (!started) return Promise.resolve();
      stopPromise ??= (async () => {
        stopping = true;
        // Abort the open long poll so an idle worker stops at once. Should SQS have just
        // handed that poll messages, they reappear after their visibility timeout: late, not lost.
        consumer.stop({ abort: true });
        stopSignal.abort();
        wake();
        await drain(stopOpts?.timeoutMs ?? 25_000);
        logger.info("worker stopped");
        logger.flush();
      })();
      return stopPromise;
    },
    get running(): boolean {
      return started && !stopping;
    },
    get inFlight(): number {
      return jobs.size;
    },
    get stats(): Readonly<WorkerStats> {
      return { ...stats };
    },
  };
}
