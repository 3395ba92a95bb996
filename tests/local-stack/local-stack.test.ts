import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import {
  ChangeMessageVisibilityCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { createPrisma } from "@docpipe/db";
import { REPO_ROOT, start } from "@docpipe/local-stack";
import { imageKey, pageKey, parseS3Event, queues, resolveQueueUrls, type QueueKey } from "@docpipe/queue";
import { assertNoWorkerPolling, describe, expect, test } from "../fixtures/index.js";
import { waitFor } from "../fixtures/wait.js";

/** A long poll, as a worker does it; SQS answers as soon as it has any message. */
async function receive(sqs: SQSClient, queueUrl: string, waitTimeSeconds = 5): Promise<Message[]> {
  const out = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: waitTimeSeconds,
      // local-aws-sqs answers ApproximateReceiveCount only when asked under the old name.
      AttributeNames: ["All"],
      MessageSystemAttributeNames: ["All"],
    }),
  );
  return out.Messages ?? [];
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("queues", () => {
  test("every catalog queue exists with its DLQ, visibility timeout and redrive policy", async ({ stack }) => {
    for (const key of Object.keys(queues) as QueueKey[]) {
      const { url, dlqUrl } = stack.queueUrls[key];
      expect(url).toMatch(new RegExp(`/${stack.queuePrefix}${queues[key].name}$`));
      expect(dlqUrl).toMatch(new RegExp(`/${stack.queuePrefix}${queues[key].name}-dlq$`));
      const main = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }));
      const dlq = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["All"] }));
      expect(Number(main.Attributes?.VisibilityTimeout)).toBe(queues[key].visibilityTimeoutSeconds);
      expect(JSON.parse(main.Attributes?.RedrivePolicy ?? "null")).toEqual({
        deadLetterTargetArn: dlq.Attributes?.QueueArn,
        maxReceiveCount: queues[key].maxReceiveCount,
      });
    }
    // Services find the same queues by name, as they do on AWS.
    expect(await resolveQueueUrls(stack.sqs, stack.queuePrefix)).toEqual(stack.queueUrls);
  });

  test("a message that fails maxReceiveCount times moves to the DLQ", async ({ stack }) => {
    const { url, dlqUrl } = stack.queueUrls.large;
    const body = JSON.stringify({ probe: randomUUID() });
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));

    // A worker that fails every time: receive, then hand the message straight back.
    for (let attempt = 1; attempt <= queues.large.maxReceiveCount; attempt++) {
      const [message] = await receive(stack.sqs, url);
      expect(message?.Body).toBe(body);
      expect(Number(message?.Attributes?.ApproximateReceiveCount)).toBe(attempt);
      await stack.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: message?.ReceiptHandle, VisibilityTimeout: 0 }));
    }

    expect(await receive(stack.sqs, url, 1)).toEqual([]);
    const dead = await receive(stack.sqs, dlqUrl);
    expect(dead.map((m) => m.Body)).toEqual([body]);
  });

  test("a long poll whose client hung up ends there and takes no message", async ({ stack }) => {
    const { url } = stack.queueUrls.small;
    // A worker stopping: it aborts its open long poll.
    const hangUp = new AbortController();
    const poll = stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 10 }), { abortSignal: hangUp.signal });
    await waitFor("the long poll to open", () => stack.openReceiveRequests() > 0, { timeoutMs: 2_000, intervalMs: 20 });
    hangUp.abort();
    await expect(poll).rejects.toThrow();
    await waitFor("the long poll to end", () => stack.openReceiveRequests() === 0, { timeoutMs: 2_000, intervalMs: 20 });

    // Had the stand-in kept polling for the closed connection, it would take this message and
    // hide it for the queue's visibility timeout (120 s).
    const body = JSON.stringify({ probe: randomUUID() });
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
    const [message] = await receive(stack.sqs, url, 2);
    expect(message?.Body).toBe(body);
    expect(Number(message?.Attributes?.ApproximateReceiveCount)).toBe(1);
  });
});

describe("S3 notifications", () => {
  test("an image written under batches/.../images/ in the work bucket is announced on converted-image in S3's format", async ({ stack }) => {
    const doc = { batchId: randomUUID(), documentId: randomUUID() };
    const key = imageKey(doc, 7);
    const png = Buffer.from("\x89PNG\r\n\x1a\n not really a png, but bytes all the same");

    // Neither of these is announced: another prefix, another bucket.
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.workBucket, Key: pageKey(doc, 7), Body: "%PDF-1.7" }));
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: key, Body: png }));
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.workBucket, Key: key, Body: png, ContentType: "image/png" }));

    const messages = await receive(stack.sqs, stack.queueUrls.convertedImage.url);
    expect(messages).toHaveLength(1);
    const event = JSON.parse(messages[0]?.Body ?? "{}");
    expect(event.Records).toHaveLength(1);
    expect(event.Records[0]).toMatchObject({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "us-east-1",
      eventName: "ObjectCreated:Put",
      s3: {
        s3SchemaVersion: "1.0",
        bucket: { name: stack.workBucket, arn: `arn:aws:s3:::${stack.workBucket}` },
        object: { key, size: png.length, eTag: createHash("md5").update(png).digest("hex") },
      },
    });
    expect(Date.parse(event.Records[0].eventTime)).not.toBeNaN();
    expect(parseS3Event(messages[0]?.Body)).toEqual({
      kind: "records",
      records: [{ bucket: stack.workBucket, key, size: png.length, eventName: "ObjectCreated:Put" }],
    });

    // The object itself is intact (no checksum framing stored with it).
    const stored = await stack.s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: key }));
    expect(Buffer.from(await stored.Body!.transformToByteArray())).toEqual(png);
    expect(await receive(stack.sqs, stack.queueUrls.convertedImage.url, 1)).toEqual([]);
  });
});

