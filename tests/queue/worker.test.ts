import { randomUUID } from "node:crypto";
import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import {
  PermanentError,
  SinglePageMessage,
  TransientError,
  createWorker,
  deadLetterAttributes,
  readDeadLetterInfo,
  type HandlerContext,
  type PoisonInfo,
  type WorkerOptions,
} from "@docpipe/queue";
import { describe, expect } from "vitest";
import { waitFor } from "../fixtures/wait.js";
import { queueCounts } from "../fixtures/queues.js";
import { drainQueue, test, type TestQueue } from "./fixtures.js";

const page = (pageNumber = 1): SinglePageMessage => ({
  version: 1,
  batchId: randomUUID(),
  documentId: randomUUID(),
  bucket: "docpipe-work",
  key: `pages/${pageNumber}.pdf`,
  pageNumber,
});

async function send(sqs: SQSClient, queueUrl: string, bodies: string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })),
      }),
    );
  }
}

function options(
  sqs: SQSClient,
  q: TestQueue,
  handle: WorkerOptions<SinglePageMessage>["handle"],
  extra: Partial<WorkerOptions<SinglePageMessage>> = {},
): WorkerOptions<SinglePageMessage> {
  return {
    name: "test-worker",
    queueUrl: q.url,
    dlqUrl: q.dlqUrl,
    sqs,
    parse: (b) => SinglePageMessage.parse(b),
    handle,
    waitTimeSeconds: 1,
    ...extra,
  };
}

