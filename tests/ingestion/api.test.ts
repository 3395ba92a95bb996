import { S3Client } from "@aws-sdk/client-s3";
import type { LocalStack } from "@docpipe/local-stack";
import { createLogger } from "@docpipe/queue";
import type request from "supertest";
import type { IngestionApp } from "@docpipe/ingestion";
import { describe, expect } from "../fixtures/index.js";
import { appTest, authed, drainIngestQueue, pdfKeys, putObjects } from "./helpers.js";

const logger = createLogger({ service: "ingestion-test", level: "warn" });

/** The local stack per file, a database per test, and the ingestion app on that database. */
const it = appTest(logger).extend<{ $test: { app: IngestionApp } }>({
  app: async ({ makeApp }, use) => {
    await use(await makeApp());
  },
});

describe("health", () => {
  it("GET /healthz answers while the process is up", async ({ key, app }) => {
    const api = () => authed(app, key);
    const res = await api().get("/healthz").expect(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("GET /readyz checks the database and the queue", async ({ key, app }) => {
    const api = () => authed(app, key);
    const res = await api().get("/readyz").expect(200);
    expect(res.body).toMatchObject({ status: "ready", checks: { database: "ok", queue: "ok" } });
  });

  it("GET /readyz answers 503 naming the dependency that is down", async ({ key, stack, makeApp }) => {
    const broken = await makeApp({
      queueUrls: { ingest: { url: `${stack.queueUrls.ingest.url}-missing`, dlqUrl: stack.queueUrls.ingest.dlqUrl } },
    });
    const res = await authed(broken, key).get("/readyz").expect(503);
    expect(res.body.error.code).toBe("not_ready");
    expect(res.body.error.details.database).toBe("ok");
    expect(res.body.error.details.queue).not.toBe("ok");
  });
});

describe("POST /batches validation", () => {
  const expectError = (res: request.Response, status: number, code: string) => {
    expect(res.status).toBe(status);
    expect(res.body.error).toMatchObject({ code, message: expect.any(String) });
    expect(Object.keys(res.body)).toEqual(["error"]);
    expect(Object.keys(res.body.error).sort()).toEqual(["code", "details", "message"]);
  };

  it("rejects unknown fields, naming them", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    const res = await api().post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/"], priority: 1 });
    expectError(res, 400, "validation_error");
    expect(JSON.stringify(res.body.error.details)).toContain("priority");
  });

  it("rejects an empty prefixes array and a missing bucket", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    let res = await api().post("/batches").send({ bucket: stack.stagingBucket, prefixes: [] });
    expectError(res, 400, "validation_error");
    expect(res.body.error.details).toEqual([{ path: "prefixes", message: expect.stringContaining("at least one prefix") }]);
    res = await api().post("/batches").send({ prefixes: ["a/"] });
    expectError(res, 400, "validation_error");
    expect(res.body.error.details[0].path).toBe("bucket");
  });

  it("rejects bucket names S3 would reject", async ({ key, app }) => {
    const api = () => authed(app, key);
    for (const bucket of ["Upper", "ab", "no_underscores", "10.0.0.1", "a..b"]) {
      const res = await api().post("/batches").send({ bucket, prefixes: ["a/"] });
      expectError(res, 400, "validation_error");
      expect(res.body.error.details[0].message).toContain("invalid S3 bucket name");
    }
  });

  it("rejects overlapping prefixes, which would list keys twice", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    const res = await api().post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/", "a/b/"] });
    expectError(res, 400, "validation_error");
  });

  it("rejects malformed JSON, a body that is not JSON, and a body over the limit", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    let res = await api().post("/batches").set("content-type", "application/json").send("{not json");
    expectError(res, 400, "invalid_json");
    res = await api().post("/batches").set("content-type", "text/plain").send("bucket=x");
    expectError(res, 415, "unsupported_media_type");
    res = await api()
      .post("/batches")
      .send({ bucket: stack.stagingBucket, prefixes: Array.from({ length: 90 }, (_, i) => `p${i}/${"x".repeat(40)}`) });
    expectError(res, 413, "payload_too_large");
  });

  it("answers 422 bucket_not_found for a bucket that does not exist", async ({ key, app }) => {
    const api = () => authed(app, key);
    const res = await api().post("/batches").send({ bucket: "no-such-bucket-here", prefixes: ["a/"] });
    expectError(res, 422, "bucket_not_found");
    expect(res.body.error.details).toEqual({ bucket: "no-such-bucket-here" });
  });

  it("answers 403 bucket_forbidden when S3 refuses to list the bucket", async ({ key, stack, makeApp }) => {
    // s3rver has no bucket policies, but it refuses credentials it does not know, with the 403 S3 sends.
    const stranger = new S3Client({
      region: "us-east-1",
      endpoint: stack.s3Endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "STRANGER", secretAccessKey: "nope" },
    });
    try {
      const denied = await makeApp({ s3: stranger });
      const res = await authed(denied, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/"] });
      expectError(res, 403, "bucket_forbidden");
    } finally {
      stranger.destroy();
    }
  });
});

