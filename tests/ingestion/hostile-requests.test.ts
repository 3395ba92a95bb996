// The API probed as an attacker would (issue 13): text Postgres or S3 cannot take, the
// pipeline's own bucket as a source, allow-listed prefixes on path boundaries, and every status
// the server can produce, Node's own included, in the API's error shape.
import { connect } from "node:net";
import { encodeCursor } from "@docpipe/api-contract";
import { ApiClient, reportWithDocuments } from "@docpipe/cli";
import { createLogger } from "@docpipe/queue";
import type request from "supertest";
import { describe, expect } from "../fixtures/index.js";
import { appTest, authed, createTestKey, pdfKeys, putObjects, TEST_OWNER } from "./helpers.js";

const logger = createLogger({ service: "ingestion-hostile-test", level: "silent" });
const bucket = "hostile-in";

const it = appTest(logger).extend<{ $file: { uploaded: void } }>({
  uploaded: [
    async ({ stack }, use) => {
      await putObjects(stack.s3, bucket, [...pdfKeys("team-a/", 2), ...pdfKeys("team-ab/", 2)]);
      await use();
    },
    { scope: "file", auto: true },
  ],
});

/** An answer in the API's error shape, `{ error: { code, message, details } }`, with this status and code. */
function expectError(res: { status: number; body: unknown }, status: number, code: string): void {
  const body = res.body as { error?: Record<string, unknown> };
  expect({ status: res.status, code: body?.error?.code }).toEqual({ status, code });
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error!).sort()).toEqual(["code", "details", "message"]);
  expect(body.error!.message).toEqual(expect.any(String));
}

/** The message of a 400's first detail, for checking it names the problem. */
const firstDetail = (res: request.Response): string => JSON.stringify(res.body.error.details);

describe("text that cannot be stored or listed is a 400 with a reason", () => {
  it("a NUL byte in the label, in a prefix, or inside a forged cursor", async ({ key, makeApp, stack }) => {
    const app = await makeApp();
    let res = await authed(app, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/"], label: "scan\u0000s" });
    expectError(res, 400, "validation_error");
    expect(firstDetail(res)).toContain("NUL");
    res = await authed(app, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/\u0000"] });
    expectError(res, 400, "validation_error");
    expect(firstDetail(res)).toContain("prefixes.0");
    const batch = await authed(app, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["nothing/"] }).expect(202);
    res = await authed(app, key).get(`/batches/${batch.body.batchId}/documents?cursor=${encodeCursor("a\u0000b")}`);
    expectError(res, 400, "validation_error");
    expect(firstDetail(res)).toContain("cursor");
  });

  it("a lone surrogate in the label or in a prefix (it would never list: not a 503 'try again')", async ({ key, makeApp, stack }) => {
    const app = await makeApp();
    let res = await authed(app, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/"], label: "x\ud800y" });
    expectError(res, 400, "validation_error");
    expect(firstDetail(res)).toContain("surrogate");
    res = await authed(app, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["a/\udc00/"] });
    expectError(res, 400, "validation_error");
    expect(firstDetail(res)).toContain("surrogate");
    res = await authed(app, key).get(`/batches/00000000-0000-4000-8000-000000000000/documents?cursor=${encodeCursor("\ud800")}`);
    expectError(res, 400, "validation_error");
  });
});

describe("the pipeline's own buckets are never a source", () => {
  it("answers 403 to a key allowed every bucket that submits the work bucket, whatever the prefix", async ({ prisma, key, makeApp, stack }) => {
    const app = await makeApp();
    // Another owner's batch has pages in the work bucket: they must not become this caller's documents.
    await putObjects(stack.s3, stack.workBucket, ["batches/00000000-0000-4000-8000-000000000001/documents/d/pages/1.pdf"]);
    for (const prefixes of [["batches/00000000-0000-4000-8000-000000000001/"], [""], ["batches/"]]) {
      const res = await authed(app, key).post("/batches").send({ bucket: stack.workBucket, prefixes });
      expectError(res, 403, "bucket_reserved");
      expect(res.body.error.details).toEqual({ bucket: stack.workBucket });
    }
    expect(await prisma.batch.count()).toBe(0);
    // The same key may submit any other bucket.
    await authed(app, key).post("/batches").send({ bucket, prefixes: ["team-a/"] }).expect(202);
  });
});

describe("allowed prefixes match on path boundaries", () => {
  it("a key allowed team-a may submit team-a/ and below, never team-ab/ nor the bare team-a", async ({ prisma, makeApp }) => {
    const app = await makeApp({ resumeOnStart: false });
    const { key } = await createTestKey(prisma, { buckets: [bucket], prefixes: ["team-a"] });
    for (const inside of ["team-a/", "team-a/2026/", "team-a/doc-000000.pdf"]) {
      await authed(app, key).post("/batches").send({ bucket, prefixes: [inside] }).expect(202);
    }
    for (const outside of ["team-ab/", "team-a", "team-", "team-a-old/", ""]) {
      const res = await authed(app, key).post("/batches").send({ bucket, prefixes: [outside] });
      expectError(res, 403, "prefix_not_allowed");
      expect(res.body.error.details).toMatchObject({ prefixes: [outside], allowedPrefixes: ["team-a"] });
    }
    // An allowed prefix written with its slash means the same folder.
    const slashed = await createTestKey(prisma, { buckets: [bucket], prefixes: ["team-a/"] });
    await authed(app, slashed.key).post("/batches").send({ bucket, prefixes: ["team-a/x/"] }).expect(202);
    expectError(await authed(app, slashed.key).post("/batches").send({ bucket, prefixes: ["team-ab/"] }), 403, "prefix_not_allowed");
  });
});

/** Sends raw bytes and resolves with the status line's code and the parsed body (closing after the answer). */
function raw(port: number, payload: string, opts: { end?: boolean } = {}): Promise<{ status: number; body: unknown; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const bodyText = text.slice(text.indexOf("\r\n\r\n") + 4);
      let body: unknown;
      try {
        body = JSON.parse(bodyText);
      } catch {
        body = bodyText;
      }
      resolve({ status, body, text });
    });
    socket.write(payload);
    if (opts.end) socket.end();
  });
}

