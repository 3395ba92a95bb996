import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import type { LocalStack } from "@docpipe/local-stack";
import { createPageConverter, type PageConverter, type PageConverterOptions } from "@docpipe/page-converter";
import { generatePdf, RenderPool, type CorpusPageSpec } from "@docpipe/pdf";
import { createLogger, finishPage, imageKey, pageKey, type SinglePageMessage } from "@docpipe/queue";
import { describe, expect, test as stackTest } from "../fixtures/index.js";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";

/** The shared stack fixtures plus, per file, one render pool and a scratch directory. */
const test = stackTest.extend<{ $file: { pool: RenderPool; dir: string } }>({
  pool: [
    // eslint-disable-next-line no-empty-pattern -- vitest reads the fixture's dependencies from this pattern
    async ({}, use) => {
      // One pool for the file: starting mupdf in a thread costs more than rendering a small page.
      const pool = new RenderPool({ size: 2, timeoutMs: 20_000 });
      try {
        await use(pool);
      } finally {
        await pool.close();
      }
    },
    { scope: "file" },
  ],
  dir: [
    // eslint-disable-next-line no-empty-pattern -- vitest reads the fixture's dependencies from this pattern
    async ({}, use) => {
      const dir = await mkdtemp(join(tmpdir(), "docpipe-converter-test-"));
      try {
        await use(dir);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    { scope: "file" },
  ],
});

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  expect([...png.subarray(1, 4)]).toEqual([0x50, 0x4e, 0x47]);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Helpers bound to one test's stack, database, pool and scratch directory. */
function harness({ stack, prisma, pool, dir }: { stack: LocalStack; prisma: PrismaClient; pool: RenderPool; dir: string }) {
  const converter = (overrides: Partial<PageConverterOptions> = {}): PageConverter =>
    createPageConverter({
      sqs: stack.sqs,
      s3: stack.s3,
      prisma,
      queueUrls: stack.queueUrls,
      workBucket: stack.workBucket,
      pool,
      dpi: 100,
      waitTimeSeconds: 1,
      stopTimeoutSeconds: 5,
      ...(process.env.TEST_LOG && { logger: createLogger({ service: "page-converter", level: process.env.TEST_LOG }) }),
      ...overrides,
    });

  async function running<T>(service: PageConverter, fn: () => Promise<T>): Promise<T> {
    service.start();
    try {
      return await fn();
    } finally {
      await service.stop();
    }
  }

  /**
   * A document whose pages are single-page PDFs in the work bucket with pending Page rows, as
   * the splitter leaves them; returns the messages it would have sent.
   */
  async function seedPages(pages: (CorpusPageSpec | { garbage: true })[]): Promise<SinglePageMessage[]> {
    const batch = await prisma.batch.create({ data: { bucket: "docpipe-staging", prefixes: ["in/"], state: "processing" } });
    const doc = await prisma.document.create({
      data: { batchId: batch.id, bucket: "docpipe-staging", key: `in/${batch.id}.pdf`, state: "splitting", pageCount: pages.length, class: "small" },
    });
    const ref = { batchId: batch.id, documentId: doc.id };
    const messages: SinglePageMessage[] = [];
    for (const [i, spec] of pages.entries()) {
      const pageNumber = i + 1;
      const key = pageKey(ref, pageNumber);
      let body: Uint8Array;
      if ("garbage" in spec) {
        body = Buffer.from("%PDF-1.7\nthis is not a page, just bytes that claim to be a PDF\n");
      } else {
        const path = join(dir, `${doc.id}-${pageNumber}.pdf`);
        await generatePdf(path, [spec]);
        body = await readFile(path);
      }
      await stack.s3.send(new PutObjectCommand({ Bucket: stack.workBucket, Key: key, Body: body, ContentType: "application/pdf" }));
      await prisma.page.create({ data: { documentId: doc.id, pageNumber, pdfKey: key } });
      messages.push({ version: 1, ...ref, bucket: stack.workBucket, key, pageNumber });
    }
    return messages;
  }

  async function send(messages: SinglePageMessage[]): Promise<void> {
    for (const m of messages) {
      await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.singlePage.url, MessageBody: JSON.stringify(m) }));
    }
  }

  return {
    converter,
    running,
    seedPages,
    send,
    pagesOf: (documentId: string) => prisma.page.findMany({ where: { documentId }, orderBy: { pageNumber: "asc" } }),
    auditsOf: (documentId: string) =>
      prisma.auditEvent.findMany({ where: { documentId, stage: "convert" }, orderBy: { id: "asc" } }),
  };
}