describe("lookups", () => {
  it("answers 400 for ids that are not UUIDs and 404 for unknown ones", async ({ key, app }) => {
    const api = () => authed(app, key);
    for (const path of ["/batches/nope", "/batches/nope/documents", "/documents/123"]) {
      const res = await api().get(path).expect(400);
      expect(res.body.error.code).toBe("validation_error");
    }
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect((await api().get(`/batches/${unknown}`).expect(404)).body.error.code).toBe("batch_not_found");
    expect((await api().get(`/batches/${unknown}/documents`).expect(404)).body.error.code).toBe("batch_not_found");
    expect((await api().get(`/documents/${unknown}`).expect(404)).body.error.code).toBe("document_not_found");
    expect((await api().get("/nowhere").expect(404)).body.error.code).toBe("route_not_found");
    expect((await api().get(`/batches/${unknown}/report`).expect(404)).body.error.code).toBe("batch_not_found");
    expect((await api().get(`/batches/${unknown}/report?documents=yes`).expect(400)).body.error.code).toBe("validation_error");
  });

  it("rejects a cursor it did not issue and unknown query fields", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    const res = await api().post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["nothing-here/"] }).expect(202);
    await api().get(`/batches/${res.body.batchId}/documents?cursor=garbage`).expect(400);
    await api().get(`/batches/${res.body.batchId}/documents?sort=desc`).expect(400);
    await api().get(`/batches/${res.body.batchId}/documents?state=lost`).expect(400);
  });
});

describe("a small batch end to end", () => {
  const bucket = "ingest-small";
  const pdfs = [...pdfKeys("in/a/", 7), "in/b/UPPER.PDF", "in/b/Mixed.Pdf"];
  const others = ["in/a/readme.txt", "in/b/scan.tiff", "in/b/pdf", "in/b/archive.pdf.zip"];
  const markers = ["in/a/", "in/b/empty-folder/"];

  const upload = (stack: LocalStack) => putObjects(stack.s3, bucket, [...pdfs, ...others, ...markers, "elsewhere/x.pdf"]);

  it("accepts at once, lists in the background, queues every PDF once, skips and counts the rest", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    await upload(stack);
    const res = await api().post("/batches").send({ bucket, prefixes: ["in/a/", "in/b/"], label: "small" }).expect(202);
    expect(res.body).toEqual({ batchId: expect.any(String), state: "listing" });
    expect(res.headers.location).toBe(`/batches/${res.body.batchId}`);
    const batchId: string = res.body.batchId;
    await app.lister.idle();

    const batch = (await api().get(`/batches/${batchId}`).expect(200)).body;
    expect(batch).toMatchObject({
      batchId,
      label: "small",
      bucket,
      prefixes: ["in/a/", "in/b/"],
      state: "processing",
      documentCount: pdfs.length,
      skippedCount: others.length,
      listing: { finished: true },
    });
    expect(batch.documents).toEqual({
      queued: pdfs.length,
      classified: 0,
      splitting: 0,
      converting: 0,
      inferring: 0,
      done: 0,
      failed: 0,
    });
    expect(batch.listedAt).not.toBeNull();

    const messages = (await drainIngestQueue(stack.sqs, stack.queueUrls.ingest.url)).filter((m) => m.batchId === batchId);
    expect(messages.map((m) => m.key).sort()).toEqual([...pdfs].sort());
    expect(messages.every((m) => m.bucket === bucket && m.version === 1 && m.size === Buffer.byteLength(`%PDF-1.4 ${m.key}`))).toBe(
      true,
    );

    // Keyset pagination: pages of 3 cover every document exactly once, in key order.
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: request.Response = await api()
        .get(`/batches/${batchId}/documents`)
        .query({ limit: 3, state: "queued", ...(cursor ? { cursor } : {}) })
        .expect(200);
      expect(page.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.items.map((d: { key: string }) => d.key));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual([...pdfs].sort());
    expect(pages).toBe(Math.ceil(pdfs.length / 3));
    expect((await api().get(`/batches/${batchId}/documents?state=done`).expect(200)).body).toEqual({ items: [], nextCursor: null });

    const report = (await api().get(`/batches/${batchId}/report?documents=true`).expect(200)).body;
    expect(report.documents).toMatchObject({ total: pdfs.length, done: 0, failed: 0, inProgress: pdfs.length, skippedNonPdf: others.length });
    expect(report.perDocument.map((d: { key: string }) => d.key)).toEqual([...pdfs].sort());

    // Each document: its message's id, no pages yet, and its first audit record.
    const byKey = new Map(messages.map((m) => [m.key, m.documentId]));
    const docId = byKey.get("in/b/UPPER.PDF")!;
    const doc = (await api().get(`/documents/${docId}`).expect(200)).body;
    expect(doc).toMatchObject({ id: docId, batchId, bucket, key: "in/b/UPPER.PDF", state: "queued", pages: [] });
    expect(doc.auditTrail).toEqual([
      expect.objectContaining({ stage: "ingestion", outcome: "succeeded", documentId: docId, batchId, attempt: 1 }),
    ]);
  });

  it("completes a batch with no PDFs at once", async ({ key, app, stack }) => {
    const api = () => authed(app, key);
    await upload(stack);
    const res = await api().post("/batches").send({ bucket, prefixes: ["in/b/scan", "elsewhere/none"] }).expect(202);
    await app.lister.idle();
    const batch = (await api().get(`/batches/${res.body.batchId}`).expect(200)).body;
    expect(batch).toMatchObject({ state: "completed", documentCount: 0, skippedCount: 1 });
    expect(batch.completedAt).not.toBeNull();
  });

  it("completes a batch whose documents all finished before its listing ended", async ({ key, stack, prisma, makeApp }) => {
    await upload(stack);
    // The pipeline is faster than the listing: every document is done by the time its page is sent.
    const app = await makeApp({
      listPageSize: 4,
      listerHooks: {
        afterSend: async (e) => {
          await prisma.document.updateMany({ where: { batchId: e.batchId }, data: { state: "done", completedAt: new Date() } });
        },
      },
    });
    const res = await authed(app, key).post("/batches").send({ bucket, prefixes: ["in/a/"] }).expect(202);
    await app.lister.idle();
    const batch = (await authed(app, key).get(`/batches/${res.body.batchId}`).expect(200)).body;
    expect(batch).toMatchObject({ state: "completed", documentCount: 7, documents: { done: 7, queued: 0 } });
  });
});
