import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { crc32 } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { PrismaClient } from "@docpipe/db";
import { createInferenceClient, type InferenceClient, type InferenceClientOptions } from "@docpipe/inference-client";
import type { LocalStack } from "@docpipe/local-stack";
import { defaultFaults, startReferenceModel, type ReferenceModel } from "@docpipe/reference-model";
import { describe, expect, test as stackTest } from "../fixtures/index.js";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { pagePngs, s3Event, seedDocument, seededRandom, sendRaw, uploadPageImage } from "./helpers.js";

/** The shared stack fixtures plus one reference model per file, reset (faults and counters) for each test. */
const test = stackTest.extend<{ $test: { model: ReferenceModel }; $file: { referenceModel: ReferenceModel } }>({
  referenceModel: [
    async ({ stack }, use) => {
      const model = await startReferenceModel({ s3: stack.s3, random: seededRandom(7) });
      try {
        await use(model);
      } finally {
        await model.stop();
      }
    },
    { scope: "file" },
  ],
  model: async ({ referenceModel }, use) => {
    referenceModel.setFaults(defaultFaults);
    referenceModel.resetStats();
    await use(referenceModel);
  },
});

/** Helpers bound to one test's stack, database and model. */
function harness({ stack, prisma, model }: { stack: LocalStack; prisma: PrismaClient; model: ReferenceModel }) {
  const inferenceClient = (overrides: Partial<InferenceClientOptions> = {}): InferenceClient =>
    createInferenceClient({
      sqs: stack.sqs,
      prisma,
      queueUrls: stack.queueUrls,
      model: { url: `${model.url}/invocations` },
      ratePerSecond: 0,
      backoff: { baseMs: 20, capMs: 200 },
      breakerCooldownMs: 500,
      waitTimeSeconds: 1,
      stopTimeoutSeconds: 5,
      random: seededRandom(11),
      ...overrides,
    });

  /** Runs the client for the duration of `fn`, and always stops it: no test leaves a worker running. */
  async function running<T>(client: InferenceClient, fn: () => Promise<T>): Promise<T> {
    client.start();
    try {
      return await fn();
    } finally {
      await client.stop();
    }
  }

  async function uploadAll(doc: { batchId: string; documentId: string; pageCount: number }, blankPages: number[] = []): Promise<void> {
    const { blank, ink } = await pagePngs();
    await Promise.all(
      Array.from({ length: doc.pageCount }, (_, i) =>
        uploadPageImage(stack.s3, stack.workBucket, doc, i + 1, blankPages.includes(i + 1) ? blank : ink),
      ),
    );
  }

  return {
    inferenceClient,
    running,
    uploadAll,
    documentState: async (id: string) => (await prisma.document.findUniqueOrThrow({ where: { id } })).state,
    resultsOf: (documentId: string) => prisma.inferenceResult.findMany({ where: { documentId }, orderBy: { pageNumber: "asc" } }),
    auditsOf: (documentId: string) =>
      prisma.auditEvent.findMany({ where: { documentId, stage: "inference" }, orderBy: { id: "asc" } }),
    dlqDepth: () => queueDepth(stack.sqs, stack.queueUrls.convertedImage.dlqUrl),
  };
}

