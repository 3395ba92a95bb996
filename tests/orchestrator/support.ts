import { readFile } from "node:fs/promises";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type QueueAttributeName,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";

/**
 * Receives and deletes messages from `queueUrl` until `count` have arrived or `timeoutMs`
 * passes, and returns what arrived (fewer than `count` on timeout, so the caller's
 * assertion shows what was missing).
 */
export async function receiveMessages(
  sqs: SQSClient,
  queueUrl: string,
  count: number,
  timeoutMs = 60_000,
): Promise<Message[]> {
  const out: Message[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count && Date.now() < deadline) {
    const res = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        AttributeNames: ["ApproximateReceiveCount" as QueueAttributeName],
        MessageSystemAttributeNames: ["ApproximateReceiveCount"],
        MessageAttributeNames: ["All"],
      }),
    );
    const batch = res.Messages ?? [];
    if (batch.length === 0) continue;
    out.push(...batch);
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
  return out;
}

/** Bodies of `receiveMessages`, parsed. */
export async function receiveBodies<T = Record<string, unknown>>(
  sqs: SQSClient,
  queueUrl: string,
  count: number,
  timeoutMs?: number,
): Promise<T[]> {
  const messages = await receiveMessages(sqs, queueUrl, count, timeoutMs);
  return messages.map((m) => JSON.parse(m.Body ?? "null") as T);
}

export async function putObject(s3: S3Client, bucket: string, key: string, body: string | Uint8Array): Promise<number> {
  const bytes = typeof body === "string" ? await readFile(body) : body;
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
  return bytes.byteLength;
}

/** A batch and one queued document per key, as the ingestion service leaves them. */
export async function createDocuments(
  prisma: PrismaClient,
  bucket: string,
  keys: string[],
): Promise<{ batchId: string; documents: { id: string; key: string }[] }> {
  const batch = await prisma.batch.create({ data: { bucket, prefixes: ["test/"], state: "processing" } });
  const documents = [];
  for (const key of keys) {
    const d = await prisma.document.create({ data: { batchId: batch.id, bucket, key } });
    documents.push({ id: d.id, key });
  }
  return { batchId: batch.id, documents };
}

/** The worker long-polls this long in tests (`waitTimeSeconds`). */
export const TEST_WAIT_TIME_SECONDS = 1;
