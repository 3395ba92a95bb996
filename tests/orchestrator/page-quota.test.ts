import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApiKey, quotaStatus, upsertPlan } from "@docpipe/api-keys";
import type { PrismaClient } from "@docpipe/db";
import type { LocalStack } from "@docpipe/local-stack";
import { generateCorpus, type Corpus } from "@docpipe/pdf";
import { createLogger, QueueProducer } from "@docpipe/queue";
import { createOrchestrator, type OrchestratorOptions } from "@docpipe/chunking-orchestrator";
import { createSplitter } from "@docpipe/splitter";
import { afterAll, afterEach, beforeAll } from "vitest";
import { describe, expect, test } from "../fixtures/index.js";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { putObject, receiveBodies, TEST_WAIT_TIME_SECONDS } from "./support.js";

// Page quotas (issue 13): a document is charged its pages once, where its page count is first
// known (the orchestrator under the size limit, the large splitter above it); one that does not
// fit fails with a reason in the audit trail before any page work.

let corpus: Corpus;
let corpusDir: string;
const running: { stop(o: { timeoutMs: number }): Promise<void> }[] = [];

beforeAll(async () => {
  corpusDir = await mkdtemp(join(tmpdir(), "docpipe-page-quota-"));
  const pages = (n: number) => Array.from({ length: n }, () => ({ widthPt: 612, heightPt: 792 }));
  corpus = await generateCorpus(corpusDir, {
    files: [
      { name: "one.pdf", pages: pages(1) },
      { name: "five.pdf", pages: pages(5) },
      { name: "twelve.pdf", pages: pages(12) },
    ],
  });
});

afterAll(async () => {
  await rm(corpusDir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.stop({ timeoutMs: 10_000 })));
});

const path = (name: string) => corpus.files.find((f) => f.path.endsWith(`/${name}`))!.path;
const logger = (service: string) => createLogger({ service, level: "warn" });

/** A key on a plan of `quotaPages` pages a day, and a batch of it with one document per file. */
async function batchOfKey(stack: LocalStack, prisma: PrismaClient, quotaPages: number, files: string[]) {
  const plan = { name: "pages", ratePerSecond: 100, burst: 100, quotaDocuments: null, quotaPages, quotaPeriod: "day" as const };
  await upsertPlan(prisma, plan);
  const key = await createApiKey(prisma, { name: "scanner", owner: "records", plan: "pages", buckets: ["*"] });
  const bucket = stack.stagingBucket;
  const batch = await prisma.batch.create({ data: { bucket, prefixes: ["q/"], state: "processing", apiKeyId: key.id } });
  const docs = new Map<string, { id: string; key: string }>();
  for (const name of files) {
    const objectKey = `q/${name}`;
    await putObject(stack.s3, bucket, objectKey, path(name));
    const d = await prisma.document.create({ data: { batchId: batch.id, bucket, key: objectKey } });
    docs.set(name, { id: d.id, key: objectKey });
  }
  const producer = new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.ingest.url, queue: "ingest" });
  const ingest = (name: string) => {
    const d = docs.get(name)!;
    return producer.send([{ version: 1, batchId: batch.id, documentId: d.id, bucket, key: d.key }]);
  };
  const usage = async () => (await quotaStatus(prisma, { id: key.id, plan })).pages;
  const metered = async () => (await prisma.usageDaily.findMany({ where: { apiKeyId: key.id } })).map((r) => r.pages);
  return { batchId: batch.id, doc: (name: string) => docs.get(name)!, ingest, usage, metered };
}

function startOrchestrator(stack: LocalStack, prisma: PrismaClient, extra: Partial<OrchestratorOptions> = {}): void {
  const o = createOrchestrator({
    sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, waitTimeSeconds: TEST_WAIT_TIME_SECONDS,
    logger: logger("chunking-orchestrator"), ...extra,
  });
  running.push(o);
  o.start();
}

const outcomes = (prisma: PrismaClient, documentId: string, stage: string) =>
  prisma.auditEvent.findMany({ where: { documentId, stage }, orderBy: { id: "asc" } }).then((t) => t.map((e) => [e.outcome, e.errorCode]));

const settled = (prisma: PrismaClient, documentId: string, stage: string) =>
  waitFor(`${stage} of ${documentId} finished`, async () =>
    (await prisma.auditEvent.count({ where: { documentId, stage, outcome: { in: ["succeeded", "failed"] } } })) > 0);

