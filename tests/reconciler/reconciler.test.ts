// The reconciler against the real stand-ins: which units it finds lost, the message it sends
// each (from where the rows say the unit stands), its audit records, and how it tells a lost
// message from one still waiting in a queue without reading any queue's messages.
import { ReceiveMessageCommand, SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { chunkKey, createMetrics, imageKey, Liveness, pageKey, parseS3Event, type QueueKey } from "@docpipe/queue";
import { createReconciler, type ReconcilerOptions } from "@docpipe/reconciler";
import type { LocalStack } from "@docpipe/local-stack";
import { expect, test } from "../fixtures/index.js";
import { waitFor } from "../fixtures/wait.js";

const SOURCE = "reconcile-source";

/** Everything in a queue right now, as parsed bodies. */
async function drain(sqs: SQSClient, url: string): Promise<unknown[]> {
  const bodies: unknown[] = [];
  for (;;) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 600 }));
    if (!out.Messages?.length) return bodies;
    bodies.push(...out.Messages.map((m) => JSON.parse(m.Body!) as unknown));
  }
}

async function drainAll(stack: LocalStack): Promise<Partial<Record<QueueKey, unknown[]>>> {
  const keys: QueueKey[] = ["ingest", "large", "small", "singlePage", "convertedImage"];
  return Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await drain(stack.sqs, stack.queueUrls[k].url)] as const)));
}

/** Rows as a crash leaves them: last touched an hour ago. */
async function ageEverything(prisma: PrismaClient): Promise<void> {
  for (const table of ["Document", "Chunk", "Page"]) {
    await prisma.$executeRawUnsafe(`UPDATE "${table}" SET "updatedAt" = (now() AT TIME ZONE 'UTC') - interval '1 hour'`);
  }
}

function reconciler(stack: LocalStack, prisma: PrismaClient, opts: Partial<ReconcilerOptions> = {}) {
  return createReconciler({ prisma, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, idleSeconds: 60, settleSeconds: 1, ...opts });
}

async function batch(prisma: PrismaClient) {
  return prisma.batch.create({ data: { bucket: SOURCE, prefixes: ["in/"], state: "processing", listedAt: new Date() } });
}

