import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { SendMessageCommand, type Message } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { createApiKey, quotaStatus, upsertPlan } from "@docpipe/api-keys";
import { createInferenceClient } from "@docpipe/inference-client";
import type { LocalStack } from "@docpipe/local-stack";
import { createPageConverter } from "@docpipe/page-converter";
import { generatePdf, RenderPool, type CorpusFile } from "@docpipe/pdf";
import {
  createLogger,
  imageKey,
  pageKey,
  QueueProducer,
  sendToDeadLetterQueue,
  type DeadLetterInfo,
  type DocumentRef,
  type SmallDocMessage,
} from "@docpipe/queue";
import { startReferenceModel } from "@docpipe/reference-model";
import { afterAll, beforeAll } from "vitest";
import { redriveCommand } from "@docpipe/cli";
import { createFailsafe, redrive, REPLAYS_ATTRIBUTE, type Failsafe, type FailsafeOptions } from "@docpipe/failsafe";
import { createSplitter } from "@docpipe/splitter";
import { describe, expect, test } from "../fixtures/index.js";
import { s3Event, uploadPageImage, pagePngs } from "../inference/helpers.js";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { createDocuments, putObject, receiveMessages } from "../orchestrator/support.js";

const DPI = 72;
const logger = (service: string) => createLogger({ service, level: process.env.TEST_LOG ?? "warn" });

let dir: string;
let three: CorpusFile;
let pool: RenderPool;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-failsafe-test-"));
  three = await generatePdf(join(dir, "three.pdf"), [
    { widthPt: 612, heightPt: 792 },
    { widthPt: 288, heightPt: 432, content: "mixed" },
    { widthPt: 595.28, heightPt: 841.89, rotate: 90 },
  ]);
  pool = new RenderPool({ size: 2, timeoutMs: 20_000 });
});

afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

interface Stoppable {
  start(): void;
  stop(): Promise<void>;
}

/** Starts services, runs `fn`, and stops them whatever happens. */
async function running<T>(services: Stoppable[], fn: () => Promise<T>): Promise<T> {
  for (const s of services) s.start();
  try {
    return await fn();
  } finally {
    await Promise.all(services.map((s) => s.stop()));
  }
}

function failsafe(stack: LocalStack, prisma: PrismaClient, extra: Partial<FailsafeOptions> = {}): Failsafe {
  return createFailsafe({
    sqs: stack.sqs,
    s3: stack.s3,
    prisma,
    queueUrls: stack.queueUrls,
    workBucket: stack.workBucket,
    pool,
    dpi: DPI,
    waitTimeSeconds: 1,
    stopTimeoutSeconds: 5,
    logger: logger("failsafe"),
    ...extra,
  });
}

/** Puts `body` on a DLQ the way a worker dead-letters a message. */
async function deadLetter(stack: LocalStack, dlqUrl: string, body: string, info: Partial<DeadLetterInfo> & { attributes?: Message["MessageAttributes"] }) {
  const { attributes, ...rest } = info;
  await sendToDeadLetterQueue(stack.sqs, dlqUrl, { Body: body, ...(attributes && { MessageAttributes: attributes }) }, {
    reason: "retries_exhausted",
    errorCode: "retries_exhausted",
    errorMessage: "gave up after 5 attempts: S3 GetObject timed out",
    workerId: "test",
    attempt: 5,
    ...rest,
  });
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
async function objectHash(stack: LocalStack, key: string): Promise<string> {
  const res = await stack.s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: key }));
  return sha(await res.Body!.transformToByteArray());
}

async function classifiedSmall(stack: LocalStack, prisma: PrismaClient, keys: string[]): Promise<(DocumentRef & { key: string })[]> {
  for (const key of keys) await putObject(stack.s3, stack.stagingBucket, key, three.path);
  const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, keys);
  await prisma.document.updateMany({ where: { batchId }, data: { state: "classified", class: "small", pageCount: 3 } });
  return documents.map((d) => ({ batchId, documentId: d.id, key: d.key }));
}