describe("page quotas", () => {
  test("the orchestrator charges pages once and fails a document over the quota with a reason, before any page work", async ({ stack, prisma }) => {
    const q = await batchOfKey(stack, prisma, 10, ["five.pdf", "twelve.pdf", "one.pdf"]);
    startOrchestrator(stack, prisma);

    await q.ingest("five.pdf");
    await settled(prisma, q.doc("five.pdf").id, "classify");
    expect(await q.usage()).toEqual({ limit: 10, used: 5, remaining: 5 });

    // 12 pages do not fit into the 5 left: failed, its pages never split, converted or charged.
    const twelve = q.doc("twelve.pdf");
    await q.ingest("twelve.pdf");
    await settled(prisma, twelve.id, "classify");
    const refused = await prisma.document.findUniqueOrThrow({ where: { id: twelve.id } });
    expect(refused).toMatchObject({ state: "failed", failureCode: "page_quota_exceeded", pageCount: null });
    expect(refused.failureReason).toMatch(/has 12 pages; API key dp_\w+'s plan allows 10 pages per day and 5 are used.*resets at \d{4}-\d\d-\d\dT00:00:00\.000Z/);
    expect(await outcomes(prisma, twelve.id, "classify")).toEqual([["started", null], ["failed", "page_quota_exceeded"]]);
    expect(await prisma.page.count({ where: { documentId: twelve.id } })).toBe(0);

    // What still fits is admitted.
    await q.ingest("one.pdf");
    await settled(prisma, q.doc("one.pdf").id, "classify");
    expect(await q.usage()).toEqual({ limit: 10, used: 6, remaining: 4 });

    // A redelivered message is not charged again.
    await q.ingest("five.pdf");
    await waitFor("the redelivery handled", async () =>
      (await prisma.auditEvent.count({ where: { documentId: q.doc("five.pdf").id, stage: "classify", outcome: "started" } })) >= 2 ||
      (await prisma.auditEvent.count({ where: { documentId: q.doc("five.pdf").id, stage: "classify", outcome: "skipped" } })) >= 1);
    await waitFor("ingest queue drained", async () => (await queueDepth(stack.sqs, stack.queueUrls.ingest.url)) === 0);
    expect(await q.usage()).toEqual({ limit: 10, used: 6, remaining: 4 });
    expect(await q.metered()).toEqual([6]);
    // Only the admitted documents went on; the refused one sent nothing downstream.
    const large = await receiveBodies(stack.sqs, stack.queueUrls.large.url, 1, 2_000);
    expect(large).toEqual([]);
  });

  test("a file over the size limit is charged by the large splitter, which fails it before writing any chunk", async ({ stack, prisma }) => {
    const q = await batchOfKey(stack, prisma, 15, ["twelve.pdf", "five.pdf"]);
    // Every file is over this size limit: the orchestrator routes it unopened, the splitter counts its pages.
    startOrchestrator(stack, prisma, { largeSizeBytes: 100 });
    const splitter = createSplitter({
      role: "large", sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, workBucket: stack.workBucket,
      waitTimeSeconds: TEST_WAIT_TIME_SECONDS, logger: logger("splitter-large"),
    });
    running.push(splitter);
    splitter.start();

    const twelve = q.doc("twelve.pdf"), five = q.doc("five.pdf");
    await q.ingest("twelve.pdf");
    await settled(prisma, twelve.id, "split-large");
    expect(await q.usage()).toEqual({ limit: 15, used: 12, remaining: 3 });
    const chunks = await receiveBodies(stack.sqs, stack.queueUrls.small.url, 2);
    // A split sends its chunks' messages as their uploads finish, so in no set order (nor does SQS keep one).
    expect(chunks.map((c) => [c.firstPage, c.lastPage]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([[1, 10], [11, 12]]);

    await q.ingest("five.pdf");
    await settled(prisma, five.id, "split-large");
    expect(await prisma.document.findUniqueOrThrow({ where: { id: five.id } })).toMatchObject({
      state: "failed", failureCode: "page_quota_exceeded", pageCount: null,
    });
    expect(await outcomes(prisma, five.id, "split-large")).toEqual([["started", null], ["failed", "page_quota_exceeded"]]);
    expect(await prisma.chunk.count({ where: { documentId: five.id } })).toBe(0);
    expect(await receiveBodies(stack.sqs, stack.queueUrls.small.url, 1, 2_000)).toEqual([]);
    expect(await q.usage()).toEqual({ limit: 15, used: 12, remaining: 3 });
    expect(await q.metered()).toEqual([12]);
  });
});
