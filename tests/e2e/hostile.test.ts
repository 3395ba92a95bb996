// End to end: the hostile fixture set (truncated, empty, renamed, encrypted, a billion pages,
// a 200-inch page, broken xrefs, an image bomb, a page with bit rot, a file only pdfium opens,
// an owner password) through every service as one batch with the default `onDamagedPage: "flag"`.
// Each document must end where the generator says it must, for the reason it says, without
// retry loops, and the pipeline must still process a healthy document afterwards.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LocalStack } from "@docpipe/local-stack";
import { generateHostileCorpus, generatePdf, PAGE_SIZES, type HostileFixture } from "@docpipe/pdf";
import { imageKey, uploadFile } from "@docpipe/queue";
import { ApiClient, type BatchStatus } from "@docpipe/cli";
import { startPipeline } from "@docpipe/cli";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { waitFor, waitForBatch } from "../fixtures/wait.js";
import { expectedPixels, listKeys, mapLimit, pngSize, readHead, testLogger } from "./support.js";

/** Low, so the 200-inch page is the only one the pixel cap touches and the batch stays quick on 2 cores. */
const DPI = 50;
/** The limits a deployment sets (MAX_PAGES, MAX_PIXELS); far below the defaults, so they visibly apply. */
const MAX_PAGES = 1_000;
const MAX_PIXELS = 4_000_000;
const WAIT_MS = 150_000;

/** Pages of the batch not yet done or failed (a failed page fails its document while its siblings still run). */
const openPages = (stack: LocalStack, batchId: string) =>
  stack.prisma.page.count({ where: { document: { batchId }, state: { notIn: ["done", "failed"] } } });

/** The pages a fixture must split into (none when rejected), and those no engine draws cleanly (kept, flagged degraded). */
function pagesOf(f: HostileFixture): { pageCount: number; degraded: number[] } {
  if (f.expect.kind === "rejected") return { pageCount: 0, degraded: [] };
  return { pageCount: f.expect.pageCount, degraded: f.expect.degradedPages ?? [] };
}

/** The document's code when a fixture is rejected. */
const expectedFailureCode = (f: HostileFixture): string | null => (f.expect.kind === "rejected" ? f.expect.code : null);

