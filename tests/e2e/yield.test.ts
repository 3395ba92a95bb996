// End to end, issue 10: a page no engine draws cleanly is kept as `degraded` (its PNG, its model
// result, its warnings in the Page row, the audit trail, the report and GET /documents/:id), a
// page whose PNG only pdfium draws fully is pdfium's, and a batch with `onDamagedPage: "fail"`
// keeps the strict behaviour. (The hostile e2e test covers the file only pdfium opens and the
// owner-password PDF among the other fixtures.)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateHostileCorpus, type HostileFixture } from "@docpipe/pdf";
import { imageKey, uploadFile } from "@docpipe/queue";
import { ApiClient, startPipeline, type BatchStatus } from "@docpipe/cli";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { listKeys, testLogger } from "./support.js";

const DPI = 40;
const WAIT_MS = 90_000;

async function finished(api: ApiClient, batchId: string): Promise<BatchStatus> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const s = await api.status(batchId);
    if (s.state === "completed" || s.state === "failed") return s;
    if (Date.now() > deadline) throw new Error(`batch ${batchId} not finished within ${WAIT_MS} ms: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("a damaged page is kept as degraded under the default policy and fails under onDamagedPage fail; pdfium's fuller image wins", { timeout: 180_000 }, async ({ stack }) => {
  const dir = await mkdtemp(join(tmpdir(), "docpipe-yield-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const fixtures = await generateHostileCorpus(join(dir, "hostile"));
  const fixture = (name: string): HostileFixture => fixtures.find((f) => f.name === name)!;
  const broken = fixture("one-broken-page.pdf");
  const pdfiumDraws = fixture("only-pdfium-draws.pdf");
  expect(broken.expect).toMatchObject({ pageCount: 5, degradedPages: [3] });
  expect(pdfiumDraws.expect).toMatchObject({ pageCount: 2, pdfiumPages: [2] });
  for (const [key, f] of [
    ["e2e/flag/one-broken-page.pdf", broken],
    ["e2e/flag/only-pdfium-draws.pdf", pdfiumDraws],
    ["e2e/fail/one-broken-page.pdf", broken],
  ] as const) {
    await uploadFile(stack.s3, stack.stagingBucket, key, f.path, "application/pdf");
  }

  const pipeline = await startPipeline({ stack, logger: testLogger(), dpi: DPI, waitTimeSeconds: 1 });
  const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
  const getDocument = async (id: string) => {
    const res = await fetch(new URL(`/documents/${id}`, pipeline.apiUrl), { headers: { "x-api-key": pipeline.apiKey } });
    expect(res.status).toBe(200);
    return (await res.json()) as {
      state: string;
      pages: { pageNumber: number; engine: string | null; degraded: boolean; degradedReason: string | null; warnings: string[] }[];
      auditTrail: { stage: string; outcome: string; pageNumber: number | null; details: Record<string, unknown> | null }[];
    };
  };
  let flag: { batchId: string; status: BatchStatus };
  let fail: { batchId: string; status: BatchStatus };
  let flagReport: Awaited<ReturnType<ApiClient["report"]>>;
  let failReport: Awaited<ReturnType<ApiClient["report"]>>;
  let brokenApi: Awaited<ReturnType<typeof getDocument>>;
  try {
    const { batchId: flagId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["e2e/flag/"] });
    const { batchId: failId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["e2e/fail/"], onDamagedPage: "fail" });
    flag = { batchId: flagId, status: await finished(api, flagId) };
    fail = { batchId: failId, status: await finished(api, failId) };
    flagReport = await api.report(flagId, true);
    failReport = await api.report(failId, true);
    const brokenDoc = await stack.prisma.document.findFirstOrThrow({ where: { batchId: flagId, key: "e2e/flag/one-broken-page.pdf" } });
    brokenApi = await getDocument(brokenDoc.id);
  } finally {
    await pipeline.stop();
  }
  const { prisma, s3, workBucket } = stack;
  expect(flag.status).toMatchObject({ state: "completed", onDamagedPage: "flag" });
  expect(fail.status).toMatchObject({ state: "completed", onDamagedPage: "fail" });

  // Flag (the default): both documents done, every page with a PNG and a model result.
  const docs = await prisma.document.findMany({ where: { batchId: flag.batchId }, include: { pages: { include: { result: true }, orderBy: { pageNumber: "asc" } } } });
  const images = new Set(await listKeys(s3, workBucket, `batches/${flag.batchId}/documents/`));
  const pagesOf = (key: string) =>
    docs
      .find((d) => d.key === key)!
      .pages.map((p) => ({
        page: p.pageNumber,
        state: p.state,
        engine: p.engine,
        degraded: p.degraded,
        degradedReason: p.degradedReason,
        png: images.has(imageKey({ batchId: flag.batchId, documentId: p.documentId }, p.pageNumber)),
        result: p.result !== null,
      }));
  expect(docs.map((d) => [d.key, d.state, d.failureCode])).toEqual(
    expect.arrayContaining([
      ["e2e/flag/one-broken-page.pdf", "done", null],
      ["e2e/flag/only-pdfium-draws.pdf", "done", null],
    ]),
  );
  const clean = { state: "done", engine: "mupdf", degraded: false, degradedReason: null, png: true, result: true };
  expect(pagesOf("e2e/flag/one-broken-page.pdf")).toEqual([1, 2, 3, 4, 5].map((page) =>
    page === 3 ? { ...clean, page, degraded: true, degradedReason: "zlib error" } : { ...clean, page },
  ));
  // mupdf draws page 2 with damage, pdfium draws it whole: pdfium's image, and not degraded.
  expect(pagesOf("e2e/flag/only-pdfium-draws.pdf")).toEqual([{ ...clean, page: 1 }, { ...clean, page: 2, engine: "pdfium" }]);

  // The warnings: in the Page row, in the page's audit record, and in GET /documents/:id.
  const page3 = brokenApi.pages.find((p) => p.pageNumber === 3)!;
  expect(page3).toMatchObject({ engine: "mupdf", degraded: true, degradedReason: "zlib error" });
  expect(page3.warnings.join("\n")).toMatch(/zlib error/);
  const converted = brokenApi.auditTrail.find((e) => e.stage === "convert" && e.outcome === "succeeded" && e.pageNumber === 3)!;
  expect(converted.details).toMatchObject({ engine: "mupdf", degraded: true, degradedReason: "zlib error", warnings: page3.warnings });
  const pdfiumAudit = await prisma.auditEvent.findFirstOrThrow({
    where: { batchId: flag.batchId, stage: "convert", outcome: "succeeded", pageNumber: 2, document: { key: "e2e/flag/only-pdfium-draws.pdf" } },
  });
  expect(pdfiumAudit.details).toMatchObject({ engine: "pdfium", degraded: false, warnings: expect.arrayContaining([expect.stringMatching(/syntax error/)]) });

  // The report counts the degraded page, per reason and per document.
  expect(flagReport).toMatchObject({
    documents: { total: 2, done: 2, failed: 0 },
    pages: { total: 7, rendered: 7, degraded: 1, withResults: 7, failed: 0 },
    degraded: [{ reason: "zlib error", pages: 1, documents: 1 }],
  });
  expect(flagReport.perDocument?.map((d) => [d.key, d.pngCount, d.degradedCount]).sort()).toEqual([
    ["e2e/flag/one-broken-page.pdf", 5, 1],
    ["e2e/flag/only-pdfium-draws.pdf", 2, 0],
  ]);

  // Fail: the damaged page fails alone (no PNG, no result), and so does its document.
  const strict = await prisma.document.findFirstOrThrow({ where: { batchId: fail.batchId }, include: { pages: { include: { result: true }, orderBy: { pageNumber: "asc" } } } });
  expect(strict).toMatchObject({ state: "failed", failureCode: "convert_corrupt_page" });
  expect(strict.failureReason).toMatch(/page 3.*zlib error/);
  expect(strict.pages.map((p) => [p.pageNumber, p.state, p.imageKey !== null, p.result !== null])).toEqual([
    [1, "done", true, true],
    [2, "done", true, true],
    [3, "failed", false, false],
    [4, "done", true, true],
    [5, "done", true, true],
  ]);
  expect(failReport).toMatchObject({ pages: { total: 5, rendered: 4, degraded: 0, failed: 1 }, degraded: [], failures: [{ code: "convert_corrupt_page", documents: 1 }] });
});
