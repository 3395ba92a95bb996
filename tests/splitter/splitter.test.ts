import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectTaggingCommand, S3Client } from "@aws-sdk/client-s3";
import { generateCorpus, splitRange, type CorpusFile } from "@docpipe/pdf";
import { chunkKey, deadLetterAttributes, INTERMEDIATE_TAG, pageKey, type SinglePageMessage, type SmallDocMessage } from "@docpipe/queue";
import { afterAll, beforeAll, onTestFinished } from "vitest";
import { describe, expect, test } from "../fixtures/index.js";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { createDocuments, putObject, receiveBodies, receiveMessages } from "../orchestrator/support.js";
import { corpusPages, largeProducer, original, readPdf, smallProducer, splitters, stage } from "./support.js";

let dir: string;
/** 745 pages of three sizes; every page prints "Page N", so a page's origin can be read back. */
let big: CorpusFile;
/** 25 pages, for the chain through both roles. */
let medium: CorpusFile;
let fivePages: CorpusFile;
let corruptPath: string;
const startSplitter = splitters();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-splitter-test-"));
  const corpus = await generateCorpus(join(dir, "corpus"), {
    files: [
      { name: "big.pdf", pages: corpusPages(745) },
      { name: "medium.pdf", pages: corpusPages(25) },
      { name: "five.pdf", pages: corpusPages(5) },
    ],
  });
  [big, medium, fivePages] = corpus.files as [CorpusFile, CorpusFile, CorpusFile];
  corruptPath = corpus.invalid!.corrupt;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("splitter, large role", () => {
  test("splits a 745-page document into 75 chunks of original page ranges, one row and one message each", async ({ stack, prisma }) => {
    const doc = await stage(stack, prisma, "in/big.pdf", big.path, "large");
    await largeProducer(stack).send([{ version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: doc.bucket, key: doc.key, size: doc.size }]);
    startSplitter(stack, prisma, "large");

    const messages = await receiveBodies<SmallDocMessage>(stack.sqs, stack.queueUrls.small.url, 75, 120_000);
    const expected = Array.from({ length: 75 }, (_, i) => ({ first: i * 10 + 1, last: Math.min(745, i * 10 + 10) }));
    expect(expected.at(-1)).toEqual({ first: 741, last: 745 });
    messages.sort((a, b) => a.firstPage - b.firstPage);
    expect(messages).toEqual(
      expected.map((r) => ({
        version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: stack.workBucket,
        key: chunkKey(doc, r.first, r.last), firstPage: r.first, lastPage: r.last,
      })),
    );
    const chunks = await prisma.chunk.findMany({ where: { documentId: doc.documentId }, orderBy: { firstPage: "asc" } });
    expect(chunks.map((c) => ({ first: c.firstPage, last: c.lastPage, key: c.key }))).toEqual(
      expected.map((r) => ({ ...r, key: chunkKey(doc, r.first, r.last) })),
    );
    // Each chunk holds exactly its pages of the original, in order.
    expect(await readPdf(stack, dir, chunkKey(doc, 731, 740))).toEqual(Array.from({ length: 10 }, (_, i) => original(big, 731 + i)));
    expect(await readPdf(stack, dir, chunkKey(doc, 741, 745))).toEqual(Array.from({ length: 5 }, (_, i) => original(big, 741 + i)));
    // Tagged as an intermediate, so the bucket's lifecycle rule expires it.
    const tagging = await stack.s3.send(new GetObjectTaggingCommand({ Bucket: stack.workBucket, Key: chunkKey(doc, 741, 745) }));
    expect(tagging.TagSet).toEqual([{ Key: INTERMEDIATE_TAG, Value: "chunk" }]);

    await waitFor("split-large to succeed", async () =>
      (await prisma.auditEvent.count({ where: { stage: "split-large", outcome: "succeeded" } })) === 1 ? true : undefined);
    const d = await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } });
    // The orchestrator never opened it (over the size limit): the splitter records the count.
    expect([d.state, d.pageCount]).toEqual(["splitting", 745]);
  });

  test("keeps its message while a split outlasts the visibility timeout", async ({ stack, prisma }) => {
    const doc = await stage(stack, prisma, "in/big.pdf", big.path, "large");
    await largeProducer(stack).send([{ version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: doc.bucket, key: doc.key, size: doc.size }]);
    // 249 three-page chunks take several 2-second visibility windows; a free second slot would
    // take the message again the moment it reappeared.
    // Each chunk upload is held 100 ms (four go at once), so the split outlasts two windows on any machine, however fast.
    const s3 = new S3Client({ region: stack.region, endpoint: stack.s3Endpoint, forcePathStyle: true, credentials: stack.credentials });
    s3.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === "PutObjectCommand") await new Promise((r) => setTimeout(r, 100));
        return next(args);
      },
      { step: "initialize", name: "slowUploads" },
    );
    onTestFinished(() => s3.destroy());
    startSplitter(stack, prisma, "large", { s3, chunkPages: 3, visibilityTimeoutSeconds: 2, heartbeatSeconds: 1, concurrency: 2 });

    const messages = await receiveBodies<SmallDocMessage>(stack.sqs, stack.queueUrls.small.url, 249, 120_000);
    const done = await waitFor("split-large to succeed", async () =>
      (await prisma.auditEvent.findFirst({ where: { stage: "split-large", outcome: "succeeded" } })) ?? undefined);
    expect(done.durationMs).toBeGreaterThan(4_000);
    const trail = await prisma.auditEvent.findMany({ where: { stage: "split-large" }, orderBy: { id: "asc" } });
    expect(trail.map((e) => [e.outcome, e.attempt])).toEqual([["started", 1], ["succeeded", 1]]);
    expect(new Set(messages.map((m) => m.firstPage)).size).toBe(249);
    expect(await queueDepth(stack.sqs, stack.queueUrls.small.url)).toBe(0);
  });

  test("fails a document over MAX_PAGES as too_many_pages and dead-letters it at once", async ({ stack, prisma }) => {
    const doc = await stage(stack, prisma, "in/big.pdf", big.path, "large");
    // Counted by the orchestrator and never uploaded: refused without a download (else source_missing).
    const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, ["in/absent.pdf"]);
    const counted = { batchId, documentId: documents[0]!.id };
    await largeProducer(stack).send([
      { version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: doc.bucket, key: doc.key, size: doc.size },
      { version: 1, ...counted, bucket: stack.stagingBucket, key: "in/absent.pdf", size: 1, pageCount: 900 },
    ]);
    startSplitter(stack, prisma, "large", { maxPages: 500 });
    const dead = await receiveMessages(stack.sqs, stack.queueUrls.large.dlqUrl, 2);
    expect(dead.map((m) => m.MessageAttributes?.[deadLetterAttributes.errorCode]?.StringValue)).toEqual(["too_many_pages", "too_many_pages"]);
    expect(dead.map((m) => m.MessageAttributes?.[deadLetterAttributes.attempt]?.StringValue)).toEqual(["1", "1"]);
    for (const id of [doc.documentId, counted.documentId]) {
      const d = await prisma.document.findUniqueOrThrow({ where: { id } });
      expect([d.state, d.failureCode]).toEqual(["failed", "too_many_pages"]);
      expect(d.failureReason).toMatch(/MAX_PAGES/);
    }
    expect(await prisma.chunk.count()).toBe(0);
    expect(await queueDepth(stack.sqs, stack.queueUrls.small.url)).toBe(0);
  });
});

