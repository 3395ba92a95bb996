import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PrismaClient } from "@docpipe/db";
import type { LocalStack } from "@docpipe/local-stack";
import { generateCorpus, type Corpus } from "@docpipe/pdf";
import { createLogger, deadLetterAttributes, QueueProducer } from "@docpipe/queue";
import { afterAll, afterEach, beforeAll } from "vitest";
import { createOrchestrator, type Orchestrator, type OrchestratorOptions } from "@docpipe/chunking-orchestrator";
import { describe, expect, test } from "../fixtures/index.js";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { createDocuments, TEST_WAIT_TIME_SECONDS, putObject, receiveBodies, receiveMessages } from "./support.js";

let corpus: Corpus;
let corpusDir: string;
const running: Orchestrator[] = [];

beforeAll(async () => {
  corpusDir = await mkdtemp(join(tmpdir(), "docpipe-orch-corpus-"));
  corpus = await generateCorpus(corpusDir, {
    files: [
      { name: "one.pdf", pages: [{ widthPt: 612, heightPt: 792 }] },
      { name: "five.pdf", pages: Array.from({ length: 5 }, () => ({ widthPt: 595.28, heightPt: 841.89 })) },
      { name: "twelve.pdf", pages: Array.from({ length: 12 }, () => ({ widthPt: 612, heightPt: 792, content: "mixed" as const })) },
    ],
  });
});

afterAll(async () => {
  await rm(corpusDir, { recursive: true, force: true });
});

// Before the fixture's teardown, which fails a test that leaves a worker polling.
afterEach(async () => {
  await Promise.all(running.splice(0).map((o) => o.stop({ timeoutMs: 10_000 })));
});

/** Starts an orchestrator on this test's database; afterEach stops it. */
function startOrchestrator(stack: LocalStack, prisma: PrismaClient, extra: Partial<OrchestratorOptions> = {}): Orchestrator {
  const o = createOrchestrator({
    sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, waitTimeSeconds: TEST_WAIT_TIME_SECONDS,
    logger: createLogger({ service: "chunking-orchestrator", level: "warn" }), ...extra,
  });
  running.push(o);
  o.start();
  return o;
}

const file = (name: string) => {
  const f = corpus.files.find((x) => x.path.endsWith(`/${name}`));
  if (!f) throw new Error(`corpus has no ${name}`);
  return f;
};

/** Uploads files to the staging bucket, creates their documents and sends one ingest message each. */
async function ingest(stack: LocalStack, prisma: PrismaClient, uploads: { key: string; body: string | Uint8Array }[]) {
  const bucket = stack.stagingBucket;
  const sizes = new Map<string, number>();
  for (const u of uploads) sizes.set(u.key, await putObject(stack.s3, bucket, u.key, u.body));
  const { batchId, documents } = await createDocuments(prisma, bucket, uploads.map((u) => u.key));
  const producer = new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.ingest.url, queue: "ingest" });
  await producer.send(documents.map((d) => ({ version: 1, batchId, documentId: d.id, bucket, key: d.key })));
  const byKey = new Map(documents.map((d) => [d.key, { ...d, size: sizes.get(d.key)! }]));
  return { batchId, bucket, doc: (key: string) => byKey.get(key)!, producer };
}

