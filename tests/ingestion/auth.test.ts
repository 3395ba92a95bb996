import { S3Client } from "@aws-sdk/client-s3";
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { createLogger } from "@docpipe/queue";
import request from "supertest";
import { BatchStatusResponse, UsageResponse } from "@docpipe/api-contract";
import { admitDocumentPages, disableApiKey, rotateApiKey, upsertPlan } from "@docpipe/api-keys";
import { buildApp, type AppOptions, type IngestionApp } from "@docpipe/ingestion";
import { describe, expect, test as stackTest } from "../fixtures/index.js";
import { authed, createTestKey, pdfKeys, putObjects } from "./helpers.js";

const logger = createLogger({ service: "ingestion-auth-test", level: "warn" });
const bucket = "ingest-auth";
/** 8 PDFs under a/, 4 under b/ and 4 under c/, plus one non-PDF in a/. */
const objects = [...pdfKeys("a/", 8), "a/notes.txt", ...pdfKeys("b/", 4), ...pdfKeys("c/", 4)];

interface Fixtures {
  /** Builds an ingestion app (a "process") on the test's database, or on `prisma` when given; closed after the test. */
  makeApp: (o?: Partial<AppOptions>) => Promise<IngestionApp>;
  /** A second Prisma client on the same database: what a second ingestion process has. */
  otherPrisma: PrismaClient;
  /** An S3 client that counts the requests it sends. */
  countingS3: { s3: S3Client; calls: () => number };
}

const it = stackTest.extend<{ $file: { uploaded: void }; $test: Fixtures }>({
  uploaded: [
    async ({ stack }, use) => {
      await putObjects(stack.s3, bucket, objects);
      await use();
    },
    { scope: "file" },
  ],
  otherPrisma: async ({ databaseUrl }, use) => {
    const prisma = createPrisma({ databaseUrl, poolMax: 5 });
    try {
      await use(prisma);
    } finally {
      await prisma.$disconnect();
    }
  },
  countingS3: async ({ stack }, use) => {
    const s3 = new S3Client({ region: stack.region, endpoint: stack.s3Endpoint, forcePathStyle: true, credentials: stack.credentials });
    let calls = 0;
    s3.middlewareStack.add(
      (next) => async (args) => {
        calls++;
        return next(args);
      },
      { step: "initialize", name: "countRequests" },
    );
    try {
      await use({ s3, calls: () => calls });
    } finally {
      s3.destroy();
    }
  },
  makeApp: async ({ stack, prisma, uploaded }, use) => {
    void uploaded;
    const made: IngestionApp[] = [];
    try {
      await use(async (o = {}) => {
        const app = buildApp({ prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger, ...o });
        made.push(app);
        await app.ready();
        return app;
      });
    } finally {
      for (const app of made) await app.close();
    }
  },
});

const expectError = (res: request.Response, status: number, code: string) => {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(Object.keys(res.body.error).sort()).toEqual(["code", "details", "message"]);
};