describe("failsafe: break-down of splitter and converter dead letters", () => {
  test("a small document dead-lettered after its retries gets the normal path's pages, PNGs and rows, and completes through inference", async ({ stack, prisma }) => {
    const [normal, rescued] = (await classifiedSmall(stack, prisma, ["in/normal.pdf", "in/rescued.pdf"])) as [DocumentRef & { key: string }, DocumentRef & { key: string }];
    const small = (d: DocumentRef & { key: string }): SmallDocMessage => ({ version: 1, ...d, bucket: stack.stagingBucket, firstPage: 1, lastPage: 3 });
    // The same file takes the normal path (small splitter, converter) and the failsafe path.
    await new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.small.url, queue: "small" }).send([small(normal)]);
    await deadLetter(stack, stack.queueUrls.small.dlqUrl, JSON.stringify(small(rescued)), { sourceQueueUrl: stack.queueUrls.small.url });

    const model = await startReferenceModel({ s3: stack.s3 });
    try {
      const common = { sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, workBucket: stack.workBucket, waitTimeSeconds: 1 };
      await running(
        [
          createSplitter({ ...common, role: "small", logger: logger("splitter-small") }),
          createPageConverter({ ...common, pool, dpi: DPI, stopTimeoutSeconds: 5, logger: logger("page-converter") }),
          createInferenceClient({ ...common, model: { url: `${model.url}/invocations` }, ratePerSecond: 0, stopTimeoutSeconds: 5, logger: logger("inference") }),
          failsafe(stack, prisma),
        ],
        () =>
          waitFor("both documents to be done", async () =>
            (await prisma.document.count({ where: { state: "done" } })) === 2 ? true : undefined, 90_000),
      );
    } finally {
      await model.stop();
    }

    const pagesOf = (d: DocumentRef) => prisma.page.findMany({ where: { documentId: d.documentId }, orderBy: { pageNumber: "asc" } });
    const [a, b] = [await pagesOf(normal), await pagesOf(rescued)];
    expect(b.map((p) => [p.pageNumber, p.pdfKey, p.imageKey, p.state])).toEqual(
      [1, 2, 3].map((n) => [n, pageKey(rescued, n), imageKey(rescued, n), "done"]),
    );
    // Same dimensions, DPI and pixels as the normal path's pages of the same file.
    const facts = (p: (typeof a)[number]) => [p.pageNumber, p.width, p.height, p.dpi, p.state];
    expect(b.map(facts)).toEqual(a.map(facts));
    expect(a.map((p) => [p.width, p.height])).toEqual([[612, 792], [288, 432], [842, 595]]);
    for (const n of [1, 2, 3]) expect(await objectHash(stack, imageKey(rescued, n))).toBe(await objectHash(stack, imageKey(normal, n)));
    expect(b.every((p) => p.renderMs !== null && p.renderMs >= 0)).toBe(true);
    expect(await prisma.inferenceResult.count({ where: { documentId: rescued.documentId } })).toBe(3);
    expect((await prisma.batch.findUniqueOrThrow({ where: { id: rescued.batchId } })).state).toBe("completed");

    // The trail says the failsafe handled it, and why it had failed.
    const trail = await prisma.auditEvent.findMany({ where: { documentId: rescued.documentId, stage: "failsafe" }, orderBy: { id: "asc" } });
    const whole = trail.filter((e) => e.pageNumber === null);
    expect(whole.map((e) => e.outcome)).toEqual(["started", "succeeded"]);
    expect([whole[0]!.errorCode, whole[0]!.errorMessage]).toEqual(["retries_exhausted", "gave up after 5 attempts: S3 GetObject timed out"]);
    expect(whole[1]!.details).toMatchObject({ queue: "small", dlReason: "retries_exhausted", pages: 3, rendered: 3, skipped: 0 });
    expect(trail.filter((e) => e.pageNumber !== null).map((e) => [e.pageNumber, e.outcome])).toEqual([[1, "succeeded"], [2, "succeeded"], [3, "succeeded"]]);
    expect(await queueDepth(stack.sqs, stack.queueUrls.small.dlqUrl)).toBe(0);
    expect(await queueDepth(stack.sqs, stack.queueUrls.parked.url)).toBe(0);
  });

  test("a message dead-lettered for a permanent reason is recorded, not reprocessed", async ({ stack, prisma }) => {
    const [doc] = (await classifiedSmall(stack, prisma, ["in/not-a-pdf.pdf"])) as [DocumentRef & { key: string }];
    await prisma.document.update({
      where: { id: doc.documentId },
      data: { state: "failed", class: "large", failureCode: "not_pdf", failureReason: "The file is not a PDF" },
    });
    const body = JSON.stringify({ version: 1, ...doc, bucket: stack.stagingBucket, size: 100 });
    await deadLetter(stack, stack.queueUrls.large.dlqUrl, body, { reason: "permanent", errorCode: "not_pdf", errorMessage: "no %PDF- header", attempt: 1 });

    await running([failsafe(stack, prisma)], () =>
      waitFor("the failsafe to see the dead letter", async () =>
        (await prisma.auditEvent.findFirst({ where: { stage: "failsafe", documentId: doc.documentId } })) ?? undefined),
    );
    const trail = await prisma.auditEvent.findMany({ where: { stage: "failsafe" } });
    expect(trail.map((e) => [e.outcome, e.errorCode, e.errorMessage])).toEqual([["skipped", "not_pdf", "no %PDF- header"]]);
    expect(trail[0]!.details).toMatchObject({ queue: "large", dlReason: "permanent" });
    expect(await prisma.page.count()).toBe(0);
    const d = await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } });
    expect([d.state, d.failureCode]).toEqual(["failed", "not_pdf"]);
    expect(await queueDepth(stack.sqs, stack.queueUrls.large.dlqUrl)).toBe(0);
    expect(await queueDepth(stack.sqs, stack.queueUrls.parked.url)).toBe(0);
  });
});

