// A document of 2 GiB or more is split by native mutool, then its chunks go on like any other's.
// A 2 GiB upload to s3rver takes about a minute, so the pipeline runs with the splitters'
// NATIVE_SPLIT_MIN_BYTES at the orchestrator's size limit: a document just over it takes the
// whole path a 2 GiB one does (never opened by the orchestrator, counted and split by mutool),
// and is rendered and scored page by page.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "@docpipe/cli";
import { startPipeline } from "@docpipe/cli";
import { generateLargePdf, PAGE_SIZES } from "@docpipe/pdf";
import { chunkKey, imageKey, uploadFile } from "@docpipe/queue";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { waitForBatch } from "../fixtures/wait.js";
import { expectedPixels, pngSize, readHead, testLogger } from "./support.js";

const DPI = 40;
const MiB = 1024 * 1024;
/** The orchestrator's LARGE_SIZE_BYTES: a bigger document is never opened before the large splitter. */
const LARGE_BYTES = 10 * MiB;
const PAGES = 12;

test("a document read by native mutool is split, rendered and scored page by page", { timeout: 180_000 }, async ({ stack }) => {
  const dir = await mkdtemp(join(tmpdir(), "docpipe-e2e-native-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = await generateLargePdf(join(dir, "large.pdf"), {
    pageCount: PAGES,
    targetBytes: LARGE_BYTES + MiB / 2,
    sizes: [PAGE_SIZES.letter, PAGE_SIZES.a4].map(([widthPt, heightPt]) => ({ widthPt, heightPt })),
    rotations: [0, 90],
  });
  expect(file.sizeBytes).toBeGreaterThan(LARGE_BYTES);
  await uploadFile(stack.s3, stack.stagingBucket, "native/large.pdf", file.path, "application/pdf");

  const pipeline = await startPipeline({ stack, logger: testLogger(), dpi: DPI, waitTimeSeconds: 1, nativeSplitMinBytes: LARGE_BYTES });
  let batchId: string;
  try {
    const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
    ({ batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["native/"], label: "native" }));
    const status = await waitForBatch(api, batchId, 120_000);
    expect(status).toMatchObject({ state: "completed", pages: { expected: PAGES, split: PAGES, done: PAGES, failed: 0 } });
  } finally {
    await pipeline.stop();
  }

  const { prisma, s3, workBucket } = stack;
  const doc = await prisma.document.findFirstOrThrow({ where: { batchId } });
  expect([doc.state, doc.class, doc.pageCount]).toEqual(["done", "large", PAGES]);
  const ref = { batchId, documentId: doc.id };
  // The orchestrator did not open it; the large splitter counted it with mutool and wrote its chunks.
  const split = await prisma.auditEvent.findMany({ where: { documentId: doc.id, stage: "split-large" } });
  expect(split.map((e) => [e.outcome, e.details])).toEqual(
    expect.arrayContaining([["succeeded", { pageCount: PAGES, chunks: 2, bytes: file.sizeBytes, engine: "mutool" }]]),
  );
  const chunks = await prisma.chunk.findMany({ where: { documentId: doc.id }, orderBy: { firstPage: "asc" } });
  expect(chunks.map((c) => c.key)).toEqual([chunkKey(ref, 1, 10), chunkKey(ref, 11, 12)]);

  // Every page: one PNG of the size its original page implies, and one result.
  const rows = await prisma.page.findMany({ where: { documentId: doc.id }, orderBy: { pageNumber: "asc" }, include: { result: true } });
  const pixels = file.pages.map((p) => expectedPixels(p, DPI));
  expect(rows.map((r) => ({ page: r.pageNumber, state: r.state, imageKey: r.imageKey, size: `${r.width}x${r.height}`, result: r.result !== null }))).toEqual(
    pixels.map((px, i) => ({ page: i + 1, state: "done", imageKey: imageKey(ref, i + 1), size: `${px.width}x${px.height}`, result: true })),
  );
  const pngs = await Promise.all(rows.map(async (r) => pngSize(await readHead(s3, workBucket, r.imageKey!))));
  expect(pngs).toEqual(pixels);
});
