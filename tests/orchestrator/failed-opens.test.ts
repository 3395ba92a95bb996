// mupdf.js 1.28 breaks its WASM heap after some hundreds of failed opens in one instance: the
// orchestrator and the splitter open documents in PdfPool workers, which are replaced long before.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOrchestrator } from "@docpipe/chunking-orchestrator";
import { generateCorpus, PdfPool, type Corpus } from "@docpipe/pdf";
import { createLogger, QueueProducer } from "@docpipe/queue";
import { createSplitter } from "@docpipe/splitter";
import { afterAll, afterEach, beforeAll } from "vitest";
import { describe, expect, test } from "../fixtures/index.js";
import { waitFor } from "../fixtures/wait.js";
import { createDocuments, putObject, receiveBodies, TEST_WAIT_TIME_SECONDS } from "./support.js";

// More than a worker's 32 failed opens: its mupdf cannot open any of these ("no objects found"), nor can pdfium.
const BROKEN = 34;

let dir: string;
let corpus: Corpus;
let broken: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-failed-opens-"));
  corpus = await generateCorpus(dir, {
    files: [
      { name: "five.pdf", pages: Array.from({ length: 5 }, () => ({ widthPt: 612, heightPt: 792 })) },
      { name: "twelve.pdf", pages: Array.from({ length: 12 }, () => ({ widthPt: 595.28, heightPt: 841.89 })) },
    ],
  });
  broken = join(dir, "broken.pdf");
  await writeFile(broken, "%PDF-1.4\n%%EOF\n");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const file = (name: string) => corpus.files.find((f) => f.path.endsWith(`/${name}`))!.path;
const brokenKeys = Array.from({ length: BROKEN }, (_, i) => `broken/${i}.pdf`);

const running: { stop(): Promise<void> }[] = [];

// Before the fixture's teardown, which fails a test that leaves a worker polling.
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
});

/** A pool of one worker, so every failed open lands in the same mupdf; closed after the service stops. */
function onePool(): PdfPool {
  const pool = new PdfPool({ size: 1 });
  running.push({ stop: () => pool.close() });
  return pool;
}

describe("failed opens", () => {
  test("the orchestrator's worker is replaced after 32 failed opens, and classifying goes on right", async ({ stack, prisma }) => {
    const bucket = stack.stagingBucket;
    for (const key of brokenKeys) await putObject(stack.s3, bucket, key, broken);
    for (const name of ["five.pdf", "twelve.pdf"]) await putObject(stack.s3, bucket, `good/${name}`, file(name));
    const { batchId, documents } = await createDocuments(prisma, bucket, [...brokenKeys, "good/five.pdf", "good/twelve.pdf"]);
    const pool = onePool();
    const orchestrator = createOrchestrator({
      sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, waitTimeSeconds: TEST_WAIT_TIME_SECONDS, pool,
      logger: createLogger({ service: "chunking-orchestrator", level: "warn" }),
    });
    orchestrator.start();
    running.unshift({ stop: () => orchestrator.stop({ timeoutMs: 10_000 }) });
    const producer = new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.ingest.url, queue: "ingest" });
    const send = (keys: string[]) =>
      producer.send(documents.filter((d) => keys.includes(d.key)).map((d) => ({ version: 1 as const, batchId, documentId: d.id, bucket, key: d.key })));

    await send(brokenKeys);
    await waitFor("every broken document failed", async () =>
      (await prisma.document.count({ where: { batchId, key: { in: brokenKeys }, state: "failed" } })) === BROKEN,
    );
    expect(pool.recycled).toBeGreaterThanOrEqual(1);
    const failed = await prisma.document.findMany({ where: { batchId, key: { in: brokenKeys } }, select: { failureCode: true } });
    expect(new Set(failed.map((d) => d.failureCode))).toEqual(new Set(["corrupt"]));

    // The fresh worker classifies as the first one did.
    await send(["good/five.pdf", "good/twelve.pdf"]);
    const [small] = await receiveBodies(stack.sqs, stack.queueUrls.small.url, 1);
    const [large] = await receiveBodies(stack.sqs, stack.queueUrls.large.url, 1);
    expect(small).toMatchObject({ key: "good/five.pdf", firstPage: 1, lastPage: 5 });
    expect(large).toMatchObject({ key: "good/twelve.pdf", pageCount: 12 });
    expect(pool.size).toBe(1);
  });

  test("the splitter's worker is replaced after 32 failed opens, and splitting goes on right", async ({ stack, prisma }) => {
    const bucket = stack.stagingBucket;
    for (const key of brokenKeys) await putObject(stack.s3, bucket, key, broken);
    await putObject(stack.s3, bucket, "good/five.pdf", file("five.pdf"));
    const { batchId, documents } = await createDocuments(prisma, bucket, [...brokenKeys, "good/five.pdf"]);
    await prisma.document.updateMany({ where: { batchId }, data: { state: "classified", class: "small" } });
    const pool = onePool();
    const splitter = createSplitter({
      role: "small", sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, workBucket: stack.workBucket,
      waitTimeSeconds: TEST_WAIT_TIME_SECONDS, pool, logger: createLogger({ service: "splitter-small", level: "warn" }),
    });
    splitter.start();
    running.unshift({ stop: () => splitter.stop({ timeoutMs: 10_000 }) });
    const producer = new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.small.url, queue: "small" });
    const send = (keys: string[], lastPage: number) =>
      producer.send(
        documents
          .filter((d) => keys.includes(d.key))
          .map((d) => ({ version: 1 as const, batchId, documentId: d.id, bucket, key: d.key, firstPage: 1, lastPage })),
      );

    await send(brokenKeys, 3);
    await waitFor("every broken document failed", async () =>
      (await prisma.document.count({ where: { batchId, key: { in: brokenKeys }, state: "failed" } })) === BROKEN,
    );
    expect(pool.recycled).toBeGreaterThanOrEqual(1);
    const failed = await prisma.document.findMany({ where: { batchId, key: { in: brokenKeys } }, select: { failureCode: true } });
    expect(new Set(failed.map((d) => d.failureCode))).toEqual(new Set(["corrupt"]));

    // The fresh worker splits as the first one did: five single pages, in order.
    await send(["good/five.pdf"], 5);
    const pages = await receiveBodies<{ key: string; pageNumber: number }>(stack.sqs, stack.queueUrls.singlePage.url, 5);
    expect(pages.map((p) => p.pageNumber).sort()).toEqual([1, 2, 3, 4, 5]);
    const good = documents.find((d) => d.key === "good/five.pdf")!;
    const rows = await prisma.page.findMany({ where: { documentId: good.id }, select: { pageNumber: true } });
    expect(rows.map((r) => r.pageNumber).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(pool.size).toBe(1);
  });
});