describe("inference client against the reference model", () => {
  test("scores every page, flags blank pages, marks the document done, and never exceeds its concurrency cap", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, uploadAll, documentState, resultsOf, auditsOf, dlqDepth } = harness({ stack, prisma, model });
    model.setFaults({ delayMs: 150 });
    const doc = await seedDocument(prisma, stack.workBucket, 10);
    await running(inferenceClient({ maxConcurrency: 3, workerConcurrency: 8 }), async () => {
      await uploadAll(doc, [3, 7]);
      await waitFor("document done", async () => (await documentState(doc.documentId)) === "done");
    });

    const results = await resultsOf(doc.documentId);
    expect(results.map((r) => r.pageNumber)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(results.filter((r) => r.features.includes("blank")).map((r) => r.pageNumber)).toEqual([3, 7]);
    expect(results.filter((r) => r.features.includes("ink"))).toHaveLength(8);
    for (const r of results) {
      expect(r).toMatchObject({ modelName: "docpipe-ink", modelVersion: "1.0.0" });
      expect((r.output as { inkCoverage: number }).inkCoverage).toBeGreaterThanOrEqual(0);
      expect(r.latencyMs).toBeGreaterThanOrEqual(150);
    }
    const pages = await prisma.page.findMany({ where: { documentId: doc.documentId } });
    expect(pages.every((p) => p.state === "done")).toBe(true);
    // Its only document is done, so the batch is complete.
    expect(await prisma.batch.findUniqueOrThrow({ where: { id: doc.batchId } })).toMatchObject({ state: "completed" });

    const stats = model.stats();
    expect(stats.maxInFlight).toBeLessThanOrEqual(3);
    // The cap was under pressure (10 pages, 8 messages at once), so the bound above means something.
    expect(stats.maxInFlight).toBeGreaterThanOrEqual(2);
    const audits = await auditsOf(doc.documentId);
    expect(audits.filter((a) => a.outcome === "succeeded")).toHaveLength(10);
    expect(await dlqDepth()).toBe(0);
  });

  test("retries throttling (429) and server errors (5xx) until every page succeeds", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, uploadAll, documentState, resultsOf, auditsOf, dlqDepth } = harness({ stack, prisma, model });
    model.setFaults({ throttleRate: 0.3, errorRate: 0.25, retryAfterSeconds: 0 });
    const doc = await seedDocument(prisma, stack.workBucket, 8);
    await running(inferenceClient({ maxConcurrency: 2, maxAttempts: 12, breakerFailureThreshold: 20 }), async () => {
      await uploadAll(doc);
      await waitFor("document done", async () => (await documentState(doc.documentId)) === "done");
    });

    const stats = model.stats();
    expect(stats.byStatus["429"]).toBeGreaterThan(0);
    expect(stats.byStatus["500"]).toBeGreaterThan(0);
    expect(stats.byStatus["200"]).toBe(8);
    expect(await resultsOf(doc.documentId)).toHaveLength(8);
    // Retried inside the delivery: no message had to come back from the queue.
    const succeeded = (await auditsOf(doc.documentId)).filter((a) => a.outcome === "succeeded");
    expect(succeeded).toHaveLength(8);
    expect(succeeded.every((a) => a.attempt === 1)).toBe(true);
    expect(await dlqDepth()).toBe(0);
  });

  test("fails a page the model refuses (image data that inflates past its size) with the model's reason, and scores the rest", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, documentState, resultsOf, auditsOf } = harness({ stack, prisma, model });
    const { ink } = await pagePngs();
    // The ink page with an IHDR that says one row: its image data inflates far past what one row needs.
    const bomb = Buffer.from(ink);
    bomb.writeUInt32BE(1, 20);
    bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
    const doc = await seedDocument(prisma, stack.workBucket, 2);
    await running(inferenceClient(), async () => {
      await uploadPageImage(stack.s3, stack.workBucket, doc, 1, ink);
      await uploadPageImage(stack.s3, stack.workBucket, doc, 2, bomb);
      await waitFor("document failed", async () => (await documentState(doc.documentId)) === "failed");
    });

    expect(model.stats().byStatus).toMatchObject({ "200": 1, "422": 1 });
    expect((await resultsOf(doc.documentId)).map((r) => r.pageNumber)).toEqual([1]);
    const pages = await prisma.page.findMany({ where: { documentId: doc.documentId }, orderBy: { pageNumber: "asc" } });
    expect(pages.map((p) => p.state)).toEqual(["done", "failed"]);
    expect(pages[1]!.failureReason).toMatch(/refused the page with 422: .*image data inflates past the \d+ bytes a \d+×1 RGB image needs/);
    expect((await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } })).failureReason).toMatch(/^page 2: .*inflates past/);
    const refused = (await auditsOf(doc.documentId)).filter((a) => a.outcome === "dead_lettered");
    expect(refused).toMatchObject([{ pageNumber: 2, errorCode: "model_http_422" }]);
  });

  test("dead-letters the image of an unknown document, and retries a page whose row is not written yet until it is", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, documentState, resultsOf, auditsOf, dlqDepth } = harness({ stack, prisma, model });
    const { ink } = await pagePngs();
    const doc = await seedDocument(prisma, stack.workBucket, 2);
    const { id: _, ...page2 } = await prisma.page.findFirstOrThrow({ where: { documentId: doc.documentId, pageNumber: 2 } });
    await prisma.page.deleteMany({ where: { documentId: doc.documentId, pageNumber: 2 } });
    await running(inferenceClient(), async () => {
      await uploadPageImage(stack.s3, stack.workBucket, { batchId: doc.batchId, documentId: randomUUID() }, 1, ink);
      await uploadPageImage(stack.s3, stack.workBucket, doc, 1, ink);
      await uploadPageImage(stack.s3, stack.workBucket, doc, 2, ink);
      await waitFor("page 2 tried before its row exists", async () =>
        (await auditsOf(doc.documentId)).some((a) => a.outcome === "failed" && a.errorCode === "unknown_page" && a.pageNumber === 2),
      );
      await prisma.page.create({ data: page2 });
      await waitFor("document done", async () => (await documentState(doc.documentId)) === "done", 20_000);
      await waitFor("the stray image dead-lettered", async () => (await dlqDepth()) === 1);
    });
    expect((await resultsOf(doc.documentId)).map((r) => r.pageNumber)).toEqual([1, 2]);
  });

  test("trips the breaker while the endpoint is down, dead-letters nothing, and completes once it is back", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, uploadAll, documentState, resultsOf, auditsOf, dlqDepth } = harness({ stack, prisma, model });
    model.setFaults({ down: true });
    const doc = await seedDocument(prisma, stack.workBucket, 6);
    const client = inferenceClient({
      maxConcurrency: 2,
      workerConcurrency: 4,
      maxAttempts: 3,
      breakerFailureThreshold: 3,
      breakerCooldownMs: 700,
    });
    await running(client, async () => {
      await uploadAll(doc);
      // Two opens: the threshold tripped it, and the first half-open probe failed.
      await waitFor("breaker re-opened after a failed probe", () => client.status().breakerOpens >= 2, 20_000);
      const before = model.stats().requests;
      await sleep(2_000);
      // Open for 700 ms at a time: at most one probe per cool-down reaches the endpoint.
      expect(model.stats().requests - before).toBeLessThanOrEqual(3);
      expect(client.status().breaker).not.toBe("closed");
      // Messages are held, not released: no more than the worker's slots are in flight.
      expect(client.status().messagesInFlight).toBeLessThanOrEqual(4);
      expect(await dlqDepth()).toBe(0);
      expect(await documentState(doc.documentId)).not.toBe("failed");

      model.setFaults({ down: false });
      await waitFor("document done", async () => (await documentState(doc.documentId)) === "done", 20_000);
      expect(client.status().breaker).toBe("closed");
    });

    expect(model.stats().byStatus["503"]).toBeGreaterThanOrEqual(3);
    expect(await resultsOf(doc.documentId)).toHaveLength(6);
    expect(await dlqDepth()).toBe(0);
    const audits = await auditsOf(doc.documentId);
    expect(audits.filter((a) => a.outcome === "dead_lettered")).toEqual([]);
    // Every page succeeded on its first receive: the outage burned no receive counts.
    const succeeded = audits.filter((a) => a.outcome === "succeeded");
    expect(succeeded).toHaveLength(6);
    expect(succeeded.every((a) => a.attempt === 1)).toBe(true);
  });

  test("gives pages held by an open breaker back to the queue at once when stopped", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, uploadAll, documentState, resultsOf, auditsOf, dlqDepth } = harness({ stack, prisma, model });
    model.setFaults({ down: true });
    const doc = await seedDocument(prisma, stack.workBucket, 4);
    const client = inferenceClient({ maxConcurrency: 2, workerConcurrency: 4, breakerFailureThreshold: 2, breakerCooldownMs: 60_000 });
    client.start();
    let stopMs: number;
    try {
      await uploadAll(doc);
      await waitFor("breaker open", () => client.status().breaker === "open", 20_000);
      await waitFor("all pages held", () => client.status().messagesInFlight === 4, 20_000);
    } finally {
      const t0 = Date.now();
      await client.stop();
      stopMs = Date.now() - t0;
    }
    // Not the 25 s grace period, nor the 60 s cool-down: held pages are released, not waited for.
    expect(stopMs).toBeLessThan(5_000);
    expect(await queueDepth(stack.sqs, stack.queueUrls.convertedImage.url)).toBe(4);
    expect(await dlqDepth()).toBe(0);
    expect(await documentState(doc.documentId)).toBe("converting");

    model.setFaults({ down: false });
    await running(inferenceClient(), async () => {
      await waitFor("document done", async () => (await documentState(doc.documentId)) === "done");
    });
    expect(await resultsOf(doc.documentId)).toHaveLength(4);
    const audits = await auditsOf(doc.documentId);
    expect(audits.filter((a) => a.outcome === "failed" || a.outcome === "dead_lettered")).toEqual([]);
  });

  test("creates no second result for a duplicate delivery, whether it comes late or at the same time", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, uploadAll, documentState, resultsOf, auditsOf } = harness({ stack, prisma, model });
    const doc = await seedDocument(prisma, stack.workBucket, 3);
    const racing = await seedDocument(prisma, stack.workBucket, 1);
    const queueUrl = stack.queueUrls.convertedImage.url;
    await running(inferenceClient({ maxConcurrency: 4 }), async () => {
      await uploadAll(doc);
      await waitFor("document done", async () => (await documentState(doc.documentId)) === "done");
      const { completedAt } = await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } });
      const callsBefore = model.stats().requests;

      // Late duplicates: S3 notifies page 1 again (re-upload), and page 2's event arrives twice more.
      const { ink } = await pagePngs();
      await uploadPageImage(stack.s3, stack.workBucket, doc, 1, ink);
      const page2 = s3Event(stack.workBucket, `batches/${doc.batchId}/documents/${doc.documentId}/images/2.png`);
      await Promise.all([sendRaw(stack.sqs, queueUrl, page2), sendRaw(stack.sqs, queueUrl, page2)]);
      await waitFor("three duplicates skipped", async () =>
        (await auditsOf(doc.documentId)).filter((a) => a.outcome === "skipped").length >= 3,
      );
      expect(model.stats().requests).toBe(callsBefore);
      const after = await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } });
      expect(after.state).toBe("done");
      expect(after.completedAt).toEqual(completedAt);

      // Simultaneous duplicates of a page that has no result yet: the upload's own event plus two copies.
      const key = await uploadPageImage(stack.s3, stack.workBucket, racing, 1, ink);
      await Promise.all([sendRaw(stack.sqs, queueUrl, s3Event(stack.workBucket, key)), sendRaw(stack.sqs, queueUrl, s3Event(stack.workBucket, key))]);
      await waitFor("racing document done", async () => (await documentState(racing.documentId)) === "done");
      await waitFor("converted-image queue drained", async () => (await queueDepth(stack.sqs, queueUrl)) === 0);
    });

    expect(await resultsOf(doc.documentId)).toHaveLength(3);
    expect(await resultsOf(racing.documentId)).toHaveLength(1);
    const racingAudits = await auditsOf(racing.documentId);
    expect(racingAudits.filter((a) => a.outcome === "succeeded")).toHaveLength(1);
    expect(racingAudits.filter((a) => a.outcome === "skipped")).toHaveLength(2);
  });

  test("acknowledges S3 test events and keys outside the images prefix without calling the model", async ({ stack, prisma, model }) => {
    const { inferenceClient, running, dlqDepth } = harness({ stack, prisma, model });
    const queueUrl = stack.queueUrls.convertedImage.url;
    await running(inferenceClient(), async () => {
      await sendRaw(stack.sqs, queueUrl, JSON.stringify({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: stack.workBucket }));
      await sendRaw(stack.sqs, queueUrl, s3Event(stack.workBucket, "batches/not-a-uuid/readme.txt"));
      await waitFor("converted-image queue drained", async () => (await queueDepth(stack.sqs, queueUrl)) === 0);
    });
    expect(model.stats().requests).toBe(0);
    expect(await dlqDepth()).toBe(0);
  });
});