describe("chunking orchestrator", () => {
  test("routes single, small and large documents to their queues and records class, size and page count", async ({ stack, prisma }) => {
    const { batchId, bucket, doc } = await ingest(stack, prisma, [
      { key: "in/one.pdf", body: file("one.pdf").path },
      { key: "in/five.pdf", body: file("five.pdf").path },
      { key: "in/twelve.pdf", body: file("twelve.pdf").path },
    ]);
    startOrchestrator(stack, prisma);

    const [single] = await receiveBodies(stack.sqs, stack.queueUrls.singlePage.url, 1);
    const [small] = await receiveBodies(stack.sqs, stack.queueUrls.small.url, 1);
    const [large] = await receiveBodies(stack.sqs, stack.queueUrls.large.url, 1);
    const one = doc("in/one.pdf"), five = doc("in/five.pdf"), twelve = doc("in/twelve.pdf");
    expect(single).toEqual({ version: 1, batchId, documentId: one.id, bucket, key: one.key, pageNumber: 1 });
    expect(small).toEqual({ version: 1, batchId, documentId: five.id, bucket, key: five.key, firstPage: 1, lastPage: 5 });
    expect(large).toEqual({ version: 1, batchId, documentId: twelve.id, bucket, key: twelve.key, size: twelve.size, pageCount: 12 });

    await waitFor("three classified documents", async () => {
      const n = await prisma.auditEvent.count({ where: { stage: "classify", outcome: "succeeded" } });
      return n === 3 ? n : undefined;
    });
    const docs = await prisma.document.findMany({ orderBy: { key: "asc" } });
    expect(docs.map((d) => [d.key, d.class, Number(d.size), d.pageCount, d.state])).toEqual([
      ["in/five.pdf", "small", five.size, 5, "classified"],
      ["in/one.pdf", "single", one.size, 1, "converting"],
      ["in/twelve.pdf", "large", twelve.size, 12, "classified"],
    ]);
    // The single page's row exists before the converter sees its message, pointing at the original.
    const pages = await prisma.page.findMany();
    expect(pages.map((p) => [p.documentId, p.pageNumber, p.pdfKey, p.state])).toEqual([[one.id, 1, one.key, "pending"]]);
    const trail = await prisma.auditEvent.findMany({ where: { documentId: five.id }, orderBy: { id: "asc" } });
    expect(trail.map((e) => [e.stage, e.outcome, e.attempt])).toEqual([["classify", "started", 1], ["classify", "succeeded", 1]]);
  });

  test("sends a file over the size limit to the large queue without opening it", async ({ stack, prisma }) => {
    // Not a PDF at all: had it been opened, it would have failed as not_pdf.
    const { doc } = await ingest(stack, prisma, [{ key: "in/huge.pdf", body: new Uint8Array(8192).fill(0x41) }]);
    startOrchestrator(stack, prisma, { largeSizeBytes: 4096 });
    const [large] = await receiveBodies(stack.sqs, stack.queueUrls.large.url, 1);
    const huge = doc("in/huge.pdf");
    expect(large).toMatchObject({ documentId: huge.id, size: 8192 });
    expect(large).not.toHaveProperty("pageCount");
    const d = await waitFor("classified state", async () => {
      const row = await prisma.document.findUniqueOrThrow({ where: { id: huge.id } });
      return row.state === "classified" ? row : undefined;
    });
    expect([d.class, Number(d.size), d.pageCount]).toEqual(["large", 8192, null]);
  });

  test("classifies by the size the listing put in the message, and by the downloaded size once it has the file", async ({ stack, prisma }) => {
    const bucket = stack.stagingBucket;
    await putObject(stack.s3, bucket, "ls/listed-large.pdf", file("one.pdf").path);
    await putObject(stack.s3, bucket, "ls/grown.pdf", new Uint8Array(8192).fill(0x41));
    const { batchId, documents } = await createDocuments(prisma, bucket, ["ls/listed-large.pdf", "ls/grown.pdf"]);
    const [listedLarge, grown] = documents as [{ id: string; key: string }, { id: string; key: string }];
    const producer = new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.ingest.url, queue: "ingest" });
    await producer.send([
      // Listed over the limit: routed large on the listing's word, never fetched (a HeadObject would say 1 page's bytes).
      { version: 1, batchId, documentId: listedLarge.id, bucket, key: listedLarge.key, size: 1_000_000 },
      // Listed small, but replaced by a bigger file since: its download shows it, and it goes large unopened.
      { version: 1, batchId, documentId: grown.id, bucket, key: grown.key, size: 100 },
    ]);
    startOrchestrator(stack, prisma, { largeSizeBytes: 4096 });
    const large = (await receiveBodies(stack.sqs, stack.queueUrls.large.url, 2)) as { key: string }[];
    expect(new Map(large.map((m) => [m.key, m]))).toEqual(
      new Map([
        [listedLarge.key, { version: 1, batchId, documentId: listedLarge.id, bucket, key: listedLarge.key, size: 1_000_000 }],
        [grown.key, { version: 1, batchId, documentId: grown.id, bucket, key: grown.key, size: 8192 }],
      ]),
    );
  });

  test("fails what is not a usable PDF with a reason and dead-letters it at once", async ({ stack, prisma }) => {
    const invalid = corpus.invalid!;
    const { batchId, bucket, doc, producer } = await ingest(stack, prisma, [
      { key: "bad/not-a-pdf.pdf", body: invalid.notPdf },
      { key: "bad/empty.pdf", body: invalid.empty },
      { key: "bad/encrypted.pdf", body: invalid.encrypted },
      { key: "bad/corrupt.pdf", body: invalid.corrupt },
    ]);
    // A document whose source vanished between listing and classification.
    const [gone] = (await createDocuments(prisma, bucket, ["bad/gone.pdf"])).documents;
    await producer.send([{ version: 1, batchId, documentId: gone!.id, bucket, key: gone!.key }]);
    const tmpDir = await mkdtemp(join(corpusDir, "tmp-"));
    startOrchestrator(stack, prisma, { tmpDir });

    const dead = await receiveMessages(stack.sqs, stack.queueUrls.ingest.dlqUrl, 5);
    expect(dead).toHaveLength(5);
    for (const m of dead) {
      // Moved by the worker on the first receive, not by SQS after the redrive count ran out.
      expect(m.MessageAttributes?.[deadLetterAttributes.reason]?.StringValue).toBe("permanent");
      expect(m.MessageAttributes?.[deadLetterAttributes.attempt]?.StringValue).toBe("1");
    }
    expect(await queueDepth(stack.sqs, stack.queueUrls.ingest.url)).toBe(0);

    const expected: [string, string][] = [
      ["bad/not-a-pdf.pdf", "not_pdf"],
      ["bad/empty.pdf", "not_pdf"],
      ["bad/encrypted.pdf", "encrypted"],
      ["bad/corrupt.pdf", "corrupt"],
      ["bad/gone.pdf", "source_missing"],
    ];
    // What a person reads: it must say what is wrong, not just a code.
    const reasons: Record<string, RegExp> = {
      not_pdf: /not a PDF/,
      encrypted: /encrypted/,
      corrupt: /damaged/,
      source_missing: /no longer exists/,
    };
    for (const [key, code] of expected) {
      const id = key === "bad/gone.pdf" ? gone!.id : doc(key).id;
      const d = await prisma.document.findUniqueOrThrow({ where: { id } });
      expect({ key, state: d.state, code: d.failureCode }).toEqual({ key, state: "failed", code });
      expect(d.failureReason).toMatch(reasons[code]!);
      const trail = await prisma.auditEvent.findMany({ where: { documentId: id }, orderBy: { id: "asc" } });
      expect(trail.map((e) => [e.outcome, e.attempt, e.errorCode])).toEqual([
        ["started", 1, null],
        ["failed", 1, code],
        ["dead_lettered", 1, code],
      ]);
    }
    // Every document of the batch failed: the last one to fail completed the batch.
    expect(await prisma.batch.findUniqueOrThrow({ where: { id: batchId } })).toMatchObject({ state: "completed" });
    // Nothing was routed anywhere, and no download was left behind.
    for (const q of ["large", "small", "singlePage"] as const) expect(await queueDepth(stack.sqs, stack.queueUrls[q].url)).toBe(0);
    expect(await readdir(tmpDir)).toEqual([]);
  });

  test("handles a redelivered message without a second page row or a regressed document", async ({ stack, prisma }) => {
    const { batchId, bucket, doc, producer } = await ingest(stack, prisma, [
      { key: "re/one.pdf", body: file("one.pdf").path },
      { key: "re/five.pdf", body: file("five.pdf").path },
    ]);
    const one = doc("re/one.pdf"), five = doc("re/five.pdf");
    // As if an earlier attempt created the page row and died before updating the document.
    await prisma.page.create({ data: { documentId: one.id, pageNumber: 1, pdfKey: one.key } });
    startOrchestrator(stack, prisma);
    await receiveBodies(stack.sqs, stack.queueUrls.singlePage.url, 1);
    await receiveBodies(stack.sqs, stack.queueUrls.small.url, 1);
    await waitFor("both classified", async () =>
      (await prisma.auditEvent.count({ where: { outcome: "succeeded" } })) === 2 ? true : undefined);

    // The small document moves on downstream, then both messages arrive again.
    await prisma.document.update({ where: { id: five.id }, data: { state: "inferring" } });
    await producer.send([
      { version: 1, batchId, documentId: one.id, bucket, key: one.key },
      { version: 1, batchId, documentId: five.id, bucket, key: five.key },
    ]);
    await waitFor("both redeliveries skipped", async () =>
      (await prisma.auditEvent.count({ where: { outcome: "skipped" } })) === 2 ? true : undefined);

    expect(await prisma.page.count({ where: { documentId: one.id } })).toBe(1);
    const states = await prisma.document.findMany({ select: { id: true, state: true } });
    expect(new Map(states.map((s) => [s.id, s.state]))).toEqual(new Map([[one.id, "converting"], [five.id, "inferring"]]));
    expect(await queueDepth(stack.sqs, stack.queueUrls.singlePage.url)).toBe(0);
    expect(await queueDepth(stack.sqs, stack.queueUrls.small.url)).toBe(0);
  });
});