test("a streamed upload through a default S3 client is stored as sent", async ({ stack }) => {
  // The SDK's defaults (no checksum settings): streams go out aws-chunked with a CRC trailer.
  const s3 = new S3Client({ region: stack.region, endpoint: stack.s3Endpoint, forcePathStyle: true, credentials: stack.credentials });
  try {
    const body = Buffer.from("0123456789abcdef".repeat(20_000));
    const key = `streamed/${randomUUID()}.bin`;
    await s3.send(
      new PutObjectCommand({ Bucket: stack.workBucket, Key: key, Body: Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]), ContentLength: body.length }),
    );
    const stored = await s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: key }));
    expect(stored.ContentLength).toBe(body.length);
    expect(Buffer.from(await stored.Body!.transformToByteArray()).equals(body)).toBe(true);
  } finally {
    s3.destroy();
  }
});

describe("databases", () => {
  test("the stack's and each test's database carry every committed migration", async ({ stack, databaseUrl, prisma }) => {
    const committed = (await fs.readdir(path.join(REPO_ROOT, "prisma/migrations"), { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    expect(committed.length).toBeGreaterThan(0);
    for (const url of [stack.databaseUrl, databaseUrl]) {
      const client = createPrisma({ databaseUrl: url });
      try {
        const rows = await client.$queryRaw<{ migration_name: string }[]>`
          SELECT migration_name FROM _prisma_migrations
          WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`;
        expect(rows.map((r) => r.migration_name)).toEqual(committed);
      } finally {
        await client.$disconnect();
      }
    }
    const batch = await prisma.batch.create({ data: { bucket: stack.stagingBucket, prefixes: ["in/"] } });
    await prisma.auditEvent.create({ data: { batchId: batch.id, stage: "ingestion", outcome: "succeeded", workerId: "test" } });
    expect(await prisma.auditEvent.count({ where: { batchId: batch.id } })).toBe(1);
  });

  test("each test's database is its own", async ({ stack, prisma }) => {
    await prisma.batch.create({ data: { bucket: "b", prefixes: [] } });
    const other = createPrisma({ databaseUrl: await stack.createDatabase() });
    try {
      expect(await other.batch.count()).toBe(0);
      expect(await stack.prisma.batch.count()).toBe(0);
      expect(await prisma.batch.count()).toBe(1);
    } finally {
      await other.$disconnect();
    }
  });
});

test("two stacks run side by side without sharing anything, and stop cleanly", async ({ stack }) => {
  const second = await start();
  const state = JSON.parse(await fs.readFile(path.join(second.dataDir, "stack.json"), "utf8")) as { postgresPid: number };
  try {
    expect(new Set([stack.databaseUrl, second.databaseUrl]).size).toBe(2);
    expect(second.s3Endpoint).not.toBe(stack.s3Endpoint);
    expect(second.sqsEndpoint).not.toBe(stack.sqsEndpoint);

    await second.s3.send(new PutObjectCommand({ Bucket: second.workBucket, Key: "only-in-second.txt", Body: "x" }));
    const listed = await stack.s3.send(new ListObjectsV2Command({ Bucket: stack.workBucket, Prefix: "only-in-second" }));
    expect(listed.KeyCount ?? 0).toBe(0);

    await second.sqs.send(new SendMessageCommand({ QueueUrl: second.queueUrls.ingest.url, MessageBody: "{}" }));
    expect(await receive(stack.sqs, stack.queueUrls.ingest.url, 1)).toEqual([]);

    await second.prisma.batch.create({ data: { bucket: "b", prefixes: [] } });
    expect(await stack.prisma.batch.count()).toBe(0);
    expect(isRunning(state.postgresPid)).toBe(true);
  } finally {
    await second.stop();
  }
  expect(isRunning(state.postgresPid)).toBe(false);
  expect(existsSync(second.dataDir)).toBe(false);
});

test("the after-test check catches a worker left polling SQS, and passes once it stops", async ({ stack }) => {
  const worker = new AbortController();
  const poll = stack.sqs
    .send(new ReceiveMessageCommand({ QueueUrl: stack.queueUrls.ingest.url, WaitTimeSeconds: 10 }), { abortSignal: worker.signal })
    .catch(() => undefined);
  await expect(assertNoWorkerPolling(stack)).rejects.toThrow(/still polling SQS/);
  worker.abort();
  await poll;
  await assertNoWorkerPolling(stack);
});
