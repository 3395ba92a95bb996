import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, type SQSClient } from "@aws-sdk/client-sqs";
import type { z } from "zod";
import { fullJitterBackoff, sleep } from "./backoff.js";
import { messageSchemas } from "./contracts.js";
import { coerceError, MessageRejectedError, QueueSendError } from "./errors.js";
import { silentLogger, type Logger } from "./logger.js";

/** SendMessageBatch takes at most 10 entries. */
export const MAX_BATCH_ENTRIES = 10;
/** SendMessageBatch takes at most 256 KiB of bodies (and attributes) in total, and one message no more. */
export const MAX_BATCH_BYTES = 262_144;

export interface BatchLimits {
  maxEntries?: number;
  maxBytes?: number;
}

/**
 * Groups message bodies, in order, into SendMessageBatch requests of at most `maxEntries`
 * entries and `maxBytes` UTF-8 bytes. Returns the indexes of the bodies in each request.
 * A body that alone is over `maxBytes` can never be sent and is rejected up front.
 */
export function planBatches(bodies: readonly string[], limits: BatchLimits = {}): number[][] {
  const maxEntries = limits.maxEntries ?? MAX_BATCH_ENTRIES;
  const maxBytes = limits.maxBytes ?? MAX_BATCH_BYTES;
  const batches: number[][] = [];
  let current: number[] = [];
  let currentBytes = 0;
  bodies.forEach((body, i) => {
    const bytes = Buffer.byteLength(body, "utf8");
    if (bytes > maxBytes) {
      throw new MessageRejectedError("message_too_large", `message ${i} is ${bytes} bytes; SQS takes at most ${maxBytes}`);
    }
    if (current.length === maxEntries || currentBytes + bytes > maxBytes) {
      batches.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(i);
    currentBytes += bytes;
  });
  if (current.length > 0) batches.push(current);
  return batches;
}

export type MessageQueueKey = keyof typeof messageSchemas;

export interface QueueSenderOptions {
  sqs: SQSClient;
  queueUrl: string;
  /** Logged with every line. @defaultValue the queue URL */
  queueName?: string;
  logger?: Logger;
  /** Tries per SendMessageBatch request, counting the first. @defaultValue `5` */
  maxAttempts?: number;
  /** Ceiling of the first retry's delay in ms (exponential, full jitter). @defaultValue `200` */
  retryBaseMs?: number;
  /** Longest delay between retries in ms. @defaultValue `5000` */
  retryMaxMs?: number;
  /** SendMessageBatch requests in flight at once within one `send`. @defaultValue `4` */
  parallelRequests?: number;
}

export interface QueueProducerOptions<K extends MessageQueueKey> extends Omit<QueueSenderOptions, "queueName"> {
  /** Which catalog schema every message is validated against before it is sent. */
  queue: K;
}

interface Outcome {
  rejected: { index: number; code: string; message: string }[];
  unsent: number[];
  lastError?: Error;
}

/**
 * Sends message bodies with SendMessageBatch, grouped by count and bytes, with entries that SQS
 * reports as failed (throttled, internal error) retried with backoff. Entries already sent stay
 * sent when `sendBodies` throws, so a caller that retries the whole call sends them twice;
 * consumers are idempotent, so that is safe. Bodies of our own queues go through
 * {@link QueueProducer}, which validates them first; this class alone sends bodies we do not
 * define (S3 event notifications).
 */
export class QueueSender {
  readonly queueUrl: string;
  protected readonly sqs: SQSClient;
  protected readonly logger: Logger;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly parallelRequests: number;

  constructor(opts: QueueSenderOptions) {
    this.sqs = opts.sqs;
    this.queueUrl = opts.queueUrl;
    this.logger = (opts.logger ?? silentLogger()).child({ component: "producer", queue: opts.queueName ?? opts.queueUrl });
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.retryBaseMs = opts.retryBaseMs ?? 200;
    this.retryMaxMs = opts.retryMaxMs ?? 5_000;
    this.parallelRequests = Math.max(1, opts.parallelRequests ?? 4);
  }

  /**
   * Sends every body. Throws {@link MessageRejectedError} (before sending anything) for an
   * oversized body, or after sending the rest when SQS blames the sender; throws
   * {@link QueueSendError} when entries still fail after `maxAttempts`.
   */
  async sendBodies(bodies: string[], opts?: { delaySeconds?: number }): Promise<void> {
    if (bodies.length === 0) return;
    const batches = planBatches(bodies);

    const outcome: Outcome = { rejected: [], unsent: [] };
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        await this.sendBatch(batch, bodies, opts?.delaySeconds, outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallelRequests, batches.length) }, lane));

    if (outcome.rejected.length > 0) {
      const first = outcome.rejected[0]!;
      throw new MessageRejectedError(
        first.code,
        `SQS rejected ${outcome.rejected.length} of ${bodies.length} messages as the sender's fault (first: message ${first.index}: ${first.message})`,
        { queueUrl: this.queueUrl },
      );
    }
    if (outcome.unsent.length > 0) {
      throw new QueueSendError(
        `${outcome.unsent.length} of ${bodies.length} messages were not sent after ${this.maxAttempts} tries`,
        { failedCount: outcome.unsent.length, queueUrl: this.queueUrl, cause: outcome.lastError },
      );
    }
  }

  private async sendBatch(indexes: number[], bodies: string[], delaySeconds: number | undefined, outcome: Outcome): Promise<void> {
    let pending = indexes;
    for (let attempt = 1; ; attempt++) {
      const entries: SendMessageBatchRequestEntry[] = pending.map((i) => ({
        Id: String(i),
        MessageBody: bodies[i],
        ...(delaySeconds !== undefined && { DelaySeconds: delaySeconds }),
      }));
      let retry: number[];
      try {
        const out = await this.sqs.send(new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }));
        retry = [];
        for (const f of out.Failed ?? []) {
          const index = Number(f.Id);
          if (f.SenderFault) {
            outcome.rejected.push({ index, code: f.Code ?? "sender_fault", message: f.Message ?? "" });
          } else {
            retry.push(index);
          }
        }
        if (retry.length > 0) {
          outcome.lastError = new Error(`SendMessageBatch entries failed: ${(out.Failed ?? []).map((f) => f.Code).join(", ")}`);
          this.logger.warn({ attempt, failed: retry.length, codes: [...new Set((out.Failed ?? []).map((f) => f.Code))] }, "send batch partly failed");
        }
      } catch (e) {
        // The SDK has already retried the request itself; whatever is left still deserves our backoff.
        outcome.lastError = coerceError(e);
        retry = pending;
        this.logger.warn({ attempt, failed: retry.length, err: outcome.lastError }, "send batch request failed");
      }
      if (retry.length === 0) return;
      if (attempt >= this.maxAttempts) {
        outcome.unsent.push(...retry);
        return;
      }
      pending = retry;
      await sleep(fullJitterBackoff(attempt, { base: this.retryBaseMs, cap: this.retryMaxMs }));
    }
  }
}

/** A {@link QueueSender} for one of our queues: every message is validated against the queue's catalog schema before anything is sent. */
export class QueueProducer<K extends MessageQueueKey> extends QueueSender {
  readonly queue: K;

  constructor(opts: QueueProducerOptions<K>) {
    super({ ...opts, queueName: opts.queue });
    this.queue = opts.queue;
  }

  /** Validates every message (throwing {@link MessageRejectedError} before sending anything), then sends them all; see `sendBodies`. */
  async send(messages: z.input<(typeof messageSchemas)[K]>[], opts?: { delaySeconds?: number }): Promise<void> {
    const schema = messageSchemas[this.queue] as unknown as z.ZodType;
    const bodies = messages.map((m, i) => {
      const parsed = schema.safeParse(m);
      if (!parsed.success) {
        throw new MessageRejectedError(
          "invalid_message",
          `message ${i} does not match the ${this.queue} schema: ${parsed.error.message}`,
          { cause: parsed.error, queueUrl: this.queueUrl },
        );
      }
      return JSON.stringify(parsed.data);
    });
    await this.sendBodies(bodies, opts);
  }
}
