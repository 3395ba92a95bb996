import http from "node:http";
import type { AddressInfo } from "node:net";
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { deadLetterQueueName, queueName, queues, type QueueKey, type QueueUrls } from "@docpipe/queue";
import { createRequestHandler } from "local-aws-sqs";
import { LocalStackError } from "./errors.js";

/** Seconds a message stays in a DLQ: SQS's maximum, 14 days, as the infrastructure sets it. */
const DLQ_RETENTION_SECONDS = 1_209_600;

/** local-aws-sqs behind our own HTTP server, so that listen errors surface and stop() is prompt. */
export class SqsServer {
  readonly #port: number;
  readonly #server: http.Server;
  readonly #service: { PORT: number; Queues: { clearRecords(): void }[] };
  #openReceives = 0;
  readonly #requests = new Map<string, number>();

  constructor(opts: { port: number }) {
    this.#port = opts.port;
    const { service, requestHandler } = createRequestHandler({
      port: opts.port,
      hostname: "127.0.0.1",
      // Tests and restarts delete and recreate queues at once; AWS makes you wait 60 s.
      emulateQueueCreationLifecycle: false,
    });
    this.#service = service;
    this.#server = http.createServer((req, res) => {
      const target = req.headers["x-amz-target"];
      const action = typeof target === "string" ? target.slice(target.indexOf(".") + 1) : "query";
      this.#requests.set(action, (this.#requests.get(action) ?? 0) + 1);
      // Count long polls so a test can tell that a worker was left running.
      if (action === "ReceiveMessage") {
        this.#openReceives++;
        res.once("close", () => this.#openReceives--);
      }
      void requestHandler(req, res);
    });
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.#service.PORT}`;
  }

  /** ReceiveMessage requests being answered right now (long polls included). */
  get openReceives(): number {
    return this.#openReceives;
  }

  /** ReceiveMessage requests since start. */
  get receives(): number {
    return this.#requests.get("ReceiveMessage") ?? 0;
  }

  /** Requests since start by action (the JSON protocol's X-Amz-Target), e.g. `{ SendMessageBatch: 52 }`. */
  get requests(): Record<string, number> {
    return Object.fromEntries(this.#requests);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", (e) => reject(new LocalStackError(`cannot start the SQS stand-in on port ${this.#port}`, { cause: e })));
      this.#server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    // Queue URLs are built from the service's port, which must be the bound one.
    this.#service.PORT = (this.#server.address() as AddressInfo).port;
  }

  /**
   * Drops every message of every queue at once. PurgeQueue would do it through the API, but
   * local-aws-sqs, like SQS, allows it once a minute per queue.
   */
  purgeAll(): void {
    for (const queue of this.#service.Queues) queue.clearRecords();
  }

  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    // Also clears the messages' visibility and retention timers.
    this.purgeAll();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Long polls of clients that were not stopped would hold close() for up to 20 s.
    this.#server.closeAllConnections();
    await closed;
  }
}

/**
 * Creates every catalog queue as `${prefix}${name}` with its DLQ `${prefix}${name}-dlq`, the
 * queue's visibility timeout, and a redrive policy with the catalog's maxReceiveCount, as the
 * infrastructure does on AWS. Idempotent (CreateQueue with the same attributes is).
 */
export async function createQueues(sqs: SQSClient, prefix: string): Promise<Record<QueueKey, QueueUrls>> {
  const keys = Object.keys(queues) as QueueKey[];
  const entries = await Promise.all(
    keys.map(async (key) => {
      const spec = queues[key];
      const dlq = await sqs.send(
        new CreateQueueCommand({
          QueueName: deadLetterQueueName(key, prefix),
          Attributes: { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) },
        }),
      );
      const dlqAttributes = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ["QueueArn"] }));
      const main = await sqs.send(
        new CreateQueueCommand({
          QueueName: queueName(key, prefix),
          Attributes: {
            VisibilityTimeout: String(spec.visibilityTimeoutSeconds),
            RedrivePolicy: JSON.stringify({
              deadLetterTargetArn: dlqAttributes.Attributes?.QueueArn,
              maxReceiveCount: spec.maxReceiveCount,
            }),
          },
        }),
      );
      if (!main.QueueUrl || !dlq.QueueUrl) throw new LocalStackError(`CreateQueue returned no URL for ${queueName(key, prefix)}`);
      return [key, { url: main.QueueUrl, dlqUrl: dlq.QueueUrl }] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<QueueKey, QueueUrls>;
}