describe("every status the server can produce is in the API's error shape", () => {
  it("404, 405, 413, 414 and 415 from fastify and from our limits", async ({ key, makeApp, stack }) => {
    const app = await makeApp();
    expectError(await authed(app, key).get("/nowhere"), 404, "route_not_found");
    let res = await authed(app, key).delete("/batches");
    expectError(res, 405, "method_not_allowed");
    expect(res.headers.allow).toBe("POST");
    res = await authed(app, key).put(`/batches/00000000-0000-4000-8000-000000000000`);
    expectError(res, 405, "method_not_allowed");
    expect(res.headers.allow).toMatch(/GET/);
    res = await authed(app, key).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["x".repeat(5000)] });
    expectError(res, 413, "payload_too_large");
    expectError(await authed(app, key).get(`/batches/${"x".repeat(9000)}`), 414, "uri_too_long");
    res = await authed(app, key).post("/batches").set("content-type", "application/xml").send("<batch/>");
    expectError(res, 415, "unsupported_media_type");
  });

  it("431 for a 20 KB header, 400 for a request Node cannot parse, 408 for one that never ends", async ({ key, makeApp }) => {
    const app = await makeApp({ requestTimeoutMs: 1_000 });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const port = (app.server.address() as { port: number }).port;
    let res = await raw(port, `GET /usage HTTP/1.1\r\nHost: x\r\nx-api-key: ${"k".repeat(20_000)}\r\n\r\n`);
    expectError(res, 431, "headers_too_large");
    res = await raw(port, `GET /usage HTTP/1.1\r\nHost: x\r\nx-api-key: a\u0000b\r\n\r\n`);
    expectError(res, 400, "bad_request");
    res = await raw(port, `GARBAGE\r\n\r\n`);
    expectError(res, 400, "bad_request");
    res = await raw(port, `GET /usage HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\n`); // headers never end
    expectError(res, 408, "request_timeout");
    expect(res.text).not.toMatch(/\n\s+at /);
  });
});

describe("the report's per-document list is paginated", () => {
  it("answers at most 1,000 documents a page with a cursor to the next, and the CLI's client follows it to the end", async ({ prisma, key, makeApp }) => {
    const app = await makeApp();
    const batch = await prisma.batch.create({ data: { bucket, prefixes: ["many/"], owner: TEST_OWNER, state: "processing", documentCount: 2_345 } });
    const keys = pdfKeys("many/", 2_345);
    await prisma.document.createMany({ data: keys.map((k) => ({ batchId: batch.id, bucket, key: k })) });

    const first = (await authed(app, key).get(`/batches/${batch.id}/report?documents=true`).expect(200)).body;
    expect(first.documents.total).toBe(2_345);
    expect(first.perDocument).toHaveLength(1_000);
    expect(first.perDocumentNextCursor).toEqual(expect.any(String));
    const small = (await authed(app, key).get(`/batches/${batch.id}/report?documents=true&limit=2&cursor=${first.perDocumentNextCursor}`).expect(200)).body;
    expect(small.perDocument.map((d: { key: string }) => d.key)).toEqual(keys.slice(1_000, 1_002));
    expectError(await authed(app, key).get(`/batches/${batch.id}/report?documents=true&limit=1001`), 400, "validation_error");
    expectError(await authed(app, key).get(`/batches/${batch.id}/report?cursor=${first.perDocumentNextCursor}`), 400, "validation_error");
    expect((await authed(app, key).get(`/batches/${batch.id}/report`).expect(200)).body).not.toHaveProperty("perDocument");

    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    const report = await reportWithDocuments(new ApiClient(url, key), batch.id);
    expect(report.perDocument.map((d) => d.key)).toEqual(keys);
    expect(report.perDocumentNextCursor).toBeNull();
  });
});