describe("who may call", () => {
  it("answers 401 without a key or with an unknown one, and accepts x-api-key and Authorization: Bearer", async ({ prisma, makeApp }) => {
    const app = await makeApp();
    const { key } = await createTestKey(prisma);
    expectError(await request(app.server).get("/usage"), 401, "api_key_missing");
    expectError(await request(app.server).post("/batches").send({ bucket, prefixes: ["a/"] }), 401, "api_key_missing");
    expectError(await request(app.server).get("/usage").set("x-api-key", "dp_00000000_not-a-key"), 401, "api_key_unknown");
    expectError(await request(app.server).get("/usage").set("x-api-key", `${key}x`), 401, "api_key_unknown");
    await request(app.server).get("/usage").set("x-api-key", key).expect(200);
    await request(app.server).get("/usage").set("authorization", `Bearer ${key}`).expect(200);
    expectError(await request(app.server).get("/usage").set("authorization", `Basic ${key}`), 401, "api_key_missing");
  });

  it("health checks and the docs need no key", async ({ makeApp }) => {
    const app = await makeApp();
    await request(app.server).get("/healthz").expect(200);
    await request(app.server).get("/readyz").expect(200);
    await request(app.server).get("/docs").expect((r) => expect([200, 302]).toContain(r.status));
    const spec = (await request(app.server).get("/docs/json").expect(200)).body;
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining(["/batches", "/batches/{id}", "/batches/{id}/documents", "/batches/{id}/report", "/documents/{id}", "/usage"]),
    );
    const post = spec.paths["/batches"].post;
    expect(post.requestBody.content["application/json"].schema.properties).toHaveProperty("onTooLarge");
    expect(post.requestBody.content["application/json"].schema.additionalProperties).toBe(false);
    expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(["202", "400", "401", "403", "413", "429"]));
    expect(spec.components.securitySchemes).toHaveProperty("apiKey");
    // Swagger UI's assets come from the package itself: no network needed.
    const css = await request(app.server).get("/docs/static/swagger-ui.css").expect(200);
    expect(css.text.length).toBeGreaterThan(1000);
  });

  it("answers 403 for a disabled key, and for an old secret once its grace period is over", async ({ prisma, makeApp }) => {
    // No key cache, so each change shows at once (auth-limits.test.ts: within the cache's bound).
    const app = await makeApp({ auth: { keyCacheSeconds: 0 } });
    const a = await createTestKey(prisma);
    await disableApiKey(prisma, a.prefix);
    expectError(await authed(app, a.key).get("/usage"), 403, "api_key_disabled");

    const b = await createTestKey(prisma);
    const graceful = await rotateApiKey(prisma, b.id, { graceSeconds: 3600 });
    expect(graceful.id).toBe(b.id);
    await authed(app, b.key).get("/usage").expect(200); // old secret, within grace
    await authed(app, graceful.key).get("/usage").expect(200);
    const cut = await rotateApiKey(prisma, b.id, { graceSeconds: 0 });
    expectError(await authed(app, graceful.key).get("/usage"), 403, "api_key_expired");
    expectError(await authed(app, b.key).get("/usage"), 401, "api_key_unknown"); // two rotations ago: forgotten
    const usage = (await authed(app, cut.key).get("/usage").expect(200)).body;
    expect(usage.key).toMatchObject({ id: b.id, prefix: cut.prefix });
  });

  it("answers 403 for a bucket or prefix outside the key's allow-list without calling S3", async ({ prisma, makeApp, countingS3 }) => {
    const app = await makeApp({ s3: countingS3.s3, resumeOnStart: false });
    const { key } = await createTestKey(prisma, { buckets: [bucket], prefixes: ["a/", "b/"] });
    // A bucket that does not exist: S3 would answer 422 bucket_not_found, the allow-list answers first.
    let res = await authed(app, key).post("/batches").send({ bucket: "not-this-bucket", prefixes: ["a/"] });
    expectError(res, 403, "bucket_not_allowed");
    expect(res.body.error.details).toMatchObject({ bucket: "not-this-bucket", allowedBuckets: [bucket] });
    res = await authed(app, key).post("/batches").send({ bucket, prefixes: ["a/", "c/"] });
    expectError(res, 403, "prefix_not_allowed");
    expect(res.body.error.details).toMatchObject({ prefixes: ["c/"], allowedPrefixes: ["a/", "b/"] });
    expect(res.body.error.message).toContain('"c/"');
    expect(countingS3.calls()).toBe(0);
    // The same client is called for an allowed request: the count above could have moved.
    await authed(app, key).post("/batches").send({ bucket, prefixes: ["a/"] }).expect(202);
    expect(countingS3.calls()).toBeGreaterThan(0);
  });

  it("shows batches and documents to keys of the owner that submitted them, and 404 to everyone else", async ({ prisma, makeApp }) => {
    const app = await makeApp();
    const mine = await createTestKey(prisma, { owner: "team-a" });
    const colleague = await createTestKey(prisma, { owner: "team-a", name: "second machine" });
    const stranger = await createTestKey(prisma, { owner: "team-b" });
    const { batchId } = (await authed(app, mine.key).post("/batches").send({ bucket, prefixes: ["b/"] }).expect(202)).body;
    await app.lister.idle();
    const status = (await authed(app, colleague.key).get(`/batches/${batchId}`).expect(200)).body;
    expect(BatchStatusResponse.parse(status)).toMatchObject({ documentCount: 4, state: "processing" });
    const docs = (await authed(app, mine.key).get(`/batches/${batchId}/documents`).expect(200)).body.items;
    expect(docs).toHaveLength(4);

    for (const path of [`/batches/${batchId}`, `/batches/${batchId}/documents`, `/batches/${batchId}/report`, `/documents/${docs[0].id}`]) {
      const res = await authed(app, stranger.key).get(path);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toMatch(/^(batch|document)_not_found$/);
    }
  });
});