describe("worker", () => {
  test("dead-letters poison messages at once with their reason, without calling the handler", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: q.url,
        MessageBody: "{not json",
        MessageAttributes: { origin: { DataType: "String", StringValue: "upstream" } },
      }),
    );
    const wrongSchema = JSON.stringify({ ...page(), pageNumber: -1 });
    await send(sqs, q.url, [wrongSchema]);

    const poisoned: PoisonInfo[] = [];
    let handled = 0;
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async () => {
            handled++;
          },
          { onPoison: async (info) => void poisoned.push(info) },
        ),
      ),
    );
    worker.start();

    const dead = await drainQueue(sqs, q.dlqUrl, 2);
    await worker.stop();

    expect(handled).toBe(0);
    expect(worker.stats).toMatchObject({ received: 2, poison: 2, deadLettered: 2, succeeded: 0 });
    expect(poisoned.map((p) => p.error.name)).toEqual(["PoisonMessageError", "PoisonMessageError"]);
    expect(poisoned.map((p) => p.attempt)).toEqual([1, 1]);
    expect(dead.map((m) => m.Body).sort()).toEqual(["{not json", wrongSchema].sort());

    const json = dead.find((m) => m.Body === "{not json")!;
    expect(readDeadLetterInfo(json)).toMatchObject({ reason: "poison", errorCode: "invalid_json", attempt: 1, sourceQueueUrl: q.url });
    // The original's own attributes travel with it.
    expect(json.MessageAttributes?.origin?.StringValue).toBe("upstream");
    const schema = dead.find((m) => m.Body === wrongSchema)!;
    expect(readDeadLetterInfo(schema)).toMatchObject({ reason: "poison", errorCode: "invalid_message", workerId: "test-worker" });
    expect(schema.MessageAttributes?.[deadLetterAttributes.errorMessage]?.StringValue).toContain("pageNumber");

    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
  });

  test("dead-letters a PermanentError at once and reports it to onDeadLetter", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    const msg = page(7);
    await send(sqs, q.url, [JSON.stringify(msg)]);

    const deadLettered: { message: SinglePageMessage; error: PermanentError; ctx: HandlerContext }[] = [];
    let calls = 0;
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async () => {
            calls++;
            throw new PermanentError("not_pdf", "the file is not a PDF");
          },
          { onDeadLetter: async (message, error, ctx) => void deadLettered.push({ message, error, ctx }) },
        ),
      ),
    );
    worker.start();

    const [dead] = await drainQueue(sqs, q.dlqUrl, 1);
    await worker.stop();

    expect(calls).toBe(1);
    expect(deadLettered).toHaveLength(1);
    expect(deadLettered[0]!.message).toEqual(msg);
    expect(deadLettered[0]!.error.code).toBe("not_pdf");
    expect(deadLettered[0]!.ctx.attempt).toBe(1);
    expect(JSON.parse(dead!.Body!)).toEqual(msg);
    expect(readDeadLetterInfo(dead!)).toMatchObject({ reason: "permanent", errorCode: "not_pdf", errorMessage: "the file is not a PDF", attempt: 1 });
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
  });

  test("leaves a transient failure for a retry after a backoff, then acknowledges it", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    const msg = page(2);
    await send(sqs, q.url, [JSON.stringify(msg)]);

    const attempts: number[] = [];
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async (_m, ctx) => {
            attempts.push(ctx.attempt);
            if (attempts.length === 1) throw new TransientError("s3_unavailable", "S3 said 503");
          },
          { retryBaseSeconds: 1, retryMaxSeconds: 1 },
        ),
      ),
    );
    worker.start();
    await waitFor("a second attempt", () => attempts.length === 2);
    await waitFor("nothing in flight", async () => (await queueCounts(sqs, q.url)).inFlight === 0);
    await worker.stop();

    expect(attempts[0]).toBe(1);
    expect(worker.stats).toMatchObject({ received: 2, retried: 1, succeeded: 1, deadLettered: 0 });
    // A redelivery, told apart by its receive count (local-aws-sqs also counts visibility changes).
    expect(attempts[1]).toBeGreaterThan(1);
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
    expect(await queueCounts(sqs, q.dlqUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  test("dead-letters with reason retries_exhausted on the last receive when maxReceiveCount is set", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    await send(sqs, q.url, [JSON.stringify(page())]);
    const errors: PermanentError[] = [];
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async () => {
            throw new Error("model endpoint returned 502");
          },
          { maxReceiveCount: 1, onDeadLetter: async (_m, e) => void errors.push(e) },
        ),
      ),
    );
    worker.start();
    const [dead] = await drainQueue(sqs, q.dlqUrl, 1);
    await worker.stop();

    expect(errors[0]?.code).toBe("retries_exhausted");
    expect((errors[0]?.cause as Error).message).toBe("model endpoint returned 502");
    expect(readDeadLetterInfo(dead!)).toMatchObject({ reason: "retries_exhausted", errorCode: "retries_exhausted" });
  });

  test("keeps a long job invisible with heartbeats", async ({ sqs, createQueue, track }) => {
    const q = await createQueue({ visibilityTimeoutSeconds: 2 });
    await send(sqs, q.url, [JSON.stringify(page())]);
    let calls = 0;
    let done = false;
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async () => {
            calls++;
            // Twice the visibility timeout: without heartbeats the message would reappear.
            await new Promise((r) => setTimeout(r, 4_500));
            done = true;
          },
          { visibilityTimeoutSeconds: 2, heartbeatSeconds: 1 },
        ),
      ),
    );
    worker.start();
    await waitFor("the first call", () => calls === 1);

    // A second consumer polling all along must never get the message.
    const stolen = await drainQueue(sqs, q.url, 1, 4_000);
    expect(stolen).toEqual([]);
    await waitFor("the handler to finish", () => done);
    await waitFor("nothing in flight", async () => (await queueCounts(sqs, q.url)).inFlight === 0);
    await worker.stop();
    expect(calls).toBe(1);
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
  });

  test("handles up to `concurrency` messages at once", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    const msgs = Array.from({ length: 9 }, (_, i) => page(i + 1));
    await send(sqs, q.url, msgs.map((m) => JSON.stringify(m)));
    let active = 0;
    let maxActive = 0;
    const seen: number[] = [];
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async (m) => {
            active++;
            maxActive = Math.max(maxActive, active);
            await new Promise((r) => setTimeout(r, 300));
            seen.push(m.pageNumber);
            active--;
          },
          { concurrency: 3, batchSize: 10 },
        ),
      ),
    );
    worker.start();
    await waitFor("nine messages", () => seen.length === 9);
    await worker.stop();
    expect(maxActive).toBe(3);
    expect(seen.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
  });

  test("receives several messages per request and deletes handled ones ten to a request", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    await send(sqs, q.url, Array.from({ length: 40 }, (_, i) => JSON.stringify(page(i + 1))));
    const requests: string[] = [];
    sqs.middlewareStack.add(
      (next, context) => (args) => {
        requests.push(context.commandName ?? "?");
        return next(args);
      },
      { step: "initialize", name: "countRequests" },
    );
    const seen: number[] = [];
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async (m) => {
            await new Promise((r) => setTimeout(r, 5 + (m.pageNumber % 7)));
            seen.push(m.pageNumber);
          },
          { concurrency: 8 },
        ),
      ),
    );
    worker.start();
    await waitFor("forty messages", () => seen.length === 40);
    await worker.stop();
    expect(new Set(seen).size).toBe(40);
    expect(worker.stats.succeeded).toBe(40);
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
    // One request per message each way would be 40 receives and 40 deletes.
    const count = (name: string) => requests.filter((r) => r === name).length;
    expect(count("DeleteMessageCommand")).toBe(0);
    expect(count("DeleteMessageBatchCommand")).toBeLessThanOrEqual(20);
    expect(count("ReceiveMessageCommand")).toBeLessThanOrEqual(20);
  });

  test("stop() finishes in-flight messages and leaves the rest in the queue", async ({ sqs, createQueue, track }) => {
    const q = await createQueue();
    const msgs = Array.from({ length: 5 }, (_, i) => page(i + 1));
    await send(sqs, q.url, msgs.map((m) => JSON.stringify(m)));
    const started: number[] = [];
    const finished: number[] = [];
    const worker = track(
      createWorker(
        options(
          sqs,
          q,
          async (m) => {
            started.push(m.pageNumber);
            await new Promise((r) => setTimeout(r, 800));
            finished.push(m.pageNumber);
          },
          { concurrency: 2 },
        ),
      ),
    );
    worker.start();
    await waitFor("two handlers started", () => started.length === 2);
    await worker.stop({ timeoutMs: 10_000 });

    expect(worker.running).toBe(false);
    expect(worker.inFlight).toBe(0);
    expect(finished.sort()).toEqual(started.sort());
    expect(started).toHaveLength(2);
    // Nothing lost, nothing done twice: the three not started are all still there.
    const rest = await drainQueue(sqs, q.url, 3, 5_000);
    const restPages = rest.map((m) => (JSON.parse(m.Body!) as SinglePageMessage).pageNumber);
    expect([...restPages, ...finished].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
  });

  test("stop() gives unfinished messages back to the queue at its timeout and aborts their handlers", async ({ sqs, createQueue, track }) => {
    const q = await createQueue({ visibilityTimeoutSeconds: 30 });
    const msg = page(3);
    await send(sqs, q.url, [JSON.stringify(msg)]);
    let signal: AbortSignal | undefined;
    const worker = track(
      createWorker(
        options(sqs, q, async (_m, ctx) => {
          signal = ctx.signal;
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          throw ctx.signal.reason;
        }),
      ),
    );
    worker.start();
    await waitFor("the handler's signal", () => signal !== undefined);
    const t0 = Date.now();
    await worker.stop({ timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(signal!.aborted).toBe(true);

    // Visible again at once, not after the 30 s visibility timeout.
    const [back] = await drainQueue(sqs, q.url, 1, 3_000);
    expect(JSON.parse(back!.Body!)).toEqual(msg);
    expect(await queueCounts(sqs, q.dlqUrl)).toEqual({ visible: 0, inFlight: 0 });
  });
});