describe("failsafe: ingest and single-page dead letters", () => {
  test("an ingest message that ran out of retries is classified and broken down as the orchestrator would have; a non-PDF fails with the reason", async ({ stack, prisma }) => {
    const one = await generatePdf(join(dir, "one.pdf"), [{ widthPt: 300, heightPt: 400 }]);
    await putObject(stack.s3, stack.stagingBucket, "in/one.pdf", one.path);
    await putObject(stack.s3, stack.stagingBucket, "in/three.pdf", three.path);
    await putObject(stack.s3, stack.stagingBucket, "in/fake.pdf", new TextEncoder().encode("hello, not a pdf"));
    const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, ["in/one.pdf", "in/three.pdf", "in/fake.pdf"]);
    const [single, small, fake] = documents.map((d) => ({ batchId, documentId: d.id, key: d.key })) as [DocumentRef & { key: string }, DocumentRef & { key: string }, DocumentRef & { key: string }];
    for (const d of [single, small, fake]) {
      await deadLetter(stack, stack.queueUrls.ingest.dlqUrl, JSON.stringify({ version: 1, ...d, bucket: stack.stagingBucket }), {
        errorMessage: "gave up after 5 attempts: HeadObject timed out",
      });
    }

    await running([failsafe(stack, prisma)], () =>
      waitFor("three failsafe outcomes", async () =>
        (await prisma.auditEvent.count({ where: { stage: "failsafe", pageNumber: null, outcome: { in: ["succeeded", "failed"] } } })) === 3 ? true : undefined, 30_000),
    );
    const docs = new Map((await prisma.document.findMany()).map((d) => [d.id, d]));
    expect([docs.get(single.documentId)!.class, docs.get(single.documentId)!.pageCount, docs.get(single.documentId)!.state]).toEqual(["single", 1, "converting"]);
    expect([docs.get(small.documentId)!.class, docs.get(small.documentId)!.pageCount, docs.get(small.documentId)!.state]).toEqual(["small", 3, "converting"]);
    const f = docs.get(fake.documentId)!;
    expect([f.state, f.failureCode]).toEqual(["failed", "not_pdf"]);
    expect(f.failureReason).toMatch(/not a PDF/);
    const pages = await prisma.page.findMany({ orderBy: [{ documentId: "asc" }, { pageNumber: "asc" }] });
    // A one-page document is rendered from its own key, as the orchestrator sends it to the converter.
    expect(pages.filter((p) => p.documentId === single.documentId).map((p) => [p.pdfKey, p.imageKey, p.width, p.height, p.state])).toEqual([
      ["in/one.pdf", imageKey(single, 1), 300, 400, "rendered"],
    ]);
    expect(pages.filter((p) => p.documentId === small.documentId).map((p) => p.pdfKey)).toEqual([1, 2, 3].map((n) => pageKey(small, n)));
    expect(pages.filter((p) => p.documentId === fake.documentId)).toEqual([]);
    expect(await queueDepth(stack.sqs, stack.queueUrls.parked.url)).toBe(0);
  });

  test("a page SQS moved to its DLQ on its own (no reason attributes) is rendered, and a second copy changes nothing", async ({ stack, prisma }) => {
    const [doc] = (await classifiedSmall(stack, prisma, ["in/three.pdf"])) as [DocumentRef & { key: string }];
    await prisma.document.update({ where: { id: doc.documentId }, data: { state: "converting" } });
    // The page as the small splitter left it.
    const single = await generatePdf(join(dir, "page-2.pdf"), [{ widthPt: 288, heightPt: 432, content: "mixed" }]);
    await putObject(stack.s3, stack.workBucket, pageKey(doc, 2), single.path);
    await prisma.page.create({ data: { documentId: doc.documentId, pageNumber: 2, pdfKey: pageKey(doc, 2) } });
    const body = JSON.stringify({ version: 1, ...doc, bucket: stack.workBucket, key: pageKey(doc, 2), pageNumber: 2 });
    // The records about the whole message (the page's own records have no queue).
    const wholeMessage = { stage: "failsafe", details: { path: ["queue"], equals: "singlePage" } } as const;
    for (let i = 0; i < 2; i++) await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.singlePage.dlqUrl, MessageBody: body }));

    await running([failsafe(stack, prisma)], () =>
      waitFor("both copies handled", async () =>
        (await prisma.auditEvent.count({ where: { ...wholeMessage, outcome: "succeeded" } })) === 2 ? true : undefined, 30_000),
    );
    const page = await prisma.page.findFirstOrThrow({ where: { documentId: doc.documentId } });
    expect([page.pageNumber, page.pdfKey, page.imageKey, page.width, page.height, page.dpi, page.state]).toEqual([
      2, pageKey(doc, 2), imageKey(doc, 2), 288, 432, DPI, "rendered",
    ]);
    const outcomes = await prisma.auditEvent.findMany({ where: { ...wholeMessage, outcome: "succeeded" }, orderBy: { id: "asc" } });
    expect(outcomes.map((e) => (e.details as { rendered: number; skipped: number }))).toMatchObject([{ rendered: 1, skipped: 0 }, { rendered: 0, skipped: 1 }]);
    const started = await prisma.auditEvent.findFirstOrThrow({ where: { ...wholeMessage, outcome: "started" } });
    expect([started.errorCode, started.details]).toMatchObject(["receive_count_exceeded", { dlReason: "redriven", queue: "singlePage" }]);
  });
  test("a done page without its image (scored, but its converter died before writing the row) is rendered for its facts", async ({ stack, prisma }) => {
    const [doc] = (await classifiedSmall(stack, prisma, ["in/three.pdf"])) as [DocumentRef & { key: string }];
    await prisma.document.update({ where: { id: doc.documentId }, data: { state: "converting" } });
    const single = await generatePdf(join(dir, "page-3.pdf"), [{ widthPt: 288, heightPt: 432, content: "mixed" }]);
    await putObject(stack.s3, stack.workBucket, pageKey(doc, 3), single.path);
    await prisma.page.create({ data: { documentId: doc.documentId, pageNumber: 3, pdfKey: pageKey(doc, 3), state: "done" } });
    const body = JSON.stringify({ version: 1, ...doc, bucket: stack.workBucket, key: pageKey(doc, 3), pageNumber: 3 });
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.singlePage.dlqUrl, MessageBody: body }));

    const wholeMessage = { stage: "failsafe", details: { path: ["queue"], equals: "singlePage" } } as const;
    await running([failsafe(stack, prisma)], () =>
      waitFor("the copy handled", async () => ((await prisma.auditEvent.count({ where: { ...wholeMessage, outcome: "succeeded" } })) === 1 ? true : undefined), 30_000),
    );
    const page = await prisma.page.findFirstOrThrow({ where: { documentId: doc.documentId, pageNumber: 3 } });
    expect([page.imageKey, page.width, page.height, page.state]).toEqual([imageKey(doc, 3), 288, 432, "done"]);
    const [outcome] = await prisma.auditEvent.findMany({ where: { ...wholeMessage, outcome: "succeeded" } });
    expect(outcome!.details).toMatchObject({ rendered: 1, skipped: 0 });
  });
});