describe("page converter on the local stack", () => {
  test("renders each page to a PNG of the size its page box and DPI imply, and records it", async ({ stack, prisma, pool, dir }) => {
    const { converter, running, seedPages, send, pagesOf, auditsOf } = harness({ stack, prisma, pool, dir });
    const specs: CorpusPageSpec[] = [
      { widthPt: 612, heightPt: 792, content: "text" },
      { widthPt: 595.28, heightPt: 841.89, rotate: 90, content: "mixed" },
      { widthPt: 288, heightPt: 432, rotate: 180, content: "image" },
      { widthPt: 144, heightPt: 72, rotate: 270, content: "blank" },
    ];
    const messages = await seedPages(specs);
    const documentId = messages[0]!.documentId;
    await running(converter(), async () => {
      await send(messages);
      await waitFor("all pages rendered", async () => (await pagesOf(documentId)).every((p) => p.state === "rendered"));
    });

    const pages = await pagesOf(documentId);
    for (const [i, spec] of specs.entries()) {
      const turned = spec.rotate === 90 || spec.rotate === 270;
      const expected = {
        width: Math.round(((turned ? spec.heightPt : spec.widthPt) * 100) / 72),
        height: Math.round(((turned ? spec.widthPt : spec.heightPt) * 100) / 72),
      };
      const page = pages[i]!;
      const key = imageKey(messages[i]!, i + 1);
      expect(page).toMatchObject({ state: "rendered", imageKey: key, dpi: 100, ...expected });
      expect(page.renderMs).toBeGreaterThanOrEqual(0);
      const object = await stack.s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: key }));
      expect(object.ContentType).toBe("image/png");
      expect(pngSize(await object.Body!.transformToByteArray())).toEqual(expected);
    }
    expect(await prisma.document.findUniqueOrThrow({ where: { id: documentId } })).toMatchObject({ state: "converting" });
    const audits = await auditsOf(documentId);
    expect(audits.filter((a) => a.outcome === "succeeded").map((a) => a.pageNumber).sort()).toEqual([1, 2, 3, 4]);
  });

  test("renders a page too large for the pixel cap at a lower DPI that fits (its PDF through a file, over inMemoryMaxBytes)", async ({ stack, prisma, pool, dir }) => {
    const { converter, running, seedPages, send, pagesOf } = harness({ stack, prisma, pool, dir });
    // 100 × 100 inches: 10,000 × 10,000 pixels at 100 DPI, far over a 4-megapixel cap.
    const [message] = await seedPages([{ widthPt: 7200, heightPt: 7200, content: "text" }]);
    const tmpDir = join(dir, "over-in-memory-limit");
    await mkdir(tmpDir);
    await running(converter({ maxPixels: 4_000_000, inMemoryMaxBytes: 1, tmpDir }), async () => {
      await send([message!]);
      await waitFor("page rendered", async () => (await pagesOf(message!.documentId))[0]?.state === "rendered");
    });
    const [page] = await pagesOf(message!.documentId);
    expect(page!.width! * page!.height!).toBeLessThanOrEqual(4_000_000);
    expect(page!.width).toBeGreaterThan(1900);
    // sqrt(4e6 / 1e8) × 100 DPI.
    expect(page!.dpi).toBeGreaterThanOrEqual(19);
    expect(page!.dpi).toBeLessThanOrEqual(20);
    // The file went with its message.
    expect(await readdir(tmpDir)).toEqual([]);
  });

  test("fails a page that cannot be rendered, with its reason, and dead-letters it on the first attempt", async ({ stack, prisma, pool, dir }) => {
    const { converter, running, seedPages, send, pagesOf, auditsOf } = harness({ stack, prisma, pool, dir });
    const [message] = await seedPages([{ garbage: true }]);
    const dlq = stack.queueUrls.singlePage.dlqUrl;
    const before = await queueDepth(stack.sqs, dlq);
    await running(converter(), async () => {
      await send([message!]);
      await waitFor("page failed", async () => (await pagesOf(message!.documentId))[0]?.state === "failed");
      await waitFor("message dead-lettered", async () => (await queueDepth(stack.sqs, dlq)) === before + 1);
    });
    const [page] = await pagesOf(message!.documentId);
    expect(page).toMatchObject({ state: "failed", failureCode: "corrupt", imageKey: null });
    expect(page!.failureReason).toMatch(/cannot be rendered/);
    const doc = await prisma.document.findUniqueOrThrow({ where: { id: message!.documentId } });
    expect(doc).toMatchObject({ state: "failed", failureCode: "convert_corrupt" });
    expect(doc.failureReason).toMatch(/^page 1: /);
    expect(await prisma.batch.findUniqueOrThrow({ where: { id: message!.batchId } })).toMatchObject({ state: "completed" });
    const audits = await auditsOf(message!.documentId);
    expect(audits.map((a) => [a.outcome, a.attempt])).toEqual([
      ["started", 1],
      ["dead_lettered", 1],
    ]);
  });

  test("treats a redelivery as a no-op and never moves a done page back", async ({ stack, prisma, pool, dir }) => {
    const { converter, running, seedPages, send, pagesOf, auditsOf } = harness({ stack, prisma, pool, dir });
    const messages = await seedPages([
      { widthPt: 612, heightPt: 792, content: "text" },
      { widthPt: 612, heightPt: 792, content: "text" },
    ]);
    const documentId = messages[0]!.documentId;
    await running(converter(), async () => {
      await send(messages);
      await waitFor("pages rendered", async () => (await pagesOf(documentId)).every((p) => p.state === "rendered"));
      // Inference finished page 2 meanwhile.
      await prisma.page.update({ where: { documentId_pageNumber: { documentId, pageNumber: 2 } }, data: { state: "done" } });
      await send(messages);
      await waitFor("both redeliveries skipped", async () =>
        (await auditsOf(documentId)).filter((a) => a.outcome === "skipped").length === 2,
      );
    });
    expect((await pagesOf(documentId)).map((p) => p.state)).toEqual(["rendered", "done"]);
    const audits = await auditsOf(documentId);
    expect(audits.filter((a) => a.outcome === "succeeded")).toHaveLength(2);
  });

  test("renders again a page scored before its row was written (a converter killed after its upload)", async ({ stack, prisma, pool, dir }) => {
    const { converter, running, seedPages, send, pagesOf, auditsOf } = harness({ stack, prisma, pool, dir });
    const messages = await seedPages([{ widthPt: 612, heightPt: 792, content: "text" }]);
    const documentId = messages[0]!.documentId;
    // The killed converter uploaded the PNG; inference claimed the page (its lease outlasts the
    // converter's message), scored it and marked it done with its own statement; the row has no image facts.
    const where = { documentId_pageNumber: { documentId, pageNumber: 1 } };
    const page = await prisma.page.update({
      where,
      data: { leaseStage: "inference", leaseOwner: "inference-client/killed-test", leaseUntil: new Date(Date.now() + 600_000) },
      include: { document: { select: { batchId: true } } },
    });
    await finishPage(prisma, { id: page.id, documentId, batchId: page.document.batchId });
    expect(await prisma.page.findUniqueOrThrow({ where })).toMatchObject({ state: "done", imageKey: null });
    await running(converter(), async () => {
      await send(messages);
      await waitFor("page rendered", async () => (await pagesOf(documentId))[0]?.imageKey !== null);
    });
    expect((await pagesOf(documentId))[0]).toMatchObject({ state: "done", imageKey: imageKey(messages[0]!, 1), width: 850, height: 1100, dpi: 100 });
    expect((await auditsOf(documentId)).map((a) => a.outcome)).toEqual(["started", "succeeded"]);
  });
});
