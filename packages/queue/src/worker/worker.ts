import { DeleteMessageCommand, type Message, type QueueAttributeName } from "@aws-sdk/client-sqs";
import { Consumer } from "sqs-consumer";
import { fullJitterBackoff, sleep } from "../backoff.js";
import { sendToDeadLetterQueue, type DeadLetterReason } from "../dead-letter.js";
import { DEFAULT_STOP_TIMEOUT_SECONDS } from "../defaults.js";
import { coerceError, errorCode, PermanentError, type PoisonMessageError } from "../errors.js";
import type { LivenessProbe } from "../liveness.js";
import { childLogger, silentLogger, type Logger } from "../logger.js";
import { noMetrics } from "../metrics.js";
import { AckBatcher } from "./acks.js";
import { changeVisibility as setVisibility, Heartbeat, MAX_VISIBILITY_SECONDS } from "./heartbeat.js";
import { decodeBody, messageIds, receiveCount } from "./message.js";
import type { HandlerContext, Worker, WorkerOptions, WorkerStats } from "./types.js";

/** A message being handled. */
interface Job {
  message: Message;
  controller: AbortController;
  heartbeat: Heartbeat;
  /** Bound with the message id and attempt. */
  log: Logger;
  /** Given back by stop(): its fate is no longer ours to send. */
  released: boolean;
}

const clamp = (n: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, n));
/** Longest pause between receives after receive errors (see preReceiveMessageCallback). */
const RECEIVE_BACKOFF_CAP_MS = 30_000;
/**
 * Handled messages finishing this close together are deleted by one DeleteMessageBatch. At 20 ms
 * a batch carried 1.3 messages on average (bench:e2e, 1.68 deletes per page); a handled message
 * stays invisible the while, far within its visibility timeout.
 */
const ACK_WINDOW_MS = 200;
/**
 * After a receive that brought fewer messages than there were free slots (the queue is nearly
 * empty, its messages arrive one at a time), the next receive waits this long, so that it carries
 * the messages that came meanwhile instead of one each. A lone message is not delayed: the poll
 * that takes it was open when it arrived.
 */
const RECEIVE_LINGER_MS = 200;