test("re-sends what continues each lost unit, from where its rows say it stands, once", async ({ stack, prisma }) => {
  const { id: batchId } = await batch(prisma);
  const doc = (key: string, data: Record<string, unknown>) => prisma.document.create({ data: { batchId, bucket: SOURCE, key, size: 1000n, ...data } });
  const queued = await doc("in/queued.pdf", {});
  const large = await doc("in/large.pdf", { state: "classified", class: "large", size: 20_000_000n });
  const small = await doc("in/small.pdf", { state: "classified", class: "small", pageCount: 3 });
  const split = await doc("in/split.pdf", { state: "converting", class: "large", pageCount: 20, splitAt: new Date() });
  const single = await doc("in/single.pdf", { state: "converting", class: "single", pageCount: 1 });
  const finished = await doc("in/finished.pdf", { state: "inferring", class: "small", pageCount: 2 });
  const ref = { batchId, documentId: split.id };
  await prisma.chunk.createMany({
    data: [
      { documentId: split.id, firstPage: 1, lastPage: 10, key: chunkKey(ref, 1, 10), splitAt: new Date() },
      { documentId: split.id, firstPage: 11, lastPage: 20, key: chunkKey(ref, 11, 20) },
      { documentId: finished.id, firstPage: 1, lastPage: 2, key: finished.key, splitAt: new Date() },
    ],
  });
  await prisma.page.createMany({
    data: [
      { documentId: split.id, pageNumber: 1, pdfKey: pageKey(ref, 1) },
      { documentId: split.id, pageNumber: 2, pdfKey: pageKey(ref, 2), imageKey: imageKey(ref, 2), state: "rendered" },
      ...Array.from({ length: 8 }, (_, i) => ({ documentId: split.id, pageNumber: i + 3, pdfKey: pageKey(ref, i + 3), state: "done" as const })),
      // In the chunk still being split: re-sending the chunk re-sends it.
      { documentId: split.id, pageNumber: 11, pdfKey: pageKey(ref, 11) },
      { documentId: single.id, pageNumber: 1, pdfKey: single.key },
      { documentId: finished.id, pageNumber: 1, state: "done" },
      { documentId: finished.id, pageNumber: 2, state: "failed", failureCode: "corrupt_page" },
    ],
  });
  await ageEverything(prisma);

  const first = await reconciler(stack, prisma).runOnce();
  expect(first).toMatchObject({ resent: { document: 1, large: 1, small: 1, chunk: 1, page: 2, image: 1 }, documentsEnded: 1, batchesCompleted: 0 });

  const sent = await drainAll(stack);
  const m = { version: 1, batchId };
  expect(sent.ingest).toEqual([{ ...m, documentId: queued.id, bucket: SOURCE, key: queued.key, size: 1000 }]);
  // No page count: over the size limit, the large splitter counts (and hashes) it.
  expect(sent.large).toEqual([{ ...m, documentId: large.id, bucket: SOURCE, key: large.key, size: 20_000_000 }]);
  expect(sent.small).toEqual(
    expect.arrayContaining([
      { ...m, documentId: small.id, bucket: SOURCE, key: small.key, firstPage: 1, lastPage: 3 },
      { ...m, documentId: split.id, bucket: stack.workBucket, key: chunkKey(ref, 11, 20), firstPage: 11, lastPage: 20 },
    ]),
  );
  expect(sent.small).toHaveLength(2);
  // A single-page document's page is its source; a split page is in the work bucket.
  expect(sent.singlePage).toEqual(
    expect.arrayContaining([
      { ...m, documentId: split.id, bucket: stack.workBucket, key: pageKey(ref, 1), pageNumber: 1 },
      { ...m, documentId: single.id, bucket: SOURCE, key: single.key, pageNumber: 1 },
    ]),
  );
  expect(sent.convertedImage?.map((b) => parseS3Event(b))).toEqual([
    { kind: "records", records: [{ bucket: stack.workBucket, key: imageKey(ref, 2), eventName: "ObjectCreated:Put" }] },
  ]);
  // The document whose pages had all ended, but not it.
  expect(await prisma.document.findUniqueOrThrow({ where: { id: finished.id } })).toMatchObject({ state: "failed" });

  const trail = await prisma.auditEvent.findMany({ where: { batchId, outcome: "reconciled" }, select: { stage: true, documentId: true, pageNumber: true, details: true } });
  expect(trail.map((e) => `${e.stage} ${e.documentId}${e.pageNumber ? `#${e.pageNumber}` : ""}`).sort()).toEqual(
    [
      `classify ${queued.id}`,
      `split-large ${large.id}`,
      `split-small ${small.id}`,
      `split-small ${split.id}`,
      `convert ${split.id}#1`,
      `convert ${single.id}#1`,
      `inference ${split.id}#2`,
    ].sort(),
  );
  expect(trail.find((e) => e.stage === "split-small" && e.documentId === split.id)?.details).toMatchObject({ queue: "small", firstPage: 11, lastPage: 20 });

  // Re-sent units were touched: their new messages get their chance before anything is sent again.
  const second = await reconciler(stack, prisma).runOnce();
  expect(second.resent).toEqual({ document: 0, large: 0, small: 0, chunk: 0, page: 0, image: 0 });
});

test("a unit whose message still waits is left alone; once its queue has drained for the settle time, it is re-sent", async ({ stack, prisma }) => {
  const { id: batchId } = await batch(prisma);
  const single = await prisma.document.create({ data: { batchId, bucket: SOURCE, key: "in/one.pdf", state: "converting", class: "single", pageCount: 1 } });
  await prisma.page.create({ data: { documentId: single.id, pageNumber: 1, pdfKey: single.key } });
  // Its message, or any other: the reconciler cannot tell, and need not.
  await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.singlePage.url, MessageBody: JSON.stringify({ waiting: true }) }));
  const r = reconciler(stack, prisma, { idleSeconds: 0, skewSeconds: 0 });

  // Idle past any threshold, but touched after the queue was created and the queue is not empty.
  expect((await r.runOnce()).resent.page).toBe(0);

  stack.purgeQueues();
  // Empty now, but not for long enough to trust SQS's counts.
  expect((await r.runOnce()).resent.page).toBe(0);
  const drainedFrom = await prisma.queueDrain.findUniqueOrThrow({ where: { queue: "singlePage" } });
  expect(drainedFrom.emptySince).not.toBeNull();
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  const pass = await r.runOnce();
  expect(pass.resent.page).toBe(1);
  expect(pass.marks.singlePage).toBe(drainedFrom.emptySince!.toISOString());
  expect(await drain(stack.sqs, stack.queueUrls.singlePage.url)).toEqual([{ version: 1, batchId, documentId: single.id, bucket: SOURCE, key: single.key, pageNumber: 1 }]);
});

