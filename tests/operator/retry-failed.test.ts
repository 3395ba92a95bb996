// POST /batches/:id/retry-failed (and `docpipe retry-failed`) on the local stack with every
// service running: only what failed is re-run, the batch completes again, and a second call
// re-sends nothing.
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { ChangeMessageVisibilityCommand, DeleteMessageCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { AuditWriter, parseImageKey, parseS3Event, PermanentError, recordPageDeadLetter, type HandlerContext } from "@docpipe/queue";
import { generateHostileCorpus, generatePdf, PAGE_SIZES } from "@docpipe/pdf";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { waitFor, waitForBatch } from "../fixtures/wait.js";
import { ensureBucket, putFile, startApi, startWorkers, withServices } from "./support.js";
import { docpipeNodeArgs } from "../fixtures/docpipe-command.js";

const BUCKET = "operator-retry";
const [W, H] = PAGE_SIZES.letter;
const letter = (content: "text" | "image") => ({ widthPt: W, heightPt: H, rotate: 0 as const, content });

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "docpipe-operator-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("a document whose source was missing is done after the object is uploaded and the batch retried; done documents are left alone", async ({ stack, prisma }) => withServices(async (own) => {
  const dir = await tempDir();
  await ensureBucket(stack.s3, BUCKET);
  const prefix = "missing-source/";
  await generatePdf(join(dir, "single.pdf"), [letter("text")]);
  await generatePdf(join(dir, "three.pdf"), [letter("text"), letter("image"), letter("text")]);
  for (const name of ["single.pdf", "three.pdf", "late.pdf"]) {
    await putFile(stack.s3, BUCKET, prefix + name, join(dir, name === "late.pdf" ? "three.pdf" : name));
  }

  const app = own(await startApi(stack, prisma));
  const { batchId } = await app.api.submit({ bucket: BUCKET, prefixes: [prefix] });
  // Listed while no worker runs; then the object disappears before the orchestrator reads it.
  await waitFor("the listing", async () => ((await app.api.status(batchId)).state === "processing" ? true : undefined));
  await stack.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}late.pdf` }));
  own(await startWorkers(stack, prisma));

  const first = await waitForBatch(app.api, batchId);
  expect(first.state).toBe("completed");
  expect(first.documents).toMatchObject({ done: 2, failed: 1 });
  const late = await prisma.document.findFirstOrThrow({ where: { batchId, key: `${prefix}late.pdf` } });
  expect(late).toMatchObject({ state: "failed", failureCode: "source_missing" });
  const doneBefore = await prisma.document.findMany({
    where: { batchId, state: "done" },
    select: { id: true, completedAt: true, _count: { select: { auditEvents: true } } },
    orderBy: { id: "asc" },
  });

  await putFile(stack.s3, BUCKET, `${prefix}late.pdf`, join(dir, "three.pdf"));
  const retry = await app.api.retryFailed(batchId);
  expect(retry).toMatchObject({
    batchId,
    retried: { documents: 1, pages: 0 },
    resent: { ingest: 1, singlePage: 0, convertedImage: 0 },
    byFailureCode: { source_missing: 1 },
    expectedToFailAgain: 0,
  });
  expect(retry.note).toBeUndefined();
  // Called again while the document is on its way: nothing is failed, nothing is re-sent.
  const again = await app.api.retryFailed(batchId);
  expect(again).toMatchObject({ retried: { documents: 0, pages: 0 }, resent: { ingest: 0, singlePage: 0, convertedImage: 0 }, byFailureCode: {} });

  const second = await waitForBatch(app.api, batchId);
  expect(second.state).toBe("completed");
  expect(second.documents).toMatchObject({ done: 3, failed: 0 });
  const report = await app.api.report(batchId);
  expect(report.documents).toMatchObject({ total: 3, done: 3, failed: 0, inProgress: 0 });
  expect(report.pages).toMatchObject({ total: 7, withResults: 7, failed: 0 });
  expect(report.failures).toEqual([]);

  const retried = await prisma.document.findUniqueOrThrow({ where: { id: late.id }, include: { pages: true, auditEvents: { orderBy: { id: "asc" } } } });
  expect(retried).toMatchObject({ state: "done", failureCode: null, failureReason: null, pageCount: 3 });
  expect(retried.pages.map((p) => p.state)).toEqual(["done", "done", "done"]);
  const replayed = retried.auditEvents.filter((e) => e.outcome === "replayed");
  expect(replayed).toHaveLength(1);
  expect(replayed[0]).toMatchObject({
    stage: "ingestion",
    details: { event: "retry_failed", retry: 1, resentTo: "ingest", previousFailure: { code: "source_missing" } },
  });
  // The trail reads: classified, failed, dead-lettered, replayed, then classified again and done.
  const afterReplay = retried.auditEvents.slice(retried.auditEvents.indexOf(replayed[0]!) + 1);
  expect(afterReplay.some((e) => e.stage === "classify" && e.outcome === "succeeded")).toBe(true);
  expect(afterReplay.filter((e) => e.stage === "inference" && e.outcome === "succeeded")).toHaveLength(3);

  // The documents that were done were not touched: same completion time, no new audit record.
  const doneAfter = await prisma.document.findMany({
    where: { id: { in: doneBefore.map((d) => d.id) } },
    select: { id: true, completedAt: true, _count: { select: { auditEvents: true } } },
    orderBy: { id: "asc" },
  });
  expect(doneAfter).toEqual(doneBefore);
  const batchEvents = await prisma.auditEvent.findMany({ where: { batchId, documentId: null, outcome: "replayed" } });
  expect(batchEvents).toHaveLength(1);
  expect(batchEvents[0]!.details).toMatchObject({ event: "retry_failed", documents: 1, pages: 0, byFailureCode: { source_missing: 1 } });

  // The CLI command, against the same API: nothing failed is left, so nothing is re-sent.
  const cli = await promisify(execFile)(
    process.execPath,
    [...docpipeNodeArgs(), "retry-failed", batchId, "--json"],
    { env: { ...process.env, DOCPIPE_API_URL: app.url, DOCPIPE_API_KEY: app.key }, cwd: resolve(import.meta.dirname, "../..") },
  );
  expect(JSON.parse(cli.stdout)).toMatchObject({ batchId, state: "completed", retried: { documents: 0, pages: 0 } });
}));

test("in a strict batch, a document with one broken page gets only that page re-sent, fails again with the same reason, and its batch completes again", async ({ stack, prisma }) => withServices(async (own) => {
  const dir = await tempDir();
  await ensureBucket(stack.s3, BUCKET);
  const prefix = "broken-page/";
  const fixture = (await generateHostileCorpus(join(dir, "hostile"))).find((f) => f.name === "one-broken-page.pdf")!;
  expect(fixture.expect).toEqual({ kind: "processed", pageCount: 5, degradedPages: [3] });
  await putFile(stack.s3, BUCKET, `${prefix}one-broken-page.pdf`, fixture.path);

  const app = own(await startApi(stack, prisma));
  own(await startWorkers(stack, prisma));
  // A strict batch: a page no engine draws cleanly fails instead of being kept as degraded.
  const { batchId } = await app.api.submit({ bucket: BUCKET, prefixes: [prefix], onDamagedPage: "fail" });
  expect((await waitForBatch(app.api, batchId)).state).toBe("completed");
  const doc = await prisma.document.findFirstOrThrow({ where: { batchId } });
  expect(doc).toMatchObject({ state: "failed", failureCode: "convert_corrupt_page" });
  /** Render attempts per page number. */
  const convertRuns = async () =>
    new Map(
      (await prisma.auditEvent.groupBy({ by: ["pageNumber"], where: { documentId: doc.id, stage: "convert", outcome: "started" }, _count: { _all: true } }))
        .map((g) => [g.pageNumber, g._count._all] as const),
    );
  const before = await convertRuns();
  expect([...before.keys()].sort()).toEqual([1, 2, 3, 4, 5]);

  const retry = await app.api.retryFailed(batchId);
  expect(retry).toMatchObject({
    retried: { documents: 1, pages: 1 },
    resent: { ingest: 0, singlePage: 1, convertedImage: 0 },
    byFailureCode: { convert_corrupt_page: 1 },
    expectedToFailAgain: 1,
  });
  expect(retry.note).toMatch(/will fail again/);
  const second = await waitForBatch(app.api, batchId);
  expect(second.state).toBe("completed");

  const after = await prisma.document.findUniqueOrThrow({ where: { id: doc.id }, include: { pages: { orderBy: { pageNumber: "asc" } } } });
  expect(after).toMatchObject({ state: "failed", failureCode: "convert_corrupt_page" });
  expect(after.pages.map((p) => p.state)).toEqual(["done", "done", "failed", "done", "done"]);
  // Page 3 was rendered once more; its siblings were not touched.
  const runs = await convertRuns();
  for (const [page, count] of before) expect(runs.get(page)).toBe(page === 3 ? count + 1 : count);
  const replayed = await prisma.auditEvent.findMany({ where: { documentId: doc.id, outcome: "replayed" }, orderBy: { id: "asc" } });
  expect(replayed.map((e) => [e.stage, e.pageNumber])).toEqual([
    ["ingestion", null],
    ["convert", 3],
  ]);
  expect(replayed[1]!.details).toMatchObject({ event: "retry_failed", retry: 1, resentTo: "single-page", previousFailure: { code: "corrupt_page" } });
}));

test("a page whose inference was given up is re-announced from its PNG, scored without being rendered again, and its document completes", async ({ stack, prisma }) => withServices(async (own) => {
  const dir = await tempDir();
  await ensureBucket(stack.s3, BUCKET);
  const prefix = "inference-gave-up/";
  await generatePdf(join(dir, "three.pdf"), [letter("text"), letter("image"), letter("text")]);
  await putFile(stack.s3, BUCKET, `${prefix}three.pdf`, join(dir, "three.pdf"));

  const app = own(await startApi(stack, prisma));
  // Everything but inference: the PNGs are written and announced on the converted-image queue.
  own(await startWorkers(stack, prisma, ["orchestrator", "splitters", "converter"]));
  const { batchId } = await app.api.submit({ bucket: BUCKET, prefixes: [prefix] });
  const doc = await waitFor("three rendered pages", async () => {
    const d = await prisma.document.findFirst({ where: { batchId }, include: { pages: true } });
    return d && d.pages.length === 3 && d.pages.every((p) => p.state === "rendered") ? d : undefined;
  });

  // The inference client gives up on page 2: its notification goes (dead-lettered) and the page
  // and document fail through the same shared transition the client's onDeadLetter runs.
  const queueUrl = stack.queueUrls.convertedImage.url;
  const notices = await waitFor("the three PNG notifications", async () => {
    const seen = new Map<number, string>();
    for (let i = 0; i < 5 && seen.size < 3; i++) {
      const r = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30 }));
      for (const m of r.Messages ?? []) {
        const event = parseS3Event(m.Body);
        const ref = event.kind === "records" ? parseImageKey(event.records[0]!.key) : undefined;
        if (ref?.documentId === doc.id) seen.set(ref.pageNumber, m.ReceiptHandle!);
      }
    }
    return seen.size === 3 ? seen : undefined;
  });
  await stack.sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: notices.get(2)! }));
  for (const n of [1, 3]) {
    await stack.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: notices.get(n)!, VisibilityTimeout: 0 }));
  }
  const audit = new AuditWriter({ prisma, workerId: "operator-test" });
  await recordPageDeadLetter({ prisma, audit }, "inference", { batchId, documentId: doc.id, pageNumber: 2 },
    new PermanentError("model_rejected", "the model endpoint refused the page"),
    { messageId: "test", attempt: 8 } as HandlerContext, { failFrom: ["pending", "rendered", "failed"] });

  // The failed page leaves the document open until its siblings are scored; then it fails.
  expect(await app.api.status(batchId)).toMatchObject({ state: "processing", documents: { failed: 0 } });
  own(await startWorkers(stack, prisma, ["inference"]));
  await waitFor("pages 1 and 3 scored", async () =>
    (await prisma.page.count({ where: { documentId: doc.id, state: "done" } })) === 2 ? true : undefined);
  expect(await waitForBatch(app.api, batchId)).toMatchObject({ state: "completed", documents: { failed: 1 } });
  expect((await prisma.inferenceResult.findMany({ where: { documentId: doc.id } })).map((r) => r.pageNumber).sort()).toEqual([1, 3]);
  const rendersBefore = await prisma.auditEvent.count({ where: { documentId: doc.id, stage: "convert", outcome: "started" } });

  const retry = await app.api.retryFailed(batchId);
  expect(retry).toMatchObject({
    state: "processing",
    retried: { documents: 1, pages: 1 },
    resent: { ingest: 0, singlePage: 0, convertedImage: 1 },
    byFailureCode: { inference_model_rejected: 1 },
    expectedToFailAgain: 0,
  });
  expect(await waitForBatch(app.api, batchId)).toMatchObject({ state: "completed", documents: { done: 1, failed: 0 } });
  const after = await prisma.document.findUniqueOrThrow({ where: { id: doc.id }, include: { pages: { orderBy: { pageNumber: "asc" } } } });
  expect(after).toMatchObject({ state: "done", failureCode: null });
  expect(after.pages.map((p) => [p.state, p.failureCode])).toEqual([["done", null], ["done", null], ["done", null]]);
  expect(await prisma.inferenceResult.count({ where: { documentId: doc.id } })).toBe(3);
  // Scored from the PNG already in place: nothing was rendered again.
  expect(await prisma.auditEvent.count({ where: { documentId: doc.id, stage: "convert", outcome: "started" } })).toBe(rendersBefore);
  const replayed = await prisma.auditEvent.findMany({ where: { documentId: doc.id, outcome: "replayed" }, orderBy: { id: "asc" } });
  expect(replayed.map((e) => [e.stage, e.pageNumber])).toEqual([["ingestion", null], ["inference", 2]]);
  expect(replayed[1]!.details).toMatchObject({ resentTo: "converted-image", previousFailure: { code: "model_rejected" } });
}));
