import type { LocalStack } from "@docpipe/local-stack";
import type { PrismaClient } from "@docpipe/db";
import { createLogger, type IngestMessage } from "@docpipe/queue";
import { buildApp, type AppOptions, type IngestionApp } from "@docpipe/ingestion";
import { describe, expect, test as stackTest } from "../fixtures/index.js";
import { authed, createTestKey, drainIngestQueue, TEST_OWNER, pdfKeys, putObjects } from "./helpers.js";

const logger = createLogger({ service: "ingestion-test", level: "warn" });
const bucket = "ingest-many";
const prefixes = ["p0/", "p1/", "p2/", "p3/"];
const perPrefix = 2_500;
const total = prefixes.length * perPrefix;
const nonPdfPerPrefix = 25;

/** Every key under a prefix, in S3's listing order (UTF-8 binary order). */
const keysUnder = (p: string): string[] =>
  [...pdfKeys(p, perPrefix), ...Array.from({ length: nonPdfPerPrefix }, (_, i) => `${p}notes-${i}.txt`), p].sort();

/** PDFs on the first `pages` pages of listing `ps` with `pageSize` keys per page (pages never span prefixes). */
function pdfsOnFirstPages(ps: string[], pageSize: number, pages: number): number {
  let count = 0;
  for (const p of ps) {
    const keys = keysUnder(p);
    for (let i = 0; i < keys.length && pages > 0; i += pageSize, pages--) {
      count += keys.slice(i, i + pageSize).filter((k) => k.endsWith(".pdf")).length;
    }
  }
  return count;
}

interface Apps {
  /** A new ingestion app (a new "process") on this test's database; ready, so it has resumed unfinished listings. */
  start(opts?: Partial<AppOptions>): Promise<IngestionApp>;
  /** Closes it as SIGTERM would. */
  close(app: IngestionApp): Promise<void>;
}

const it = stackTest.extend<{ $file: { inbox: string }; $test: { key: string; apps: Apps } }>({
  key: async ({ prisma }, use) => {
    await use((await createTestKey(prisma)).key);
  },
  // Uploaded once per file: each prefix holds PDFs, a few non-PDFs and a "folder" marker (its own key, ending in /).
  inbox: [
    async ({ stack }, use) => {
      const keys = prefixes.flatMap(keysUnder);
      const t0 = Date.now();
      await putObjects(stack.s3, bucket, keys, 32);
      logger.warn({ objects: keys.length, ms: Date.now() - t0 }, "uploaded test objects");
      await use(bucket);
    },
    { scope: "file" },
  ],
  apps: async ({ stack, prisma }, use) => {
    const open = new Set<IngestionApp>();
    try {
      await use({
        async start(opts = {}) {
          const app = buildApp({ prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger, ...opts });
          open.add(app);
          await app.ready();
          return app;
        },
        async close(app) {
          open.delete(app);
          await app.close();
        },
      });
    } finally {
      for (const app of open) await app.close();
    }
  },
});

/** Messages of one batch, drained from the ingest queue. */
async function messagesOf(stack: LocalStack, batchId: string): Promise<IngestMessage[]> {
  return (await drainIngestQueue(stack.sqs, stack.queueUrls.ingest.url)).filter((m) => m.batchId === batchId);
}

/** Every document of the batch exists once, has exactly one ingestion audit record and at least one message. */
async function expectComplete(prisma: PrismaClient, batchId: string, messages: IngestMessage[], expectedKeys: number): Promise<void> {
  const docs = await prisma.document.findMany({ where: { batchId }, select: { id: true, key: true } });
  expect(docs).toHaveLength(expectedKeys);
  expect(new Set(docs.map((d) => d.key)).size).toBe(expectedKeys);

  const sent = new Map<string, number>();
  for (const m of messages) sent.set(m.documentId, (sent.get(m.documentId) ?? 0) + 1);
  const unsent = docs.filter((d) => !sent.has(d.id));
  expect(unsent).toEqual([]);
  const docIds = new Set(docs.map((d) => d.id));
  expect(messages.filter((m) => !docIds.has(m.documentId))).toEqual([]);

  const audits = await prisma.auditEvent.groupBy({
    by: ["documentId"],
    where: { batchId, stage: "ingestion", documentId: { not: null } },
    _count: { _all: true },
  });
  expect(audits).toHaveLength(expectedKeys);
  expect(audits.every((a) => a._count._all === 1)).toBe(true);

  const batch = await prisma.batch.findUniqueOrThrow({ where: { id: batchId } });
  expect(batch).toMatchObject({ state: "processing", documentCount: expectedKeys });
}

describe("listing many objects", () => {
  it(`lists ${total} PDFs across ${prefixes.length} prefixes page by page into exactly ${total} documents and messages`, async ({ key, inbox, stack, prisma, apps }) => {
    let pages = 0;
    const app = await apps.start({ listPageSize: 250, listerHooks: { afterPage: () => void pages++ } });
    const t0 = Date.now();
    const res = await authed(app, key).post("/batches").send({ bucket: inbox, prefixes }).expect(202);
    const acceptedMs = Date.now() - t0;
    await app.lister.idle();
    const listedMs = Date.now() - t0;
    const batchId: string = res.body.batchId;

    const messages = await messagesOf(stack, batchId);
    logger.warn({ objects: total, acceptedMs, listedMs, pages }, "listed, inserted and queued");
    expect(messages).toHaveLength(total);
    await expectComplete(prisma, batchId, messages, total);
    // 2,526 keys per prefix (the folder marker included) at 250 per page: 11 pages each.
    expect(pages).toBe(prefixes.length * Math.ceil((perPrefix + nonPdfPerPrefix + 1) / 250));

    const batch = (await authed(app, key).get(`/batches/${batchId}`).expect(200)).body;
    expect(batch).toMatchObject({
      state: "processing",
      documentCount: total,
      skippedCount: prefixes.length * nonPdfPerPrefix,
      documents: { queued: total },
      listing: { finished: true, prefixIndex: prefixes.length },
    });
    await apps.close(app);
  });
});