describe("failsafe: converted-image replays", () => {
  test("replays with a growing delay and a counter, then parks the message and fails page and document", async ({ stack, prisma }) => {
    const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, ["in/one.pdf"]);
    const doc = { batchId, documentId: documents[0]!.id };
    await prisma.document.update({ where: { id: doc.documentId }, data: { state: "converting", class: "single", pageCount: 1 } });
    const key = await uploadPageImage(stack.s3, stack.workBucket, doc, 1, (await pagePngs()).ink);
    await prisma.page.create({ data: { documentId: doc.documentId, pageNumber: 1, state: "rendered", pdfKey: "in/one.pdf", imageKey: key } });
    // The upload's own notification is not part of this test.
    await receiveMessages(stack.sqs, stack.queueUrls.convertedImage.url, 1, 5_000);
    const body = s3Event(stack.workBucket, key);

    // random() = 1: every delay is its ceiling, 1 s then 2 s.
    const service = failsafe(stack, prisma, { maxReplays: 2, replayBaseSeconds: 1, random: () => 1 });
    const seen: { replays: string | undefined; waitedMs: number }[] = [];
    await running([service], async () => {
      let attributes: Message["MessageAttributes"] | undefined;
      for (let i = 0; i < 2; i++) {
        // As the inference client does when a page exhausts its retries.
        const sent = Date.now();
        await deadLetter(stack, stack.queueUrls.convertedImage.dlqUrl, body, {
          errorCode: "retries_exhausted", errorMessage: "model endpoint 503", ...(attributes && { attributes }),
        });
        const [replayed] = await receiveMessages(stack.sqs, stack.queueUrls.convertedImage.url, 1, 15_000);
        expect(replayed?.Body).toBe(body);
        seen.push({ replays: replayed!.MessageAttributes?.[REPLAYS_ATTRIBUTE]?.StringValue, waitedMs: Date.now() - sent });
        attributes = replayed!.MessageAttributes;
      }
      await deadLetter(stack, stack.queueUrls.convertedImage.dlqUrl, body, { errorCode: "retries_exhausted", errorMessage: "model endpoint 503", ...(attributes && { attributes }) });
      await waitFor("the message to be parked", async () => ((await queueDepth(stack.sqs, stack.queueUrls.parked.url)) === 1 ? true : undefined), 15_000);
    });

    expect(seen.map((s) => s.replays)).toEqual(["1", "2"]);
    expect(seen[0]!.waitedMs).toBeGreaterThanOrEqual(1_000);
    expect(seen[1]!.waitedMs).toBeGreaterThanOrEqual(2_000);
    const replays = await prisma.auditEvent.findMany({ where: { stage: "failsafe", outcome: "replayed" }, orderBy: { id: "asc" } });
    expect(replays.map((e) => (e.details as { delaySeconds: number; replay: number }).delaySeconds)).toEqual([1, 2]);
    expect(replays.map((e) => [e.documentId, e.pageNumber, e.errorCode])).toEqual([[doc.documentId, 1, "retries_exhausted"], [doc.documentId, 1, "retries_exhausted"]]);

    const [parked] = await receiveMessages(stack.sqs, stack.queueUrls.parked.url, 1, 5_000);
    expect(parked?.Body).toBe(body);
    expect(parked!.MessageAttributes?.[REPLAYS_ATTRIBUTE]?.StringValue).toBe("2");
    const page = await prisma.page.findFirstOrThrow({ where: { documentId: doc.documentId } });
    expect([page.state, page.failureCode]).toEqual(["failed", "replay_limit"]);
    expect(page.failureReason).toMatch(/after 2 replays.*model endpoint 503/);
    const d = await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } });
    expect([d.state, d.failureCode]).toEqual(["failed", "inference_replay_limit"]);
    expect((await prisma.batch.findUniqueOrThrow({ where: { id: batchId } })).state).toBe("completed");
    const last = await prisma.auditEvent.findFirstOrThrow({ where: { stage: "failsafe", outcome: "dead_lettered" } });
    expect(last.details).toMatchObject({ parked: true, replays: 2 });
    expect(await queueDepth(stack.sqs, stack.queueUrls.convertedImage.dlqUrl)).toBe(0);
  });
});

