import type { Message, SQSClient } from "@aws-sdk/client-sqs";
import type { PermanentError } from "../errors.js";
import type { Liveness } from "../liveness.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { TaskProtection } from "../task-protection.js";

// The public shape of a queue worker: what a handler gets, what a service passes, what it gets back.

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
  /** The worker's metrics (its `metrics` option), for what the handler counts itself. */
  metrics?: Metrics;
}

export interface PoisonInfo {
  messageId: string;
  /** The raw body; record its size or a hash, never log it. */
  body: string;
  error: Error;
  attempt: number;
}

/** What a service hands each of its workers from runService (ServiceDeps): its liveness and its metrics. */
export interface WorkerObservers {
  /** See {@link WorkerOptions.liveness}. */
  liveness?: Liveness;
  /** See {@link WorkerOptions.metrics}. */
  metrics?: Metrics;
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
  /**
   * Told whenever the poll loop turns (and, while every slot is busy, whenever a heartbeat
   * settles), so the container's health check can tell a wedged worker from a busy one.
   */
  liveness?: Liveness;
  /**
   * Held while each message is handled, for jobs that outlast the stop timeout (a large split, a
   * failsafe break-down): scale-in and deployments wait for them. @defaultValue none
   */
  taskProtection?: TaskProtection;
  /** Receives each message's outcome (MessagesSucceeded, MessagesRetried, MessagesDeadLettered) and StageDuration. */
  metrics?: Metrics;
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

/** Counters since start, for health checks and tests. */
export interface WorkerStats {
  received: number;
  succeeded: number;
  retried: number;
  deadLettered: number;
  poison: number;
}