describe("rate", () => {
  it("answers 429 with Retry-After past the burst, and lets requests through again as tokens come back", async ({ prisma, makeApp }) => {
    await upsertPlan(prisma, { name: "slow", ratePerSecond: 2, burst: 3, quotaDocuments: null, quotaPeriod: "day" });
    const app = await makeApp();
    const { key } = await createTestKey(prisma, { plan: "slow" });
    const statuses: number[] = [];
    let throttled: request.Response | undefined;
    for (let i = 0; i < 5; i++) {
      const res = await authed(app, key).get("/usage");
      statuses.push(res.status);
      if (res.status === 429) throttled ??= res;
    }
    // Three in the burst; the next ones come faster than 2 per second.
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toContain(429);
    expectError(throttled!, 429, "rate_limited");
    expect(Number(throttled!.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(throttled!.body.error.details.retryAfterMs).toBeGreaterThan(0);
    expect(throttled!.body.error.details.retryAfterMs).toBeLessThanOrEqual(500);
    await new Promise((r) => setTimeout(r, throttled!.body.error.details.retryAfterMs + 50));
    await authed(app, key).get("/usage").expect(200);
  });

  it("two ingestion processes on two database clients share one token bucket", async ({ prisma, otherPrisma, makeApp }) => {
    // A rate so low that no token comes back during the test: exactly the burst gets through.
    await upsertPlan(prisma, { name: "trickle", ratePerSecond: 0.01, burst: 6, quotaDocuments: null, quotaPeriod: "day" });
    const one = await makeApp();
    const two = await makeApp({ prisma: otherPrisma, resumeOnStart: false });
    const { key } = await createTestKey(prisma, { plan: "trickle" });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => authed(i % 2 ? one : two, key).get("/usage")),
    );
    const byStatus = (s: number) => results.filter((r) => r.status === s).length;
    expect({ ok: byStatus(200), throttled: byStatus(429) }).toEqual({ ok: 6, throttled: 14 });
    expect(results.filter((r) => r.status === 429).every((r) => Number(r.headers["retry-after"]) >= 1)).toBe(true);
    const usage = await prisma.usageDaily.findFirstOrThrow();
    expect(usage).toMatchObject({ requests: 20, throttled: 14 });
  });
});