describe("failsafe: page quotas", () => {
  test("a break-down that first counts a document's pages charges them, and fails one over the key's page quota before any page", async ({ stack, prisma }) => {
    const plan = { name: "two-pages", ratePerSecond: 100, burst: 100, quotaDocuments: null, quotaPages: 2, quotaPeriod: "day" as const };
    await upsertPlan(prisma, plan);
    const key = await createApiKey(prisma, { name: "scanner", owner: "records", plan: plan.name, buckets: ["*"] });
    const one = await generatePdf(join(dir, "one-quota.pdf"), [{ widthPt: 300, heightPt: 400 }]);
    await putObject(stack.s3, stack.stagingBucket, "quota/one.pdf", one.path);
    await putObject(stack.s3, stack.stagingBucket, "quota/three.pdf", three.path);
    const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, ["quota/one.pdf", "quota/three.pdf"]);
    await prisma.batch.update({ where: { id: batchId }, data: { apiKeyId: key.id } });
    for (const d of documents) {
      await deadLetter(stack, stack.queueUrls.ingest.dlqUrl, JSON.stringify({ version: 1, batchId, documentId: d.id, bucket: stack.stagingBucket, key: d.key }), {});
    }
    await running([failsafe(stack, prisma)], () =>
      waitFor("two failsafe outcomes", async () =>
        (await prisma.auditEvent.count({ where: { stage: "failsafe", pageNumber: null, outcome: { in: ["succeeded", "failed"] } } })) === 2, 30_000),
    );
    const [fits, over] = documents.map((d) => d.id) as [string, string];
    expect(await prisma.document.findUniqueOrThrow({ where: { id: fits } })).toMatchObject({ pageCount: 1, state: "converting" });
    const refused = await prisma.document.findUniqueOrThrow({ where: { id: over } });
    expect(refused).toMatchObject({ state: "failed", failureCode: "page_quota_exceeded", pageCount: null });
    expect(refused.failureReason).toMatch(/has 3 pages; API key dp_\w+'s plan allows 2 pages per day and 1 are used/);
    const trail = await prisma.auditEvent.findMany({ where: { documentId: over, stage: "failsafe" }, orderBy: { id: "asc" } });
    // The started record carries the dead letter's cause; the outcome, the refusal.
    expect(trail.map((e) => [e.outcome, e.errorCode])).toEqual([["started", "retries_exhausted"], ["failed", "page_quota_exceeded"]]);
    expect(await prisma.page.count({ where: { documentId: over } })).toBe(0);
    expect((await quotaStatus(prisma, { id: key.id, plan })).pages).toEqual({ limit: 2, used: 1, remaining: 1 });
  });
});

