// The per-batch counters the database keeps with triggers: every change counted once, in its own
// transaction, whoever makes it and however many race for it.
import { counterDrift, createPrisma, readBatchCounters, readStageStats, recountBatch, type PrismaClient } from "@docpipe/db";
import { expect, onTestFinished, test } from "../fixtures/index.js";

async function batchWithPages(prisma: PrismaClient, pages: number[]) {
  const batch = await prisma.batch.create({ data: { bucket: "staging", prefixes: ["in/"], state: "processing" } });
  const docs = [];
  for (const [i, n] of pages.entries()) {
    const doc = await prisma.document.create({ data: { batchId: batch.id, bucket: "staging", key: `in/${i}.pdf`, pageCount: n, state: "converting" } });
    await prisma.page.createMany({ data: Array.from({ length: n }, (_, p) => ({ documentId: doc.id, pageNumber: p + 1, pdfKey: `p/${p + 1}.pdf` })) });
    docs.push(doc);
  }
  return { batch, docs };
}

const score = (prisma: PrismaClient, page: { id: string; documentId: string; pageNumber: number }, features: string[]) =>
  prisma.inferenceResult.create({
    data: { pageId: page.id, documentId: page.documentId, pageNumber: page.pageNumber, modelName: "m", modelVersion: "1", output: {}, features, latencyMs: 5 },
  });

test("counters follow documents, pages and results through every change, and agree with a recount", async ({ prisma }) => {
  const { batch, docs } = await batchWithPages(prisma, [3, 2, 1]);
  const [a, b, c] = docs as [(typeof docs)[0], (typeof docs)[0], (typeof docs)[0]];
  await prisma.page.updateMany({ where: { documentId: a.id }, data: { state: "rendered", imageKey: "i.png" } });
  await prisma.page.updateMany({ where: { documentId: a.id, pageNumber: { lte: 2 } }, data: { degraded: true, degradedReason: "zlib error" } });
  for (const p of await prisma.page.findMany({ where: { documentId: a.id } })) await score(prisma, p, p.pageNumber === 1 ? ["blank", "ink"] : ["ink"]);
  await prisma.page.updateMany({ where: { documentId: a.id }, data: { state: "done" } });
  await prisma.document.update({ where: { id: a.id }, data: { state: "done" } });
  await prisma.page.updateMany({ where: { documentId: b.id, pageNumber: 1 }, data: { state: "failed", failureCode: "corrupt" } });
  await prisma.document.update({ where: { id: b.id }, data: { state: "failed" } });

  expect(Object.fromEntries(await readBatchCounters(prisma, batch.id))).toEqual({
    "documents.done": 1,
    "documents.failed": 1,
    "documents.converting": 1,
    "pages.expected": 6,
    "pages.rows": 6,
    "pages.done": 3,
    "pages.failed": 1,
    "pages.pending": 2,
    "pages.imaged": 3,
    results: 3,
    "features.pages:ink": 3,
    "features.pages:blank": 1,
    "features.documents:ink": 1,
    "features.documents:blank": 1,
    "pages.degraded": 2,
    "pages.degraded:zlib error": 2,
    "documents.degraded:zlib error": 1,
  });

  // A bulk change (as retry-failed makes), and a document deleted with its pages.
  await prisma.page.updateMany({ where: { documentId: b.id, state: "failed" }, data: { state: "pending", failureCode: null } });
  await prisma.document.update({ where: { id: b.id }, data: { state: "queued" } });
  await prisma.document.delete({ where: { id: c.id } });
  const counters = await readBatchCounters(prisma, batch.id);
  expect([counters.get("pages.rows"), counters.get("pages.pending"), counters.get("pages.failed"), counters.get("documents.queued")]).toEqual([5, 2, undefined, 1]);
  expect(await counterDrift(prisma, batch.id)).toEqual([]);

  // A repair from the rows gives the same counts.
  await recountBatch(prisma, batch.id, { timings: true });
  expect(await readBatchCounters(prisma, batch.id)).toEqual(counters);
});

test("pages finished by racing deliveries and rolled-back transactions are counted once", async ({ prisma, databaseUrl }) => {
  const { batch, docs } = await batchWithPages(prisma, [4]);
  const documentId = docs[0]!.id;
  // Eight connections, so the racers run in separate transactions (and add to separate shards).
  const clients = Array.from({ length: 8 }, () => createPrisma({ databaseUrl, poolMax: 1 }));
  onTestFinished(() => Promise.all(clients.map((c) => c.$disconnect())).then(() => undefined));
  await Promise.all(
    clients.flatMap((client) =>
      [1, 2, 3, 4].map((pageNumber) =>
        client.page.updateMany({ where: { documentId, pageNumber, state: { not: "done" } }, data: { state: "done" } }),
      ),
    ),
  );
  expect((await readBatchCounters(prisma, batch.id)).get("pages.done")).toBe(4);
  // A transaction that finishes a page and then fails leaves no trace in the counters.
  await prisma.page.updateMany({ where: { documentId }, data: { state: "rendered" } });
  await expect(
    prisma.$transaction(async (tx) => {
      await tx.page.updateMany({ where: { documentId, pageNumber: 1 }, data: { state: "done" } });
      throw new Error("killed");
    }),
  ).rejects.toThrow("killed");
  const counters = await readBatchCounters(prisma, batch.id);
  expect([counters.get("pages.done"), counters.get("pages.rendered")]).toEqual([undefined, 4]);
  expect(await counterDrift(prisma, batch.id)).toEqual([]);
});

