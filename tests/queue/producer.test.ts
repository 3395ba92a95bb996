import { randomUUID } from "node:crypto";
import {
  CreateQueueCommand,
  SQSClient,
  type BatchResultErrorEntry,
  type SendMessageBatchCommandInput,
  type SendMessageBatchCommandOutput,
} from "@aws-sdk/client-sqs";
import {
  MessageRejectedError,
  QueueNotFoundError,
  QueueProducer,
  QueueSendError,
  dlqName,
  queues,
  resolveQueueUrls,
  type IngestMessage,
} from "@docpipe/queue";
import { describe, expect } from "vitest";
import { queueCounts } from "../fixtures/queues.js";
import { drainQueue, test } from "./fixtures.js";

const ingest = (key = "in/doc.pdf"): IngestMessage => ({
  version: 1,
  batchId: randomUUID(),
  documentId: randomUUID(),
  bucket: "staging",
  key,
});

interface Sent {
  entries: number;
  bytes: number;
}

/**
 * A producer-side SQS client that records every SendMessageBatch request and, where `fail`
 * says so, keeps an entry from reaching local-aws-sqs and reports it in `Failed` the way SQS
 * does for a throttled or internal error. Everything else goes to the real stand-in.
 */
function producerClient(
  endpoint: string,
  fail: (entryId: string, request: number) => Omit<BatchResultErrorEntry, "Id"> | undefined = () => undefined,
): { sqs: SQSClient; requests: Sent[]; injected: number } {
  const sqs = new SQSClient({ region: "us-east-1", endpoint, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
  const state = { sqs, requests: [] as Sent[], injected: 0 };
  sqs.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== "SendMessageBatchCommand") return next(args);
      const input = args.input as SendMessageBatchCommandInput;
      const entries = input.Entries ?? [];
      const request = state.requests.length;
      state.requests.push({ entries: entries.length, bytes: entries.reduce((n, e) => n + Buffer.byteLength(e.MessageBody ?? ""), 0) });
      const failed: BatchResultErrorEntry[] = [];
      const kept = entries.filter((e) => {
        const f = fail(e.Id!, request);
        if (f) failed.push({ Id: e.Id, ...f });
        return !f;
      });
      state.injected += failed.length;
      if (kept.length === 0) {
        return { output: { Successful: [], Failed: failed, $metadata: {} } as SendMessageBatchCommandOutput, response: {} };
      }
      const result = await next({ ...args, input: { ...input, Entries: kept } });
      const output = result.output as SendMessageBatchCommandOutput;
      output.Failed = [...(output.Failed ?? []), ...failed];
      return result;
    },
    { step: "initialize", name: "recordAndFailEntries" },
  );
  return state;
}

const documentIds = (bodies: (string | undefined)[]): string[] => bodies.map((b) => (JSON.parse(b!) as IngestMessage).documentId);