/**
 * A queue worker on sqs-consumer.
 *
 * Concurrency: sqs-consumer awaits its batch handler before it polls again, so a plain
 * `handleMessage` would hold a whole batch hostage to its slowest message. Instead the batch
 * handler only dispatches each message into a pool of `concurrency` slots and returns once a
 * slot is free, after setting the next receive's size to the free slots. The next receive waits
 * until half the slots (at least one) are free, so messages come several to a ReceiveMessage
 * rather than one per finished handler, while the other half keeps working; never more than
 * `concurrency` messages are held (none waits invisible in a local queue), and one consumer per
 * process keeps one long poll open; after a receive that did not fill the free slots, the next
 * one waits a moment so messages that trickle in come several to a request too. The worker
 * acknowledges, retries and dead-letters each message itself; handled messages are deleted up to
 * ten to a request (see AckBatcher).
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
  const metrics = opts.metrics ?? noMetrics;
  const waitTimeSeconds = clamp(opts.waitTimeSeconds ?? 20, 1, 20);

  const jobs = new Set<Job>();
  let probe: LivenessProbe | undefined;
  // The longest a healthy loop stays silent: a long poll, the receive backoff, or (all slots
  // busy) a heartbeat period, with room for one slow call.
  const maxSilenceMs = 3 * Math.max(waitTimeSeconds * 1000, heartbeatSeconds * 1000, RECEIVE_BACKOFF_CAP_MS);
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
  /** Free slots before the next receive: half of them, so receives come in batches. */
  const refillAt = Math.max(1, Math.min(maxReceive, Math.floor(concurrency / 2)));
  /** The size of the receive that is open, or the next one. */
  let asked = receiveSize();
  const resize = (): void => {
    asked = receiveSize();
    consumer.updateOption("batchSize", asked);
  };
  const acks = new AckBatcher(sqs, queueUrl, ACK_WINDOW_MS);
  /** Deletes of handled messages still on their way, awaited by stop(). */
  const acking = new Set<Promise<void>>();

  const consumer = Consumer.create({
    queueUrl,
    sqs,
    batchSize: asked,
    visibilityTimeout: visibility,
    waitTimeSeconds,
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
      probe?.beat();
      if (receiveFailures > 0) await sleep(fullJitterBackoff(receiveFailures, { base: 1_000, cap: RECEIVE_BACKOFF_CAP_MS }), stopSignal.signal);
    },
    postReceiveMessageCallback: async () => {
      probe?.beat();
      receiveFailures = 0;
    },
    handleMessageBatch: async (messages) => {
      if (stopping) {
        // Received by the poll that was open when stop() was called: hand straight back.
        await Promise.all(messages.map((m) => changeVisibility(m, 0, logger)));
        return [];
      }
      for (const m of messages) dispatch(m);
      if (messages.length < asked) await sleep(RECEIVE_LINGER_MS, stopSignal.signal).catch(() => undefined);
      while (concurrency - jobs.size < refillAt && !stopping) await nextChange();
      if (!stopping) resize();
      return [];
    },
  });
  consumer.on("empty", () => {
    probe?.beat();
    if (!stopping) resize();
  });
  consumer.on("error", (err) => {
    // The aborted long poll of stop() lands here too.
    if (stopping) return;
    probe?.beat();
    receiveFailures++;
    logger.error({ err, consecutiveFailures: receiveFailures }, "receiving messages failed");
  });

  const changeVisibility = (m: Message, seconds: number, log: Logger) => setVisibility(sqs, queueUrl, m, seconds, log);

  async function deleteMessage(m: Message): Promise<void> {
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
  }

  function dispatch(message: Message): void {
    const controller = new AbortController();
    const log = childLogger(logger, { messageId: message.MessageId ?? "unknown", attempt: receiveCount(message) });
    const heartbeat = new Heartbeat({
      sqs,
      queueUrl,
      message,
      visibilitySeconds: visibility,
      periodSeconds: heartbeatSeconds,
      log,
      onLost: (err) => controller.abort(err),
      // Every slot busy: the poll loop waits for one by design, and the jobs' heartbeats show it is not stuck.
      onBeat: () => {
        if (jobs.size >= concurrency) probe?.beat();
      },
    });
    const job: Job = { message, controller, heartbeat, log, released: false };
    jobs.add(job);
    stats.received++;
    void handleJob(job)
      .catch((e: unknown) => logger.error({ err: coerceError(e), messageId: message.MessageId }, "message processing crashed"))
      .finally(() => {
        heartbeat.cancel();
        jobs.delete(job);
        wake();
      });
  }

  async function handleJob(job: Job): Promise<void> {
    const m = job.message;
    const messageId = m.MessageId ?? "unknown";
    const attempt = receiveCount(m);
    let log = job.log;
    job.heartbeat.start();
    const startedAt = performance.now();
    const body = m.Body ?? "";

    let value: T;
    try {
      value = decodeBody(body, opts.parse, { queueUrl, messageId });
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
    const ctx: HandlerContext = { messageId, attempt, logger: log, signal: job.controller.signal, message: m, metrics };
    try {
      await (opts.taskProtection ? opts.taskProtection.hold(() => opts.handle(value, ctx)) : opts.handle(value, ctx));
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

    await job.heartbeat.stop();
    const durationMs = Math.round(performance.now() - startedAt);
    // The slot is free for the next message while the delete waits for its batch.
    const acked = acks.delete(m).then(
      () => {
        stats.succeeded++;
        metrics.count("MessagesSucceeded");
        metrics.record("StageDuration", durationMs);
        log.debug({ durationMs }, "message handled");
      },
      // The work is done and idempotent; a redelivery repeats it harmlessly.
      (e: unknown) => log.warn({ err: coerceError(e) }, "acknowledging a handled message failed; it will be redelivered"),
    );
    acking.add(acked);
    void acked.finally(() => acking.delete(acked));
  }

  async function retryLater(job: Job, attempt: number, err: Error, log: Logger, msg: string, durationMs?: number): Promise<void> {
    await job.heartbeat.stop();
    if (job.released) return;
    stats.retried++;
    metrics.count("MessagesRetried");
    const delay = Math.round(fullJitterBackoff(attempt, { base: retryBase, cap: retryMax }));
    log.warn({ err, errorCode: errorCode(err), retryInSeconds: delay, durationMs }, msg);
    await changeVisibility(job.message, clamp(delay, 0, MAX_VISIBILITY_SECONDS), log);
  }

  async function deadLetter(job: Job, reason: DeadLetterReason, err: Error, attempt: number, log: Logger): Promise<void> {
    await job.heartbeat.stop();
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
      metrics.count("MessagesDeadLettered");
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
        await job.heartbeat.stop();
        job.controller.abort(new Error("worker stopped; message released to the queue"));
        await changeVisibility(job.message, 0, job.log);
      }),
    );
  }

  return {
    start(): void {
      if (started) return;
      started = true;
      probe = opts.liveness?.loop(opts.name, maxSilenceMs);
      consumer.start();
      logger.info({ concurrency, visibilitySeconds: visibility, heartbeatSeconds }, "worker started");
    },
    stop(stopOpts?: { timeoutMs?: number }): Promise<void> {
      if (!started) return Promise.resolve();
      stopPromise ??= (async () => {
        stopping = true;
        probe?.close();
        // Abort the open long poll so an idle worker stops at once. Should SQS have just
        // handed that poll messages, they reappear after their visibility timeout: late, not lost.
        consumer.stop({ abort: true });
        stopSignal.abort();
        wake();
        await drain(stopOpts?.timeoutMs ?? DEFAULT_STOP_TIMEOUT_SECONDS * 1000);
        await acks.flush();
        await Promise.all([...acking]);
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