describe("splitter, small role", () => {
  test("splits chunk 731-740 of a bigger document into pages 731..740", async ({ stack, prisma }) => {
    const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, ["in/big.pdf"]);
    const ref = { batchId, documentId: documents[0]!.id };
    await prisma.document.update({ where: { id: ref.documentId }, data: { state: "splitting", class: "large", pageCount: 745 } });
    // The chunk exactly as the large role would have left it.
    const chunkPath = join(dir, "731-740.pdf");
    await splitRange(big.path, 731, 740, chunkPath);
    const key = chunkKey(ref, 731, 740);
    await putObject(stack.s3, stack.workBucket, key, chunkPath);
    await smallProducer(stack).send([{ version: 1, ...ref, bucket: stack.workBucket, key, firstPage: 731, lastPage: 740 }]);
    startSplitter(stack, prisma, "small");

    const messages = await receiveBodies<SinglePageMessage>(stack.sqs, stack.queueUrls.singlePage.url, 10);
    const numbers = Array.from({ length: 10 }, (_, i) => 731 + i);
    expect(messages.sort((a, b) => a.pageNumber - b.pageNumber)).toEqual(
      numbers.map((n) => ({ version: 1, ...ref, bucket: stack.workBucket, key: pageKey(ref, n), pageNumber: n })),
    );
    const pages = await prisma.page.findMany({ where: { documentId: ref.documentId }, orderBy: { pageNumber: "asc" } });
    expect(pages.map((p) => [p.pageNumber, p.pdfKey, p.state])).toEqual(numbers.map((n) => [n, pageKey(ref, n), "pending"]));
    for (const n of [731, 735, 740]) expect(await readPdf(stack, dir, pageKey(ref, n))).toEqual([original(big, n)]);
    const tagging = await stack.s3.send(new GetObjectTaggingCommand({ Bucket: stack.workBucket, Key: pageKey(ref, 735) }));
    expect(tagging.TagSet).toEqual([{ Key: INTERMEDIATE_TAG, Value: "page" }]);
    await waitFor("converting state", async () => {
      const d = await prisma.document.findUniqueOrThrow({ where: { id: ref.documentId } });
      return d.state === "converting" ? d : undefined;
    });
  });

  test("fails a corrupt chunk and a chunk that does not hold the pages it names, dead-lettered at once", async ({ stack, prisma }) => {
    const corrupt = await stage(stack, prisma, "in/corrupt.pdf", corruptPath, "small");
    const short = await stage(stack, prisma, "in/five.pdf", fivePages.path, "small", 10);
    await smallProducer(stack).send([
      { version: 1, batchId: corrupt.batchId, documentId: corrupt.documentId, bucket: corrupt.bucket, key: corrupt.key, firstPage: 1, lastPage: 3 },
      { version: 1, batchId: short.batchId, documentId: short.documentId, bucket: short.bucket, key: short.key, firstPage: 1, lastPage: 10 },
    ]);
    const tmpDir = await mkdtemp(join(dir, "tmp-"));
    startSplitter(stack, prisma, "small", { tmpDir });
    const dead = await receiveMessages(stack.sqs, stack.queueUrls.small.dlqUrl, 2);
    expect(dead.map((m) => m.MessageAttributes?.[deadLetterAttributes.attempt]?.StringValue)).toEqual(["1", "1"]);
    const docs = await prisma.document.findMany({ orderBy: { key: "asc" } });
    expect(docs.map((d) => [d.key, d.state, d.failureCode])).toEqual([
      ["in/corrupt.pdf", "failed", "corrupt"],
      ["in/five.pdf", "failed", "page_count_mismatch"],
    ]);
    expect(await prisma.page.count()).toBe(0);
    expect(await queueDepth(stack.sqs, stack.queueUrls.singlePage.url)).toBe(0);
    expect(await readdir(tmpDir)).toEqual([]);
  });
});

