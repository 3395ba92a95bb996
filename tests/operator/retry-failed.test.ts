// POST /batches/:id/retry-failed (and `docpipe retry-failed`) on the local stack with every
// service running: only what failed is re-run, the batch completes again, and a second call
// re-sends nothing.
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { generateHostileCorpus, generatePdf, PAGE_SIZES } from "@docpipe/pdf";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { ensureBucket, putFile, startApi, startWorkers, waitFor, waitForBatch, withServices } from "./support.js";

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
    ["--conditions=@docpipe/source", "--import", "tsx", resolve(import.meta.dirname, "../../packages/cli/src/main.ts"), "retry-failed", batchId, "--json"],
    { env: { ...process.env, DOCPIPE_API_URL: app.url, DOCPIPE_API_KEY: app.key }, cwd: resolve(import.meta.dirname, "../..") },
  );
  expect(JSON.parse(cli.stdout)).toMatchObject({ batchId, state: "completed", retried: { documents: 0, pages: 0 } });
}));

test("a document with one broken page gets only that page re-sent, fails again with the same reason, and its batch completes again", async ({ stack, prisma }) => withServices(async (own) => {
  const dir = await tempDir();
  await ensureBucket(stack.s3, BUCKET);
  const prefix = "broken-page/";
  const fixture = (await generateHostileCorpus(join(dir, "hostile"))).find((f) => f.name === "one-broken-page.pdf")!;
  expect(fixture.expect).toEqual({ kind: "partial", pageCount: 5, brokenPages: [3] });
  await putFile(stack.s3, BUCKET, `${prefix}one-broken-page.pdf`, fixture.path);

  const app = own(await startApi(stack, prisma));
  own(await startWorkers(stack, prisma));
  const { batchId } = await app.api.submit({ bucket: BUCKET, prefixes: [prefix] });
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
