import { readdir } from "node:fs/promises";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { start, type LocalStack } from "@docpipe/local-stack";
import { alreadyDone, createLogger, PermanentError, StageRunner, TransientError, type HandlerContext, type StageUnit } from "@docpipe/queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let stack: LocalStack;
let prisma: PrismaClient;
let tmp: string;

beforeAll(async () => {
  stack = await start({ name: "queue-stage" });
  prisma = createPrisma({ databaseUrl: await stack.createDatabase() });
  tmp = await mkdtemp(join(tmpdir(), "docpipe-stage-test-"));
});

afterAll(async () => {
  await prisma?.$disconnect();
  await stack?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function documentUnit(): Promise<StageUnit> {
  const batch = await prisma.batch.create({ data: { bucket: "staging", prefixes: ["in/"] } });
  const doc = await prisma.document.create({ data: { batchId: batch.id, bucket: "staging", key: `in/${batch.id}.pdf` } });
  return { batchId: batch.id, documentId: doc.id };
}

function context(attempt = 1, signal: AbortSignal = new AbortController().signal): HandlerContext {
  return { messageId: `m-${attempt}`, attempt, logger: createLogger({ service: "stage-test", level: "silent" }), signal, message: {} };
}

const trail = async (documentId: string) =>
  (await prisma.auditEvent.findMany({ where: { documentId }, orderBy: { id: "asc" } })).map((e) => ({
    stage: e.stage,
    outcome: e.outcome,
    attempt: e.attempt,
    pageNumber: e.pageNumber,
    errorCode: e.errorCode,
    details: e.details,
  }));

describe("StageRunner", () => {
  const stages = () => new StageRunner({ prisma, workerId: "stage-test", tmpDir: tmp });

  it("records started and the outcome with the unit's range, and leaves no temporary directory", async () => {
    const unit = { ...(await documentUnit()), firstPage: 11, lastPage: 20 };
    let seen = "";
    await stages().run({
      stage: "split-small",
      unit,
      ctx: context(),
      work: async (a) => {
        seen = await a.dir();
        await writeFile(join(seen, "piece.pdf"), "x");
        return { details: { pages: 10 } };
      },
    });
    expect(seen.startsWith(join(tmp, "docpipe-split-small-"))).toBe(true);
    expect(await readdir(tmp)).toEqual([]);
    expect(await trail(unit.documentId)).toMatchObject([
      { stage: "split-small", outcome: "started", attempt: 1, details: { firstPage: 11, lastPage: 20 } },
      { stage: "split-small", outcome: "succeeded", attempt: 1, details: { firstPage: 11, lastPage: 20, pages: 10 } },
    ]);
  });

  it("skips a unit an earlier delivery finished, and writes a success its dead attempt never recorded", async () => {
    const unit = { ...(await documentUnit()), pageNumber: 3 };
    let worked = 0;
    const run = (attempt: number) =>
      stages().run({
        stage: "convert",
        unit,
        ctx: context(attempt),
        lookup: async () => alreadyDone({ reason: "page already rendered" }, { checkRecorded: true }),
        work: async () => ({ details: { worked: ++worked } }),
      });
    await run(2);
    await run(3);
    expect(worked).toBe(0);
    expect(await trail(unit.documentId)).toMatchObject([
      { outcome: "succeeded", attempt: 2, pageNumber: 3, details: { reason: "page already rendered", recordedLate: true } },
      { outcome: "skipped", attempt: 3, pageNumber: 3, details: { reason: "page already rendered" } },
    ]);
  });

  it("does the same for a unit whose claim finds it done, when the stage leaves that check to its claim", async () => {
    const unit = { ...(await documentUnit()), pageNumber: 4 };
    // Rendered by a path that wrote no convert record of its own (as the failsafe's breakdown does).
    await prisma.page.create({ data: { documentId: unit.documentId, pageNumber: 4, state: "rendered", imageKey: "images/4.png" } });
    let worked = 0;
    const run = (attempt: number) =>
      stages().run({ stage: "convert", unit, ctx: context(attempt), checkRecordedWhenDone: true, work: async () => ({ details: { worked: ++worked } }) });
    await run(2);
    await run(3);
    expect(worked).toBe(0);
    expect(await trail(unit.documentId)).toMatchObject([
      { outcome: "succeeded", attempt: 2, pageNumber: 4, details: { claim: "done", recordedLate: true } },
      { outcome: "skipped", attempt: 3, pageNumber: 4, details: { claim: "done" } },
    ]);
  });

  it("records a failure with the reason a person reads, or leaves a permanent one to the dead-letter hook", async () => {
    const unit = await documentUnit();
    const fail = (error: Error, recordPermanentFailure?: boolean) =>
      stages().run({
        stage: "classify",
        unit,
        ctx: context(),
        ...(recordPermanentFailure !== undefined && { recordPermanentFailure }),
        work: async () => {
          throw error;
        },
      });
    await expect(fail(new PermanentError("not_pdf", "no %PDF- header"))).rejects.toBeInstanceOf(PermanentError);
    await expect(fail(new PermanentError("encrypted", "needs a password"), false)).rejects.toBeInstanceOf(PermanentError);
    // Anything unrecognised is retried.
    await expect(fail(new Error("connection reset"))).rejects.toMatchObject({ code: "unexpected" });
    const events = await prisma.auditEvent.findMany({ where: { documentId: unit.documentId, outcome: "failed" }, orderBy: { id: "asc" } });
    expect(events.map((e) => [e.errorCode, e.errorMessage])).toEqual([
      ["not_pdf", "The file is not a PDF (it does not start with %PDF-) (no %PDF- header)"],
      ["unexpected", "connection reset"],
    ]);
  });

  it("records no failure for a message the worker released", async () => {
    const unit = await documentUnit();
    const stop = new AbortController();
    const run = stages().run({
      stage: "split-large",
      unit,
      ctx: context(1, stop.signal),
      work: async (a) => {
        stop.abort();
        a.throwIfStopping();
        return {};
      },
    });
    await expect(run).rejects.toMatchObject({ code: "interrupted" });
    expect((await trail(unit.documentId)).map((e) => e.outcome)).toEqual(["started"]);
  });

  it("commits the unit's last writes and its outcome together, or neither", async () => {
    const unit = await documentUnit();
    const runner = stages();
    const commit = (size: number, fail: boolean) =>
      runner.run({
        stage: "classify",
        unit,
        ctx: context(),
        work: (a) =>
          a.commit({ size }, async (tx) => {
            await tx.document.update({ where: { id: unit.documentId }, data: { size: BigInt(size) } });
            if (fail) throw new TransientError("db_blip", "lost the connection");
            return size > 100 ? { outcome: "skipped", details: { reason: "big" } } : undefined;
          }),
      });
    await expect(commit(7, true)).rejects.toBeInstanceOf(TransientError);
    expect((await prisma.document.findUniqueOrThrow({ where: { id: unit.documentId } })).size).toBeNull();
    await commit(7, false);
    await commit(700, false);
    expect((await prisma.document.findUniqueOrThrow({ where: { id: unit.documentId } })).size).toBe(700n);
    expect((await trail(unit.documentId)).map((e) => [e.outcome, e.errorCode, e.details])).toEqual([
      ["started", null, null],
      ["failed", "db_blip", null],
      ["started", null, null],
      ["succeeded", null, { size: 7 }],
      ["started", null, null],
      ["skipped", null, { size: 700, reason: "big" }],
    ]);
  });

  it("records pages finished inside a larger unit with their own outcomes", async () => {
    const unit = await documentUnit();
    await stages().run({
      stage: "failsafe",
      unit,
      ctx: context(4),
      details: { queue: "small" },
      cause: { errorCode: "retries_exhausted", errorMessage: "gave up" },
      work: async (a) => {
        await a.commitPage(1, { outcome: "succeeded", durationMs: 5, details: { dpi: 150 } }, async (tx) => {
          await tx.page.create({ data: { documentId: unit.documentId, pageNumber: 1, pdfKey: "p/1.pdf" } });
        });
        await a.commitPage(2, { outcome: "failed", error: { code: "corrupt_page", message: "cannot be rendered" } });
        return { outcome: "failed", error: { code: "convert_corrupt_page", message: "page 2: cannot be rendered" }, details: { pages: 2 } };
      },
    });
    expect(await prisma.page.count({ where: { documentId: unit.documentId } })).toBe(1);
    expect(await trail(unit.documentId)).toMatchObject([
      { outcome: "started", attempt: 4, pageNumber: null, errorCode: "retries_exhausted", details: { queue: "small" } },
      { outcome: "succeeded", pageNumber: 1, errorCode: null, details: { dpi: 150 } },
      { outcome: "failed", pageNumber: 2, errorCode: "corrupt_page", details: null },
      { outcome: "failed", pageNumber: null, errorCode: "convert_corrupt_page", details: { queue: "small", pages: 2 } },
    ]);
  });
});