describe("quota", () => {
  it("stops a listing at the quota, keeps what was admitted, then answers 429 with the reset time", async ({ prisma, makeApp }) => {
    await upsertPlan(prisma, { name: "five-a-day", ratePerSecond: 100, burst: 100, quotaDocuments: 5, quotaPeriod: "day" });
    const app = await makeApp({ listPageSize: 3 });
    const { key } = await createTestKey(prisma, { plan: "five-a-day" });
    const { batchId } = (await authed(app, key).post("/batches").send({ bucket, prefixes: ["a/"] }).expect(202)).body;
    await app.lister.idle();
    const status = (await authed(app, key).get(`/batches/${batchId}`).expect(200)).body;
    expect(status).toMatchObject({ state: "failed", documentCount: 5, documents: { queued: 5 }, failure: { code: "quota_exceeded" } });
    expect(status.failure.reason).toContain("a/doc-000005.pdf");
    // The first five keys in listing order, each once.
    const docs = await prisma.document.findMany({ where: { batchId }, orderBy: { key: "asc" }, select: { key: true } });
    expect(docs.map((d) => d.key)).toEqual(pdfKeys("a/", 5));

    const res = await authed(app, key).post("/batches").send({ bucket, prefixes: ["b/"] });
    expectError(res, 429, "quota_exceeded");
    const tomorrow = new Date();
    tomorrow.setUTCHours(24, 0, 0, 0);
    expect(res.body.error.details).toMatchObject({ limit: 5, used: 5, period: "day", resetsAt: tomorrow.toISOString() });
    expect(res.headers["x-quota-reset"]).toBe(tomorrow.toISOString());
    const retryAfter = Number(res.headers["retry-after"]);
    expect(Math.abs(retryAfter - (tomorrow.getTime() - Date.now()) / 1000)).toBeLessThan(5);

    const usage = UsageResponse.parse((await authed(app, key).get("/usage").expect(200)).body);
    expect(usage.quota).toMatchObject({ limit: 5, used: 5, remaining: 0 });
    expect(usage.days[0]).toMatchObject({ batches: 1, documents: 5, throttled: 1, requests: 4 });
  });

  it("a key whose page quota is spent gets 429 page_quota_exceeded for a new batch; GET /usage shows the pages", async ({ prisma, makeApp }) => {
    await upsertPlan(prisma, { name: "ten-pages", ratePerSecond: 100, burst: 100, quotaDocuments: null, quotaPages: 10, quotaPeriod: "day" });
    const app = await makeApp();
    const { key } = await createTestKey(prisma, { plan: "ten-pages" });
    const { batchId } = (await authed(app, key).post("/batches").send({ bucket, prefixes: ["b/"] }).expect(202)).body;
    await app.lister.idle();
    // Where the pipeline first counts a document's pages: 10 charged; a second count of it is free.
    const [first, second] = await prisma.document.findMany({ where: { batchId }, orderBy: { key: "asc" } });
    expect(await admitDocumentPages(prisma, first!.id, 10)).toEqual({ admitted: true, alreadyCounted: false });
    expect(await admitDocumentPages(prisma, first!.id, 10)).toEqual({ admitted: true, alreadyCounted: true });
    expect(await admitDocumentPages(prisma, second!.id, 1)).toMatchObject({ admitted: false, code: "page_quota_exceeded", limit: 10, used: 10 });

    const res = await authed(app, key).post("/batches").send({ bucket, prefixes: ["c/"] });
    expectError(res, 429, "page_quota_exceeded");
    expect(res.body.error.message).toMatch(/quota of 10 pages per day/);
    expect(res.body.error.details).toMatchObject({ limit: 10, used: 10, period: "day" });
    const usage = UsageResponse.parse((await authed(app, key).get("/usage").expect(200)).body);
    expect(usage.quota.pages).toEqual({ limit: 10, used: 10, remaining: 0 });
    expect(usage.days[0]).toMatchObject({ documents: 4, pages: 10, throttled: 1 });
  });

  it("two workers counting pages of one key's documents at once never both fit into the same remainder", async ({ prisma, otherPrisma, makeApp }) => {
    await upsertPlan(prisma, { name: "ten-pages-b", ratePerSecond: 100, burst: 100, quotaDocuments: null, quotaPages: 10, quotaPeriod: "day" });
    const app = await makeApp();
    const { key } = await createTestKey(prisma, { plan: "ten-pages-b" });
    const { batchId } = (await authed(app, key).post("/batches").send({ bucket, prefixes: ["c/"] }).expect(202)).body;
    await app.lister.idle();
    const docs = await prisma.document.findMany({ where: { batchId }, orderBy: { key: "asc" } });
    // Four 6-page documents counted at once on two connections: 10 pages hold only one of them.
    const results = await Promise.all(docs.map((d, i) => admitDocumentPages(i % 2 ? otherPrisma : prisma, d.id, 6)));
    expect(results.filter((r) => r.admitted)).toHaveLength(1);
    expect((await prisma.quotaCounter.findFirstOrThrow()).pages).toBe(6);
    expect(await prisma.document.count({ where: { batchId, pageCount: { not: null } } })).toBe(1);
  });

  it("two processes listing batches of one key at once admit exactly the quota between them", async ({ prisma, otherPrisma, makeApp }) => {
    await upsertPlan(prisma, { name: "six-a-month", ratePerSecond: 100, burst: 100, quotaDocuments: 6, quotaPeriod: "month" });
    const one = await makeApp({ listPageSize: 1 });
    const two = await makeApp({ prisma: otherPrisma, listPageSize: 1, resumeOnStart: false });
    const { key } = await createTestKey(prisma, { plan: "six-a-month" });
    const [b1, b2] = await Promise.all([
      authed(one, key).post("/batches").send({ bucket, prefixes: ["b/"] }).expect(202),
      authed(two, key).post("/batches").send({ bucket, prefixes: ["c/"] }).expect(202),
    ]);
    await Promise.all([one.lister.idle(), two.lister.idle()]);
    const counts = await prisma.batch.findMany({
      where: { id: { in: [b1.body.batchId, b2.body.batchId] } },
      select: { documentCount: true, state: true, failureCode: true },
    });
    expect(counts.reduce((n, b) => n + b.documentCount, 0)).toBe(6);
    expect(await prisma.document.count()).toBe(6);
    // One ran out, or both did when their pages interleaved; a batch that did not fail got all 4 of its PDFs.
    const failed = counts.filter((b) => b.state === "failed");
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed.every((b) => b.failureCode === "quota_exceeded")).toBe(true);
    expect(counts.filter((b) => b.state !== "failed").every((b) => b.documentCount === 4)).toBe(true);
    const counter = await prisma.quotaCounter.findFirstOrThrow();
    expect(counter.used).toBe(6);
  });
});