test("every hostile fixture ends in its terminal state with a specific reason, and the pipeline survives", { timeout: 300_000 }, async ({ stack }) => {
  const dir = await mkdtemp(join(tmpdir(), "docpipe-hostile-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const prefix = "e2e/hostile/";
  const fixtures = await generateHostileCorpus(join(dir, "hostile"));
  const keyOf = (f: HostileFixture) => prefix + f.name;
  await mapLimit(fixtures, 4, (f) => uploadFile(stack.s3, stack.stagingBucket, keyOf(f), f.path, "application/pdf"));
  const healthy = await generatePdf(join(dir, "healthy.pdf"), [1, 2, 3].map(() => ({ widthPt: PAGE_SIZES.letter[0], heightPt: PAGE_SIZES.letter[1] })));
  await uploadFile(stack.s3, stack.stagingBucket, "e2e/after-hostile/healthy.pdf", healthy.path, "application/pdf");

  const pipeline = await startPipeline({ stack, logger: testLogger(), dpi: DPI, waitTimeSeconds: 1, maxPages: MAX_PAGES, maxPixels: MAX_PIXELS });
  let batchId: string;
  let status: BatchStatus;
  let report: Awaited<ReturnType<ApiClient["report"]>>;
  let healthyStatus: BatchStatus;
  let healthyBatchId: string;
  try {
    const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
    ({ batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: [prefix], label: "hostile" }));
    status = await waitForBatch(api, batchId, WAIT_MS);
    // A broken page fails its document at once; the siblings still finish on their own.
    await waitFor("every page of the batch done or failed", async () => (await openPages(stack, batchId)) === 0, { timeoutMs: WAIT_MS, intervalMs: 250 });
    // The failsafe drains each DLQ message and must only record it, never redo a permanent failure.
    const deadLettered = fixtures.filter((f) => f.expect.kind !== "processed").length;
    await waitFor("the failsafe saw every dead letter", async () => {
      const n = await stack.prisma.auditEvent.count({ where: { batchId, stage: "failsafe", outcome: "skipped" } });
      return n >= deadLettered;
    }, WAIT_MS);
    report = await api.report(batchId);
    // Nothing crashed or wedged: the same services still process a healthy document.
    ({ batchId: healthyBatchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["e2e/after-hostile/"], label: "after hostile" }));
    healthyStatus = await waitForBatch(api, healthyBatchId, WAIT_MS);
  } finally {
    await pipeline.stop();
  }

  const { prisma, s3, workBucket } = stack;
  expect(status.state).toBe("completed");
  expect(status).toMatchObject({ documentCount: fixtures.length, skippedCount: 0 });

  const documents = await prisma.document.findMany({ where: { batchId }, include: { pages: { include: { result: true } } } });
  const docOf = new Map(documents.map((d) => [d.key, d]));
  const doc = (f: HostileFixture) => docOf.get(keyOf(f))!;
  expect([...docOf.keys()].sort()).toEqual(fixtures.map(keyOf).sort());

  // Terminal state and reason per fixture, in one comparison so a failure shows the whole set.
  const observed = Object.fromEntries(
    fixtures.map((f) => {
      const d = doc(f);
      return [f.name, { state: d.state, failureCode: d.failureCode, pageCount: d.pageCount, reasonGiven: (d.failureReason ?? "").trim().length > 0 }];
    }),
  );
  expect(observed).toEqual(
    Object.fromEntries(
      fixtures.map((f) => [
        f.name,
        {
          state: f.expect.kind === "processed" ? "done" : "failed",
          failureCode: expectedFailureCode(f),
          pageCount: f.expect.kind === "rejected" ? null : f.expect.pageCount,
          reasonGiven: f.expect.kind !== "processed",
        },
      ]),
    ),
  );

  // Pages: every page of a processed fixture has a row, is done with exactly one PNG and one
  // result; a page no engine draws cleanly is flagged degraded with the engines' warnings.
  const images = new Set(await listKeys(s3, workBucket, `batches/${batchId}/documents/`));
  const pageSummary = (f: HostileFixture) =>
    doc(f)
      .pages.sort((a, b) => a.pageNumber - b.pageNumber)
      .map((p) => ({
        page: p.pageNumber,
        state: p.state,
        failureCode: p.failureCode,
        degraded: p.degraded,
        warned: p.warnings.length > 0,
        png: images.has(imageKey({ batchId, documentId: p.documentId }, p.pageNumber)),
        result: p.result?.pageNumber ?? null,
      }));
  const withPages = fixtures.filter((f) => f.expect.kind !== "rejected");
  expect(Object.fromEntries(withPages.map((f) => [f.name, pageSummary(f)]))).toEqual(
    Object.fromEntries(
      withPages.map((f) => {
        const e = pagesOf(f);
        return [
          f.name,
          Array.from({ length: e.pageCount }, (_, i) => {
            const degraded = e.degraded.includes(i + 1);
            // Any page may carry warnings (a repaired file's); a degraded one always does.
            const warned = degraded ? true : expect.any(Boolean);
            return { page: i + 1, state: "done", failureCode: null, degraded, warned, png: true, result: i + 1 };
          }),
        ];
      }),
    ),
  );
  expect(fixtures.filter((f) => f.expect.kind === "rejected").flatMap((f) => doc(f).pages)).toEqual([]);
  const pngCount = [...images].filter((k) => k.endsWith(".png")).length;
  const donePages = withPages.reduce((s, f) => s + pagesOf(f).pageCount, 0);
  const degradedPages = withPages.reduce((s, f) => s + pagesOf(f).degraded.length, 0);
  expect(pngCount).toBe(donePages);
  // The file only pdfium opens is split and drawn by it, and each page's row says so.
  const onlyPdfium = fixtures.find((f) => f.expect.kind === "processed" && f.expect.onlyPdfium)!;
  expect(doc(onlyPdfium).pages.map((p) => p.engine)).toEqual(Array.from({ length: pagesOf(onlyPdfium).pageCount }, () => "pdfium"));

  // The 200-inch page renders below MAX_PIXELS at a lower dpi, recorded on its row and true of its PNG.
  const huge = fixtures.find((f) => f.name === "huge-mediabox.pdf")!;
  const [bigPage, letterPage] = doc(huge).pages.sort((a, b) => a.pageNumber - b.pageNumber);
  const bigPng = pngSize(await readHead(s3, workBucket, bigPage!.imageKey!));
  expect(bigPng).toEqual({ width: bigPage!.width, height: bigPage!.height });
  expect(bigPng.width * bigPng.height).toBeLessThanOrEqual(MAX_PIXELS);
  expect(bigPng.width * bigPng.height).toBeGreaterThan(0.95 * MAX_PIXELS); // the highest dpi that fits, not some tiny one
  expect(bigPage!.dpi).toBeLessThan(DPI);
  expect(bigPage!.dpi).toBe(Math.round((bigPng.width / 14_400) * 72));
  expect(letterPage).toMatchObject({ dpi: DPI, ...expectedPixels({ widthPt: 612, heightPt: 792, rotate: 0 }, DPI) });

  // No retry loops: each rejected document was started once, failed at attempt 1 and dead-lettered
  // there; the failsafe only recorded them.
  const events = await prisma.auditEvent.findMany({ where: { batchId }, orderBy: { createdAt: "asc" } });
  const trail = (documentId: string, pageNumber?: number) =>
    events
      .filter((e) => e.documentId === documentId && (pageNumber === undefined || e.pageNumber === pageNumber))
      .filter((e) => e.outcome !== "succeeded" && e.stage !== "ingestion")
      .map((e) => `${e.stage}:${e.outcome}@${e.attempt ?? "-"}${e.errorCode ? `:${e.errorCode}` : ""}`)
      // Records written in the same millisecond have no order; the set of them is what matters.
      .sort();
  const trails = Object.fromEntries(
    fixtures
      .filter((f) => f.expect.kind !== "processed")
      .map((f) => [f.name, trail(doc(f).id)]),
  );
  expect(trails).toEqual(
    Object.fromEntries(
      fixtures.flatMap((f) => {
        if (f.expect.kind === "rejected") {
          const c = f.expect.code;
          return [[f.name, ["classify:started@1", `classify:failed@1:${c}`, `classify:dead_lettered@1:${c}`, `failsafe:skipped@1:${c}`].sort()]];
        }
        return [];
      }),
    ),
  );
  expect(events.filter((e) => e.stage === "failsafe" && e.outcome !== "skipped")).toEqual([]);

  // The report lists each failure code with its count and a reason.
  const expectedFailures = new Map<string, number>();
  for (const f of fixtures) {
    const code = expectedFailureCode(f);
    if (code) expectedFailures.set(code, (expectedFailures.get(code) ?? 0) + 1);
  }
  expect(report.failures.map((x) => ({ code: x.code, documents: x.documents })).sort((a, b) => a.code.localeCompare(b.code))).toEqual(
    [...expectedFailures].map(([code, documents]) => ({ code, documents })).sort((a, b) => a.code.localeCompare(b.code)),
  );
  expect(report.failures.every((x) => x.reason.length > 0)).toBe(true);
  const totalPages = withPages.reduce((s, f) => s + pagesOf(f).pageCount, 0);
  expect(report).toMatchObject({
    state: "completed",
    documents: { total: fixtures.length, done: withPages.length, failed: fixtures.length - withPages.length, inProgress: 0 },
    pages: { total: totalPages, rendered: donePages, degraded: degradedPages, withResults: donePages, failed: 0 },
  });
  expect(report.degraded.reduce((s, d) => s + d.pages, 0)).toBe(degradedPages);

  // After all that, a healthy document goes through the same services.
  expect(healthyStatus.state).toBe("completed");
  const after = await prisma.document.findMany({ where: { batchId: healthyBatchId }, include: { pages: { include: { result: true } } } });
  expect(after.map((d) => ({ state: d.state, pages: d.pages.filter((p) => p.state === "done" && p.result).length }))).toEqual([
    { state: "done", pages: healthy.pageCount },
  ]);
});
