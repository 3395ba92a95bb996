import { ChangeMessageVisibilityCommand, type Message, type SQSClient } from "@aws-sdk/client-sqs";
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";

/** Codes SQS answers when a receipt handle is no longer ours (the message was redelivered or deleted). */
const LOST_RECEIPT = new Set(["ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"]);
/** SQS's longest visibility timeout: 12 hours. */
export const MAX_VISIBILITY_SECONDS = 43_200;

/** Sets a received message's visibility (0 gives it back at once). Resolves false, after logging, when SQS refused. */
export async function changeVisibility(sqs: SQSClient, queueUrl: string, m: Message, seconds: number, log: Logger): Promise<boolean> {
  try {
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: seconds }));
    return true;
  } catch (e) {
    log.warn({ err: coerceError(e), visibilitySeconds: seconds }, "changing message visibility failed");
    return false;
  }
}

export interface HeartbeatOptions {
  sqs: SQSClient;
  queueUrl: string;
  message: Message;
  /** Visibility given on every beat. */
  visibilitySeconds: number;
  periodSeconds: number;
  log: Logger;
  /** SQS says the receipt is no longer ours: someone else may hold the message now. */
  onLost: (err: Error) => void;
  /** Each extension settled, whatever its answer: the timer, and so the event loop, still turns. */
  onBeat?: () => void;
}

/** Keeps a message invisible while its handler runs, extending its visibility every period. */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  /** The extension in flight, awaited before the message's fate is sent so it cannot overwrite it. */
  private beat: Promise<void> | undefined;
  private ended = false;

  constructor(private readonly opts: HeartbeatOptions) {}

  start(): void {
    const { sqs, queueUrl, message, visibilitySeconds, log } = this.opts;
    this.timer = setInterval(() => {
      if (this.beat) return; // the previous extension is still on its way
      this.beat = sqs
        .send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle, VisibilityTimeout: visibilitySeconds }))
        .then(() => log.debug({ visibilitySeconds }, "visibility extended"))
        .catch((e: unknown) => {
          if (this.ended) return;
          const err = coerceError(e);
          if (LOST_RECEIPT.has(err.name)) {
            clearInterval(this.timer);
            log.warn({ err }, "message lost to the queue during a heartbeat; aborting its handler");
            this.opts.onLost(err);
          } else {
            log.warn({ err }, "visibility heartbeat failed; will try again");
          }
        })
        .finally(() => {
          this.beat = undefined;
          this.opts.onBeat?.();
        });
    }, this.opts.periodSeconds * 1000);
    this.timer.unref();
  }

  /** Ends the heartbeat before the message is acknowledged, retried or moved, so no late extension undoes that. */
  async stop(): Promise<void> {
    this.cancel();
    await this.beat;
  }

  /** Ends the heartbeat without waiting for an extension on its way (the message's fate is settled). */
  cancel(): void {
    this.ended = true;
    clearInterval(this.timer);
  }
}