describe("batch size bound", () => {
  it("onTooLarge reject (the default) fails the batch before queueing anything", async ({ prisma, makeApp }) => {
    const app = await makeApp({ maxDocumentsPerBatch: 5 });
    const { key } = await createTestKey(prisma);
    const { batchId } = (await authed(app, key).post("/batches").send({ bucket, prefixes: ["a/"] }).expect(202)).body;
    await app.lister.idle();
    const status = (await authed(app, key).get(`/batches/${batchId}`).expect(200)).body;
    expect(status).toMatchObject({ state: "failed", documentCount: 0, onTooLarge: "reject", failure: { code: "batch_too_large" } });
    expect(status.failure.reason).toContain("onTooLarge");
    expect(await prisma.document.count()).toBe(0);
    // At the bound exactly is fine.
    const ok = (await authed(app, key).post("/batches").send({ bucket, prefixes: ["b/"] }).expect(202)).body;
    await app.lister.idle();
    expect((await authed(app, key).get(`/batches/${ok.batchId}`).expect(200)).body).toMatchObject({ state: "processing", documentCount: 4 });
  });

  it("onTooLarge split continues in linked follow-up batches holding every document once", async ({ prisma, makeApp }) => {
    const app = await makeApp({ maxDocumentsPerBatch: 3, listPageSize: 2 });
    const { key } = await createTestKey(prisma);
    const first = (await authed(app, key).post("/batches").send({ bucket, prefixes: ["a/", "b/"], onTooLarge: "split", label: "big" }).expect(202)).body;
    await app.lister.idle();
    const chain: { batchId: string; documentCount: number; state: string; parentBatchId: string | null; continuedIn: string | null }[] = [];
    for (let id: string | null = first.batchId; id; ) {
      const s = (await authed(app, key).get(`/batches/${id}`).expect(200)).body;
      chain.push(s);
      id = s.continuedIn;
    }
    // 12 PDFs, at most 3 per batch.
    expect(chain.map((b) => b.documentCount)).toEqual([3, 3, 3, 3]);
    expect(chain.every((b) => b.state === "processing")).toBe(true);
    expect(chain.slice(1).map((b) => b.parentBatchId)).toEqual(chain.slice(0, -1).map((b) => b.batchId));
    const keys = (await prisma.document.findMany({ select: { key: true } })).map((d) => d.key).sort();
    expect(keys).toEqual([...pdfKeys("a/", 8), ...pdfKeys("b/", 4)].sort());
    // The non-PDF is counted once across the chain.
    const skipped = await prisma.batch.aggregate({ _sum: { skippedCount: true } });
    expect(skipped._sum.skippedCount).toBe(1);
  });
});
