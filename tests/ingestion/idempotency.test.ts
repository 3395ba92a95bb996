// POST /batches with an Idempotency-Key: a client that retries a submission (a timeout, a lost
// answer, two requests racing) gets the batch its first request created, never a second batch
// whose every page would be rendered and scored again.
import type { PrismaClient } from "@docpipe/db";
import { buildApp, type IngestionApp } from "@docpipe/ingestion";
import type { LocalStack } from "@docpipe/local-stack";
import { createLogger } from "@docpipe/queue";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { authed, createTestKey, pdfKeys, putObjects } from "./helpers.js";

const BUCKET = "idempotency-in";
const logger = createLogger({ service: "ingestion-test", level: "warn" });

async function api(stack: LocalStack, prisma: PrismaClient): Promise<IngestionApp> {
  const app = buildApp({ prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger });
  onTestFinished(() => app.close());
  await app.ready();
  await putObjects(stack.s3, BUCKET, pdfKeys("in/", 3));
  return app;
}

const body = { bucket: BUCKET, prefixes: ["in/"], label: "first" };

test("the same key and body answer the first batch (200), another body with it is a 422, and no second batch is made", async ({ stack, prisma }) => {
  const app = await api(stack, prisma);
  const { key } = await createTestKey(prisma);
  const post = (b: object, idem = "order-4711") => authed(app, key).post("/batches").set("idempotency-key", idem).send(b);

  const first = await post(body).expect(202);
  const again = await post(body).expect(200);
  expect(again.body).toEqual({ batchId: first.body.batchId, state: expect.stringMatching(/^(listing|processing)$/), replayed: true });
  expect(again.headers.location).toBe(`/batches/${first.body.batchId}`);
  // The same request whatever its key order.
  expect((await post({ label: "first", prefixes: ["in/"], bucket: BUCKET }).expect(200)).body.batchId).toBe(first.body.batchId);

  const other = await post({ ...body, label: "second" }).expect(422);
  expect(other.body.error).toMatchObject({ code: "idempotency_key_reused", details: { batchId: first.body.batchId } });
  expect(await prisma.batch.count()).toBe(1);
  // A replay is not a second batch for the key's usage either.
  expect((await prisma.usageDaily.findMany()).reduce((n, u) => n + u.batches, 0)).toBe(1);

  // Another key, or no key, is another request.
  expect((await post(body, "order-4712").expect(202)).body.batchId).not.toBe(first.body.batchId);
  await authed(app, key).post("/batches").send(body).expect(202);
  expect(await prisma.batch.count()).toBe(3);
});

test("keys belong to the API key that sent them, and last 24 hours", async ({ stack, prisma }) => {
  const app = await api(stack, prisma);
  const a = await createTestKey(prisma, { name: "a" });
  const b = await createTestKey(prisma, { name: "b" });
  const post = (key: string) => authed(app, key).post("/batches").set("idempotency-key", "nightly").send(body);

  const fromA = (await post(a.key).expect(202)).body.batchId as string;
  const fromB = (await post(b.key).expect(202)).body.batchId as string;
  expect(fromB).not.toBe(fromA);

  await prisma.$executeRaw`UPDATE "IdempotencyKey" SET "createdAt" = "createdAt" - interval '25 hours' WHERE "batchId" = ${fromA}::uuid`;
  const later = (await post(a.key).expect(202)).body.batchId as string;
  expect(later).not.toBe(fromA);
  expect((await post(a.key).expect(200)).body.batchId).toBe(later);
});

test("requests racing with one key make one batch, and every one of them answers it", async ({ stack, prisma }) => {
  const app = await api(stack, prisma);
  const { key } = await createTestKey(prisma);
  const answers = await Promise.all(
    Array.from({ length: 6 }, () => authed(app, key).post("/batches").set("idempotency-key", "retry-storm").send(body)),
  );
  expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 202]);
  expect(new Set(answers.map((r) => r.body.batchId)).size).toBe(1);
  expect(await prisma.batch.count()).toBe(1);
});

test("a malformed key is a 400 naming the header", async ({ stack, prisma }) => {
  const app = await api(stack, prisma);
  const { key } = await createTestKey(prisma);
  for (const bad of ["has space", "x".repeat(256)]) {
    const res = await authed(app, key).post("/batches").set("idempotency-key", bad).send(body).expect(400);
    expect(res.body.error.code).toBe("validation_error");
    expect(JSON.stringify(res.body.error.details)).toContain("idempotency-key");
  }
  expect(await prisma.batch.count()).toBe(0);
});