test("a change to no counted column counts nothing; a change to any one of them counts", async ({ prisma }) => {
  const { batch, docs } = await batchWithPages(prisma, [2, 1]);
  const [a, b] = docs as [(typeof docs)[0], (typeof docs)[0]];
  const before = await readBatchCounters(prisma, batch.id);
  // Claims, releases and renewals write the lease columns only; a conditional UPDATE may match nothing.
  await prisma.page.updateMany({ where: { documentId: a.id }, data: { leaseStage: "convert", leaseOwner: "m1", leaseUntil: new Date() } });
  await prisma.page.updateMany({ where: { documentId: a.id }, data: { leaseUntil: null } });
  await prisma.page.updateMany({ where: { documentId: a.id, state: "done" }, data: { state: "failed" } });
  await prisma.document.updateMany({ where: { batchId: batch.id }, data: { leaseStage: "classify", leaseOwner: "m1", updatedAt: new Date() } });
  expect(await readBatchCounters(prisma, batch.id)).toEqual(before);

  // One column at a time, and two pages trading states within one document (nothing to count) or across two (each document's own).
  await prisma.page.updateMany({ where: { documentId: a.id, pageNumber: 1 }, data: { imageKey: "1.png" } });
  await prisma.page.updateMany({ where: { documentId: a.id, pageNumber: 2 }, data: { degraded: true } });
  await prisma.page.updateMany({ where: { documentId: a.id, pageNumber: 2 }, data: { degradedReason: "jbig2" } });
  await prisma.page.updateMany({ where: { documentId: a.id, pageNumber: 1 }, data: { state: "done" } });
  await prisma.$executeRaw`UPDATE "Page" SET state = CASE WHEN state = 'done' THEN 'pending'::"PageState" ELSE 'done'::"PageState" END WHERE "documentId" = ${a.id}::uuid`;
  await prisma.$executeRaw`UPDATE "Page" SET state = CASE WHEN "documentId" = ${a.id}::uuid THEN 'pending'::"PageState" ELSE 'done'::"PageState" END
    WHERE ("documentId" = ${a.id}::uuid AND "pageNumber" = 2) OR "documentId" = ${b.id}::uuid`;
  await prisma.document.updateMany({ where: { id: b.id }, data: { pageCount: 3 } });
  await prisma.document.updateMany({ where: { id: a.id }, data: { duplicateOfId: b.id, state: "done" } });
  // A result's uncounted columns, then its features.
  const page = await prisma.page.findFirstOrThrow({ where: { documentId: b.id } });
  const result = await score(prisma, page, ["ink"]);
  await prisma.inferenceResult.update({ where: { id: result.id }, data: { latencyMs: 9, output: { ink: 0.5 } } });
  await prisma.inferenceResult.update({ where: { id: result.id }, data: { features: ["ink", "blank"] } });
  const counters = Object.fromEntries(await readBatchCounters(prisma, batch.id));
  expect(counters).toMatchObject({ "pages.imaged": 1, "pages.degraded": 1, "pages.degraded:jbig2": 1, "pages.done": 1, "pages.pending": 2, "pages.expected": 5, "documents.duplicates": 1 });
  expect([counters.results, counters["features.pages:ink"], counters["features.pages:blank"]]).toEqual([1, 1, 1]);
  expect(await counterDrift(prisma, batch.id)).toEqual([]);
  const finished = await prisma.document.findMany({ where: { batchId: batch.id }, select: { id: true, pagesFinished: true }, orderBy: { pageCount: "asc" } });
  expect(finished.map((d) => [d.id, d.pagesFinished])).toEqual([[a.id, 0], [b.id, 1]]);
});

test("stage percentiles come from the kept timings, equal Postgres's over the audit trail, and survive a prune", async ({ prisma }) => {
  const { batch, docs } = await batchWithPages(prisma, [1]);
  const durations = [12, 40, 41, 41, 95, 130, 600, 999, 250, 3];
  await prisma.auditEvent.createMany({
    data: [
      ...durations.map((durationMs, i) => ({ batchId: batch.id, documentId: docs[0]!.id, stage: "convert", outcome: i === 4 ? ("failed" as const) : ("succeeded" as const), workerId: "w", durationMs })),
      { batchId: batch.id, documentId: docs[0]!.id, stage: "convert", outcome: "started", workerId: "w" },
      { batchId: batch.id, documentId: docs[0]!.id, stage: "ingestion", outcome: "succeeded", workerId: "w" },
    ],
  });
  const [expected] = await prisma.$queryRaw<{ p50: number; p90: number; p99: number }[]>`
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY "durationMs") AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY "durationMs") AS p90,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY "durationMs") AS p99
    FROM "AuditEvent" WHERE "batchId" = ${batch.id}::uuid AND stage = 'convert' AND outcome <> 'started'`;
  const stats = await readStageStats(prisma, batch.id);
  expect(stats.find((s) => s.stage === "convert")).toEqual({ stage: "convert", attempts: 10, failures: 1, p50Ms: expected!.p50, p90Ms: expected!.p90, p99Ms: expected!.p99 });
  expect(stats.find((s) => s.stage === "ingestion")).toEqual({ stage: "ingestion", attempts: 1, failures: 0, p50Ms: null, p90Ms: null, p99Ms: null });

  // A `started` record alone is no finished attempt.
  await prisma.auditEvent.create({ data: { batchId: batch.id, documentId: docs[0]!.id, stage: "convert", outcome: "started", workerId: "w" } });
  expect(await readStageStats(prisma, batch.id)).toEqual(stats);

  await prisma.auditEvent.deleteMany({ where: { batchId: batch.id } });
  expect(await readStageStats(prisma, batch.id)).toEqual(stats);
});

test("a deleted batch takes its counters with it", async ({ prisma }) => {
  const { batch } = await batchWithPages(prisma, [2, 2]);
  await prisma.batch.delete({ where: { id: batch.id } });
  expect(await prisma.batchCounter.count()).toBe(0);
});