test("a copy still waiting for a document that has ended, or is gone, is ended with it or sent back to be processed", async ({ stack, prisma }) => {
  const { id: batchId } = await batch(prisma);
  const other = await prisma.batch.create({ data: { bucket: SOURCE, prefixes: ["old/"], state: "completed" } });
  // The holder ended while the copy was starting to wait (the race the claim cannot see), or its batch was deleted.
  const holder = await prisma.document.create({ data: { batchId: other.id, bucket: SOURCE, key: "old/a.pdf", state: "done" } });
  const waiting = await prisma.document.create({ data: { batchId, bucket: SOURCE, key: "in/a.pdf", state: "classified", duplicateOfId: holder.id } });
  const orphan = await prisma.document.create({
    data: { batchId, bucket: SOURCE, key: "in/b.pdf", state: "classified", duplicateOfId: "00000000-0000-4000-8000-000000000000" },
  });
  await ageEverything(prisma);

  const pass = await reconciler(stack, prisma).runOnce();
  expect(pass.documentsEnded).toBe(1);
  expect(await prisma.document.findUniqueOrThrow({ where: { id: waiting.id } })).toMatchObject({ state: "done", duplicateOfId: holder.id });
  expect(await prisma.document.findUniqueOrThrow({ where: { id: orphan.id } })).toMatchObject({ state: "queued", duplicateOfId: null });
  // Queued again, it is a lost unit like any other once idle: re-sent to the orchestrator.
  await ageEverything(prisma);
  expect((await reconciler(stack, prisma).runOnce()).resent.document).toBe(1);
  expect(await drain(stack.sqs, stack.queueUrls.ingest.url)).toEqual([{ version: 1, batchId, documentId: orphan.id, bucket: SOURCE, key: "in/b.pdf" }]);
});

test("its loop reports each pass (ReconcilePasses, UnitsReconciled) and stays alive while passes end", async ({ stack, prisma }) => {
  const { id: batchId } = await batch(prisma);
  await prisma.document.create({ data: { batchId, bucket: SOURCE, key: "in/lost.pdf", size: 1000n } });
  await ageEverything(prisma);
  const lines: string[] = [];
  const metrics = createMetrics({ service: "reconciler", write: (l) => void lines.push(l), flushIntervalSeconds: 0 });
  let now = Date.now();
  const liveness = new Liveness({ now: () => now });
  const loop = reconciler(stack, prisma, { metrics, liveness, intervalSeconds: 3600 });
  loop.start();
  await waitFor("the first pass to end", () => {
    metrics.flush();
    return lines.length > 0;
  });
  const emitted = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(emitted).toEqual([expect.objectContaining({ Service: "reconciler", ReconcilePasses: 1, UnitsReconciled: 1 })]);
  expect(liveness.check()).toMatchObject({ alive: true, loops: [{ name: "reconcile" }] });
  // No pass ended for over two intervals (a hung pass): the health check fails.
  now += 3 * 3600_000;
  expect(liveness.check().alive).toBe(false);
  // Stopped on purpose: its silence no longer counts.
  await loop.stop();
  expect(liveness.check()).toEqual({ alive: true, loops: [] });
  expect(await drain(stack.sqs, stack.queueUrls.ingest.url)).toHaveLength(1);
});