describe("restarts", () => {
  const crashPrefixes = ["p1/", "p2/"];
  const crashTotal = crashPrefixes.length * perPrefix;
  const pageSize = 200;

  it.for([
    ["after inserting a page, before sending its messages", "afterInsert", 0],
    ["after sending a page's messages, before saving the position", "afterSend", pageSize],
  ] as const)("a crash %s neither loses nor duplicates documents", async ([, phase, expectedDuplicates], { key, inbox, stack, prisma, apps }) => {
    const crashPage = 17; // in the second prefix
    const crashed = await apps.start({
      listPageSize: pageSize,
      listerHooks: {
        [phase]: (e: { page: number }) => {
          if (e.page === crashPage) throw new Error("simulated crash");
        },
      },
    });
    const res = await authed(crashed, key).post("/batches").send({ bucket: inbox, prefixes: crashPrefixes }).expect(202);
    const batchId: string = res.body.batchId;
    await crashed.lister.idle();
    await apps.close(crashed);

    const before = await prisma.batch.findUniqueOrThrow({ where: { id: batchId } });
    expect(before.state).toBe("listing");
    // Every page up to the crash is in the database, the crashed one included. Rows run at most
    // one page ahead of messages: the next page's rows go in while a page's messages go out, so
    // a crash after sending may find them there too (they are sent on resume, once).
    const upToCrash = pdfsOnFirstPages(crashPrefixes, pageSize, crashPage);
    if (phase === "afterInsert") expect(before.documentCount).toBe(upToCrash);
    else expect([upToCrash, pdfsOnFirstPages(crashPrefixes, pageSize, crashPage + 1)]).toContain(before.documentCount);
    expect(await prisma.document.count({ where: { batchId } })).toBe(before.documentCount);

    // A new process resumes every batch left in `listing`.
    const resumed = await apps.start({ listPageSize: pageSize });
    await resumed.lister.idle();
    const messages = await messagesOf(stack, batchId);
    await expectComplete(prisma, batchId, messages, crashTotal);
    expect(messages.length - crashTotal).toBe(expectedDuplicates);
    const after = await prisma.batch.findUniqueOrThrow({ where: { id: batchId } });
    expect(after.skippedCount).toBe(crashPrefixes.length * nonPdfPerPrefix);
    await apps.close(resumed);
  });

  it("a graceful stop finishes the page in hand, and the next start completes the listing without duplicates", async ({ key, inbox, stack, prisma, apps }) => {
    let closing: Promise<void> | undefined;
    const app = await apps.start({
      listPageSize: pageSize,
      listerHooks: {
        afterInsert: (e) => {
          // SIGTERM arrives while a page is half done.
          if (e.page === 4) closing = app.close();
        },
      },
    });
    const res = await authed(app, key).post("/batches").send({ bucket: inbox, prefixes: crashPrefixes }).expect(202);
    const batchId: string = res.body.batchId;
    await app.lister.idle();
    await closing;

    const stopped = await prisma.batch.findUniqueOrThrow({ where: { id: batchId } });
    // The page in hand was finished: rows, messages and position.
    const done = pdfsOnFirstPages(crashPrefixes, pageSize, 4);
    expect(stopped).toMatchObject({ state: "listing", listingPrefix: 0, documentCount: done });
    const first = await messagesOf(stack, batchId);
    expect(first.length).toBe(done);

    const resumed = await apps.start({ listPageSize: pageSize });
    await resumed.lister.idle();
    const rest = await messagesOf(stack, batchId);
    expect(rest.length).toBe(crashTotal - done);
    await expectComplete(prisma, batchId, [...first, ...rest], crashTotal);
    await apps.close(resumed);
  });

  it("two processes resuming the same batch at once still make each document once, with exact counts", async ({ inbox, stack, prisma, apps }) => {
    // A batch left in `listing` by a process that died before its first page.
    const batch = await prisma.batch.create({ data: { owner: TEST_OWNER, bucket: inbox, prefixes: ["p3/"] } });
    const [a, b] = await Promise.all([apps.start({ listPageSize: 500 }), apps.start({ listPageSize: 500 })]);
    await Promise.all([a.lister.idle(), b.lister.idle()]);
    const messages = await messagesOf(stack, batch.id);
    await expectComplete(prisma, batch.id, messages, perPrefix);
    const after = await prisma.batch.findUniqueOrThrow({ where: { id: batch.id } });
    expect(after.skippedCount).toBe(nonPdfPerPrefix);
    await apps.close(a);
    await apps.close(b);
  });

  it("a batch whose bucket is gone fails with a reason instead of retrying forever", async ({ key, prisma, apps }) => {
    const batch = await prisma.batch.create({ data: { owner: TEST_OWNER, bucket: "bucket-deleted-meanwhile", prefixes: ["x/"] } });
    const app = await apps.start();
    await app.lister.idle();
    const failed = await prisma.batch.findUniqueOrThrow({ where: { id: batch.id } });
    expect(failed.state).toBe("failed");
    const audit = await prisma.auditEvent.findMany({ where: { batchId: batch.id, outcome: "failed" } });
    expect(audit).toEqual([expect.objectContaining({ stage: "ingestion", errorCode: "bucket_not_found" })]);
    const res = await authed(app, key).get(`/batches/${batch.id}`).expect(200);
    expect(res.body).toMatchObject({ state: "failed", documentCount: 0 });
    await apps.close(app);
  });
});
