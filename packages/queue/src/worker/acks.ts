import { DeleteMessageBatchCommand, type Message, type SQSClient } from "@aws-sdk/client-sqs";

/** SQS takes at most ten entries per DeleteMessageBatch. */
const MAX_BATCH = 10;

interface Pending {
  receiptHandle: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Acknowledges handled messages ten to a DeleteMessageBatch: the messages that finish within
 * `windowMs` of each other share one request instead of one DeleteMessage each. A handled
 * message waits at most `windowMs` longer to be deleted, invisible all the while (its visibility
 * timeout is far longer), so nothing is redelivered for it.
 */
export class AckBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    private readonly windowMs: number,
  ) {}

  /** Resolves once the message is deleted; rejects with SQS's reason when it is not. */
  delete(message: Message): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ receiptHandle: message.ReceiptHandle ?? "", resolve, reject });
      if (this.pending.length >= MAX_BATCH) this.send();
      else this.timer ??= setTimeout(() => this.send(), this.windowMs);
    });
  }

  /** Sends what is waiting now and resolves when every batch sent so far has been answered. */
  async flush(): Promise<void> {
    while (this.pending.length > 0) this.send();
    await Promise.allSettled([...this.inFlight]);
  }

  private send(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending.splice(0, MAX_BATCH);
    if (this.pending.length > 0) this.timer = setTimeout(() => this.send(), this.windowMs);
    if (batch.length === 0) return;
    const sent = this.sqs
      .send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: batch.map((p, i) => ({ Id: String(i), ReceiptHandle: p.receiptHandle })),
        }),
      )
      .then((out) => {
        const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
        batch.forEach((p, i) => {
          const f = failed.get(String(i));
          if (f) p.reject(Object.assign(new Error(`${f.Code ?? "delete failed"}: ${f.Message ?? ""}`), { name: f.Code ?? "DeleteFailed" }));
          else p.resolve();
        });
      })
      .catch((e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        for (const p of batch) p.reject(err);
      })
      .finally(() => this.inFlight.delete(sent));
    this.inFlight.add(sent);
  }
}