describe("QueueProducer", () => {
  test("sends in requests of at most 10 entries and 256 KiB, each message once", async ({ sqs, sqsEndpoint, createQueue }) => {
    const q = await createQueue();
    const client = producerClient(sqsEndpoint);
    const producer = new QueueProducer({ sqs: client.sqs, queueUrl: q.url, queue: "ingest" });
    // Seven 100 KB messages among small ones: the byte limit splits before the count does.
    const messages = Array.from({ length: 25 }, (_, i) => ingest(i % 4 === 0 ? `in/${"k".repeat(100_000)}.pdf` : `in/${i}.pdf`));
    await producer.send(messages);

    for (const r of client.requests) {
      expect(r.entries).toBeLessThanOrEqual(10);
      expect(r.bytes).toBeLessThanOrEqual(262_144);
    }
    expect(client.requests.reduce((n, r) => n + r.entries, 0)).toBe(25);
    expect(client.requests.length).toBeGreaterThan(3);

    const got = await drainQueue(sqs, q.url, 25);
    expect(documentIds(got.map((m) => m.Body)).sort()).toEqual(messages.map((m) => m.documentId).sort());
    client.sqs.destroy();
  });

  test("retries entries SQS reports as failed until every message is sent exactly once", async ({ sqs, sqsEndpoint, createQueue }) => {
    const q = await createQueue();
    // Entries 3 and 7 fail in the first two requests that carry them.
    const seen = new Map<string, number>();
    const client = producerClient(sqsEndpoint, (id) => {
      if (id !== "3" && id !== "7") return undefined;
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      return n <= 2 ? { Code: "InternalError", SenderFault: false, Message: "try again" } : undefined;
    });
    const producer = new QueueProducer({ sqs: client.sqs, queueUrl: q.url, queue: "ingest", retryBaseMs: 20, retryMaxMs: 50 });
    const messages = Array.from({ length: 12 }, () => ingest());
    await producer.send(messages, { delaySeconds: 0 });

    expect(client.injected).toBe(4);
    expect(client.requests.length).toBe(4); // 10 + 2, then the two failed ones twice more
    const got = await drainQueue(sqs, q.url, 12);
    expect(documentIds(got.map((m) => m.Body)).sort()).toEqual(messages.map((m) => m.documentId).sort());
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
    client.sqs.destroy();
  });

  test("throws QueueSendError after maxAttempts, having sent the rest", async ({ sqs, sqsEndpoint, createQueue }) => {
    const q = await createQueue();
    const client = producerClient(sqsEndpoint, (id) => (id === "1" ? { Code: "ServiceUnavailable", SenderFault: false } : undefined));
    const producer = new QueueProducer({ sqs: client.sqs, queueUrl: q.url, queue: "ingest", maxAttempts: 3, retryBaseMs: 10 });
    const messages = Array.from({ length: 5 }, () => ingest());

    const err = await producer.send(messages).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueSendError);
    expect((err as QueueSendError).failedCount).toBe(1);
    expect((err as QueueSendError).ids.queueUrl).toBe(q.url);
    expect(client.injected).toBe(3);

    const got = await drainQueue(sqs, q.url, 4);
    expect(documentIds(got.map((m) => m.Body)).sort()).toEqual(messages.filter((_, i) => i !== 1).map((m) => m.documentId).sort());
    client.sqs.destroy();
  });

  test("does not retry what SQS blames on the sender", async ({ sqsEndpoint, createQueue }) => {
    const q = await createQueue();
    const client = producerClient(sqsEndpoint, (id) =>
      id === "0" ? { Code: "InvalidMessageContents", SenderFault: true, Message: "bad characters" } : undefined,
    );
    const producer = new QueueProducer({ sqs: client.sqs, queueUrl: q.url, queue: "ingest", retryBaseMs: 10 });
    await expect(producer.send([ingest(), ingest()])).rejects.toThrow(MessageRejectedError);
    expect(client.injected).toBe(1);
    client.sqs.destroy();
  });

  test("validates every message before sending any", async ({ sqs, createQueue }) => {
    const q = await createQueue();
    const producer = new QueueProducer({ sqs, queueUrl: q.url, queue: "ingest" });
    const bad = { ...ingest(), documentId: "not-a-uuid" };
    await expect(producer.send([ingest(), bad])).rejects.toMatchObject({ name: "MessageRejectedError", code: "invalid_message" });
    expect(await queueCounts(sqs, q.url)).toEqual({ visible: 0, inFlight: 0 });
  });
});

describe("resolveQueueUrls", () => {
  test("finds every catalog queue and its DLQ under a prefix", async ({ sqs }) => {
    const prefix = `t${Date.now()}-`;
    for (const spec of Object.values(queues)) {
      await sqs.send(new CreateQueueCommand({ QueueName: `${prefix}${spec.name}` }));
      await sqs.send(new CreateQueueCommand({ QueueName: `${prefix}${dlqName(spec)}` }));
    }
    const urls = await resolveQueueUrls(sqs, prefix);
    expect(Object.keys(urls).sort()).toEqual(Object.keys(queues).sort());
    expect(urls.singlePage.url).toMatch(new RegExp(`/${prefix}single-page$`));
    expect(urls.singlePage.dlqUrl).toMatch(new RegExp(`/${prefix}single-page-dlq$`));

    await expect(resolveQueueUrls(sqs, "missing-")).rejects.toThrow(QueueNotFoundError);
  });
});
