import { CreateBucketCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { IngestMessage } from "@docpipe/queue";
import type { Server } from "node:http";
import request from "supertest";
import { createApiKey, type CreatedKey, type CreateKeyInput } from "@docpipe/api-keys";
import { buildApp, type AppOptions, type IngestionApp } from "@docpipe/ingestion";
import type { Logger } from "@docpipe/queue";
import { test as stackTest } from "../fixtures/index.js";

/** Creates a bucket and fills it with tiny objects (the ingestion service never reads their bodies). */
export async function putObjects(s3: S3Client, bucket: string, keys: readonly string[], concurrency = 16): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((e: Error) => {
    if (e.name !== "BucketAlreadyOwnedByYou" && e.name !== "BucketAlreadyExists") throw e;
  });
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(key.endsWith("/") ? "" : `%PDF-1.4 ${key}`) }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

/**
 * Receives and deletes every message on the queue until it stays empty, returning the ingest
 * messages (all of them; callers filter by batch id).
 */
export async function drainIngestQueue(sqs: SQSClient, queueUrl: string): Promise<IngestMessage[]> {
  const out: IngestMessage[] = [];
  for (let empty = 0; empty < 2; ) {
    const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    const messages = r.Messages ?? [];
    if (messages.length === 0) {
      empty++;
      continue;
    }
    empty = 0;
    for (const m of messages) out.push(IngestMessage.parse(JSON.parse(m.Body!)));
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
  return out;
}

/** Keys `${prefix}${i}.pdf` for i in [0, n), zero-padded so listing order is numeric order. */
export const pdfKeys = (prefix: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}doc-${String(i).padStart(6, "0")}.pdf`);

/** The owner of the keys the ingestion tests make. */
export const TEST_OWNER = "tests";

/** A key for the tests: the `local` plan (1000/s, no quota), any bucket, unless told otherwise. */
export async function createTestKey(prisma: PrismaClient, opts: Partial<CreateKeyInput> = {}): Promise<CreatedKey> {
  return createApiKey(prisma, { name: "tests", owner: TEST_OWNER, plan: "local", buckets: ["*"], ...opts });
}

/** supertest on an app's server with an API key on every request. */
export const authed = (app: { server: Server }, key: string) => request.agent(app.server).set("x-api-key", key);

/**
 * `test` with a key of the test's own and `makeApp`: ingestion apps on the test's database and
 * the file's stack (small body limit; `o` overrides any option), closed after the test.
 */
export function appTest(logger: Logger) {
  return stackTest.extend<{ $test: { key: string; makeApp: (o?: Partial<AppOptions>) => Promise<IngestionApp> } }>({
    key: async ({ prisma }, use) => {
      await use((await createTestKey(prisma)).key);
    },
    makeApp: async ({ stack, prisma }, use) => {
      const made: IngestionApp[] = [];
      try {
        await use(async (o = {}) => {
          const app = buildApp({ prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger, bodyLimit: 4096, ...o });
          made.push(app);
          await app.ready();
          return app;
        });
      } finally {
        for (const app of made) await app.close();
      }
    },
  });
}
