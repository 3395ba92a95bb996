// A document ends when its last page does, exactly once, whichever worker finishes that page and
// however many finish pages of it at the same moment.
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { failPage, finishPage } from "@docpipe/queue";
import { expect, onTestFinished, test } from "../fixtures/index.js";

async function renderedDocument(prisma: PrismaClient, pages: number) {
  // Listed and listing finished, so the batch completes when its one document ends.
  const batch = await prisma.batch.create({ data: { bucket: "staging", prefixes: ["in/"], state: "processing", listingPrefix: 1 } });
  const doc = await prisma.document.create({ data: { batchId: batch.id, bucket: "staging", key: "in/a.pdf", pageCount: pages, state: "converting" } });
  await prisma.page.createMany({
    data: Array.from({ length: pages }, (_, i) => ({ documentId: doc.id, pageNumber: i + 1, state: "rendered" as const, imageKey: `i/${i + 1}.png` })),
  });
  const rows = await prisma.page.findMany({ where: { documentId: doc.id }, orderBy: { pageNumber: "asc" } });
  return { batchId: batch.id, documentId: doc.id, pages: rows.map((p) => ({ id: p.id, batchId: batch.id, documentId: doc.id, pageNumber: p.pageNumber })) };
}

/** One client per worker, so the pages finish in transactions that really overlap. */
function workers(databaseUrl: string, n: number): PrismaClient[] {
  const clients = Array.from({ length: n }, () => createPrisma({ databaseUrl, poolMax: 1 }));
  onTestFinished(() => Promise.all(clients.map((c) => c.$disconnect())).then(() => undefined));
  return clients;
}

test("pages finished at once by many workers end their document once, done, and complete the batch", async ({ prisma, databaseUrl }) => {
  const { batchId, documentId, pages } = await renderedDocument(prisma, 12);
  const clients = workers(databaseUrl, 6);
  // Every page twice (a duplicate delivery racing the first), spread over the workers.
  const ended = await Promise.all([...pages, ...pages].map((page, i) => finishPage(clients[i % clients.length]!, page)));
  expect(ended.filter(Boolean)).toHaveLength(1);
  expect(await prisma.document.findUniqueOrThrow({ where: { id: documentId }, select: { state: true, pagesFinished: true, pagesFailed: true } })).toEqual({
    state: "done",
    pagesFinished: 12,
    pagesFailed: 0,
  });
  expect((await prisma.batch.findUniqueOrThrow({ where: { id: batchId } })).state).toBe("completed");
});

test("a page that fails while its siblings finish makes the document end failed, with its reason", async ({ prisma, databaseUrl }) => {
  const { documentId, pages } = await renderedDocument(prisma, 8);
  const clients = workers(databaseUrl, 4);
  const broken = pages[4]!;
  await Promise.all([
    ...pages.filter((p) => p !== broken).map((page, i) => finishPage(clients[i % clients.length]!, page)),
    failPage(clients[3]!, broken, {
      pageCode: "render_failed",
      pageReason: "syntax error",
      documentCode: "render_failed",
      documentReason: "page 5: syntax error",
      failFrom: ["pending", "rendered"],
    }),
  ]);
  expect(await prisma.document.findUniqueOrThrow({ where: { id: documentId }, select: { state: true, pagesFinished: true, pagesFailed: true, failureCode: true } })).toEqual({
    state: "failed",
    pagesFinished: 8,
    pagesFailed: 1,
    failureCode: "render_failed",
  });
});

test("a failed page scored after all is done, and its document with it", async ({ prisma }) => {
  const { documentId, pages } = await renderedDocument(prisma, 2);
  await finishPage(prisma, pages[0]!);
  await prisma.page.update({ where: { id: pages[1]!.id }, data: { state: "failed" } });
  expect((await prisma.document.findUniqueOrThrow({ where: { id: documentId } })).pagesFailed).toBe(1);
  // The inference of a page the failsafe gave up on lands late: the page is done, nothing failed is left.
  expect(await finishPage(prisma, pages[1]!)).toBe(true);
  expect(await prisma.document.findUniqueOrThrow({ where: { id: documentId }, select: { state: true, pagesFinished: true, pagesFailed: true } })).toEqual({
    state: "done",
    pagesFinished: 2,
    pagesFailed: 0,
  });
});