describe("splitter, both roles", () => {
  test("turns a 25-page document into 25 pages, and a redelivery finds the split's completion record and splits nothing again", async ({ stack, prisma }) => {
    const doc = await stage(stack, prisma, "in/medium.pdf", medium.path, "large", 25);
    const largeMessage = { version: 1 as const, batchId: doc.batchId, documentId: doc.documentId, bucket: doc.bucket, key: doc.key, size: doc.size, pageCount: 25 };
    await largeProducer(stack).send([largeMessage]);
    const tmpDir = await mkdtemp(join(dir, "tmp-"));
    startSplitter(stack, prisma, "large", { tmpDir });
    startSplitter(stack, prisma, "small", { tmpDir });

    const first = await receiveBodies<SinglePageMessage>(stack.sqs, stack.queueUrls.singlePage.url, 25, 120_000);
    expect(first.map((m) => m.pageNumber).sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    await waitFor("three chunks split into pages", async () =>
      (await prisma.auditEvent.count({ where: { stage: "split-small", outcome: "succeeded" } })) === 3 ? true : undefined);
    for (const n of [1, 10, 11, 25]) expect(await readPdf(stack, dir, pageKey(doc, n))).toEqual([original(medium, n)]);
    expect((await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } })).state).toBe("converting");

    expect((await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } })).splitAt).not.toBeNull();
    expect((await prisma.chunk.findMany({ where: { documentId: doc.documentId } })).every((c) => c.splitAt !== null)).toBe(true);

    // Pages move on downstream; then the large message, and a chunk's, are delivered again.
    await prisma.document.update({ where: { id: doc.documentId }, data: { state: "inferring" } });
    await prisma.page.updateMany({ where: { documentId: doc.documentId }, data: { state: "rendered", imageKey: "x" } });
    await largeProducer(stack).send([largeMessage]);
    await smallProducer(stack).send([
      { version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: stack.workBucket, key: chunkKey(doc, 11, 20), firstPage: 11, lastPage: 20 },
    ]);
    await waitFor("both redeliveries skipped", async () =>
      (await prisma.auditEvent.count({ where: { documentId: doc.documentId, stage: { in: ["split-large", "split-small"] }, outcome: "skipped" } })) === 2
        ? true
        : undefined);
    expect(await receiveBodies<SinglePageMessage>(stack.sqs, stack.queueUrls.singlePage.url, 1, 2_000)).toEqual([]);
    expect(await prisma.auditEvent.count({ where: { stage: "split-small", outcome: "succeeded" } })).toBe(3);

    expect(await prisma.chunk.count({ where: { documentId: doc.documentId } })).toBe(3);
    const pages = await prisma.page.findMany({ where: { documentId: doc.documentId }, orderBy: { pageNumber: "asc" } });
    expect(pages.map((p) => p.pageNumber)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    // Rewriting a page's PDF leaves what later stages recorded alone.
    expect(new Set(pages.map((p) => p.state))).toEqual(new Set(["rendered"]));
    expect((await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } })).state).toBe("inferring");
    const audit = await prisma.auditEvent.findMany({ where: { documentId: doc.documentId, stage: "split-large" } });
    expect(audit.map((e) => e.outcome).sort()).toEqual(["skipped", "started", "succeeded"]);
    // Sources, chunks and pages were all removed once uploaded.
    expect(await readdir(tmpDir)).toEqual([]);
  });
});