describe("reference model", () => {
  test("takes fault settings over HTTP, counts requests by status, and refuses what it cannot score", async ({ stack, model }) => {
    const post = (path: string, body: unknown) =>
      fetch(`${model.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(await (await post("/admin/faults", { throttleRate: 1, retryAfterSeconds: 3 })).json()).toMatchObject({ throttleRate: 1 });
    const throttled = await post("/invocations", { bucket: stack.workBucket, key: "nothing.png" });
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("3");
    expect((await post("/admin/faults", { throttleRate: 2 })).status).toBe(400);

    await post("/admin/faults", { throttleRate: 0 });
    expect((await post("/invocations", { bucket: stack.workBucket, key: "nothing.png" })).status).toBe(404);
    expect((await post("/invocations", { key: "x" })).status).toBe(400);
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.workBucket, Key: "not-an-image.png", Body: "text" }));
    expect((await post("/invocations", { bucket: stack.workBucket, key: "not-an-image.png" })).status).toBe(422);

    const stats = (await (await fetch(`${model.url}/admin/stats`)).json()) as { requests: number; byStatus: Record<string, number> };
    expect(stats).toMatchObject({ requests: 4, byStatus: { "429": 1, "404": 1, "400": 1, "422": 1 } });
    await post("/admin/reset", {});
    expect(model.stats()).toMatchObject({ requests: 0, inFlight: 0, maxInFlight: 0 });
  });
});