describe("docpipe redrive", () => {
  test("moves a DLQ's messages back to its source queue, and the parked queue to the queue named", async ({ stack }) => {
    const bodies = ["a", "b", "c"].map((x) => JSON.stringify({ x }));
    for (const b of bodies) await deadLetter(stack, stack.queueUrls.singlePage.dlqUrl, b, {});
    const cli = await redriveCommand("single-page", undefined, stack.env);
    expect(cli.moved).toBe(3);
    expect(cli.destinationUrl).toBe(stack.queueUrls.singlePage.url);
    const back = await receiveMessages(stack.sqs, stack.queueUrls.singlePage.url, 3, 10_000);
    expect(back.map((m) => m.Body).sort()).toEqual(bodies);
    expect(await queueDepth(stack.sqs, stack.queueUrls.singlePage.dlqUrl)).toBe(0);

    for (const b of bodies.slice(0, 2)) {
      await deadLetter(stack, stack.queueUrls.parked.url, b, { attributes: { [REPLAYS_ATTRIBUTE]: { DataType: "Number", StringValue: "5" } } });
    }
    const parked = await redrive(stack.sqs, stack.queueUrls, { from: "parked", to: "convertedImage" });
    expect([parked.moved, parked.method]).toEqual([2, "batch"]);
    const moved = await receiveMessages(stack.sqs, stack.queueUrls.convertedImage.url, 2, 10_000);
    expect(moved.map((m) => m.Body).sort()).toEqual(bodies.slice(0, 2));
    // A redriven message starts with a fresh replay budget and no stale failure.
    expect(moved.flatMap((m) => Object.keys(m.MessageAttributes ?? {}))).toEqual([]);
    await expect(redriveCommand("parked", undefined, stack.env)).rejects.toThrow(/--to/);
  });
});
