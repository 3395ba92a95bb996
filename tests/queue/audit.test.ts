import { randomUUID } from "node:crypto";
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { start, type LocalStack } from "@docpipe/local-stack";
import { AuditWriter, TransientError } from "@docpipe/queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let stack: LocalStack;
let prisma: PrismaClient;

beforeAll(async () => {
  stack = await start({ name: "queue-audit" });
  prisma = createPrisma({ databaseUrl: await stack.createDatabase() });
});

afterAll(async () => {
  await prisma?.$disconnect();
  await stack?.stop();
});

describe("AuditWriter", () => {
  it("stores one row per record with every field, and flush waits for unawaited ones", async () => {
    const batch = await prisma.batch.create({ data: { bucket: "staging", prefixes: ["in/"] } });
    const doc = await prisma.document.create({ data: { batchId: batch.id, bucket: "staging", key: "in/a.pdf" } });
    const audit = new AuditWriter({ prisma, workerId: "splitter/test" });

    await audit.record({ stage: "split-small", outcome: "started", batchId: batch.id, documentId: doc.id, attempt: 2, messageId: "m-1" });
    void audit.record({
      stage: "split-small",
      outcome: "failed",
      batchId: batch.id,
      documentId: doc.id,
      pageNumber: 4,
      attempt: 2,
      durationMs: 12.6,
      errorCode: "corrupt",
      errorMessage: "x".repeat(5_000),
      messageId: "m-1",
      details: { chunk: "1-10" },
    });
    await audit.flush();

    const rows = await prisma.auditEvent.findMany({ where: { documentId: doc.id }, orderBy: { id: "asc" } });
    expect(rows.map((r) => r.outcome)).toEqual(["started", "failed"]);
    expect(rows[0]).toMatchObject({ stage: "split-small", workerId: "splitter/test", attempt: 2, batchId: batch.id, messageId: "m-1" });
    expect(rows[1]).toMatchObject({ pageNumber: 4, durationMs: 13, errorCode: "corrupt", details: { chunk: "1-10" } });
    expect(rows[1]!.errorMessage).toHaveLength(2_000);
  });

  it("records a redelivery of finished work as succeeded when the attempt that did it died before saying so", async () => {
    const batch = await prisma.batch.create({ data: { bucket: "staging", prefixes: ["in/"] } });
    const doc = await prisma.document.create({ data: { batchId: batch.id, bucket: "staging", key: "in/late.pdf" } });
    const audit = new AuditWriter({ prisma, workerId: "page-converter/test" });
    const ids = { batchId: batch.id, documentId: doc.id };
    // Page 1: the first attempt was killed after its work, before its record. Page 2: it recorded.
    await audit.record({ stage: "convert", outcome: "started", ...ids, pageNumber: 1, attempt: 1 });
    await audit.record({ stage: "convert", outcome: "succeeded", ...ids, pageNumber: 2, attempt: 1 });

    expect(await audit.recordAlreadyDone({ stage: "convert", ...ids, pageNumber: 1, attempt: 2, details: { reason: "page already done" } })).toBe("succeeded");
    expect(await audit.recordAlreadyDone({ stage: "convert", ...ids, pageNumber: 1, attempt: 3 })).toBe("skipped");
    expect(await audit.recordAlreadyDone({ stage: "convert", ...ids, pageNumber: 2, attempt: 2 })).toBe("skipped");

    const rows = await prisma.auditEvent.findMany({ where: { documentId: doc.id }, orderBy: { id: "asc" } });
    expect(rows.map((r) => `${r.pageNumber} ${r.outcome} ${r.attempt} ${JSON.stringify(r.details)}`)).toEqual([
      "1 started 1 null",
      "2 succeeded 1 null",
      '1 succeeded 2 {"reason":"page already done","recordedLate":true}',
      "1 skipped 3 {}",
      "2 skipped 2 {}",
    ]);
  });

  it("keeps a record whose document does not exist, moving the ids into details", async () => {
    const audit = new AuditWriter({ prisma, workerId: "orchestrator/test" });
    const documentId = randomUUID();
    const batchId = randomUUID();
    await audit.record({ stage: "classify", outcome: "dead_lettered", batchId, documentId, errorCode: "invalid_message", messageId: "m-2" });

    const row = await prisma.auditEvent.findFirstOrThrow({ where: { messageId: "m-2" } });
    expect(row).toMatchObject({ documentId: null, batchId: null, outcome: "dead_lettered", attempt: 1 });
    expect(row.details).toEqual({ unknownBatchId: batchId, unknownDocumentId: documentId });
  });

  it("fails with a transient error when the database is unreachable", async () => {
    const down = createPrisma({ databaseUrl: "postgres://docpipe@127.0.0.1:1/none" });
    try {
      const audit = new AuditWriter({ prisma: down, workerId: "w" });
      const err = await audit.record({ stage: "convert", outcome: "started" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ code: "audit_write_failed" });
    } finally {
      await down.$disconnect();
    }
  });
});
