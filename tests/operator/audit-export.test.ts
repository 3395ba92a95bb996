import { gunzipSync } from "node:zlib";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { execute } from "@docpipe/cli";
import { readStageStats, type PrismaClient } from "@docpipe/db";
import { expect, test } from "../fixtures/index.js";

async function batchWithTrail(prisma: PrismaClient, records: number) {
  const batch = await prisma.batch.create({ data: { bucket: "staging", prefixes: ["in/"], state: "processing" } });
  const doc = await prisma.document.create({ data: { batchId: batch.id, bucket: "staging", key: "in/a.pdf", pageCount: 1, state: "done" } });
  await prisma.auditEvent.createMany({
    data: Array.from({ length: records }, (_, i) => ({
      batchId: batch.id,
      documentId: doc.id,
      pageNumber: 1,
      stage: "convert",
      outcome: i % 2 === 0 ? ("started" as const) : ("succeeded" as const),
      workerId: "w",
      durationMs: i % 2 === 0 ? null : 10 + i,
      details: { i, note: "ünïcode \u2028 line" },
    })),
  });
  return { batch, doc };
}

test("a finished batch's audit records go to S3 as JSON lines, verified, then pruned; a re-run is harmless", async ({ stack, prisma, env }) => {
  const { batch } = await batchWithTrail(prisma, 25);
  const other = await batchWithTrail(prisma, 3);
  const bucket = stack.stagingBucket;
  const run = async (...args: string[]) => {
    let out = "";
    let err = "";
    const code = await execute(["audit", "export", ...args], {
      env,
      stdout: { write: (s: string) => ((out += s), true) } as NodeJS.WriteStream,
      stderr: { write: (s: string) => ((err += s), true) } as NodeJS.WriteStream,
    });
    return { code, out, err };
  };
  const objects = async () =>
    ((await stack.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `archive/${batch.id}/` }))).Contents ?? []).map((o) => o.Key!).sort();
  const lines = async (key: string) => {
    const got = await stack.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return gunzipSync(await got.Body!.transformToByteArray()).toString("utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  const trail = () => prisma.auditEvent.findMany({ where: { batchId: batch.id }, orderBy: { id: "asc" } });

  // Not finished: refused, nothing written or deleted.
  const refused = await run(batch.id, "--to", `s3://${bucket}/archive/`, "--prune");
  expect(refused.code).toBe(2);
  expect(refused.err).toContain("only a finished");
  expect(await objects()).toEqual([]);
  expect(await prisma.auditEvent.count({ where: { batchId: batch.id } })).toBe(25);

  await prisma.batch.update({ where: { id: batch.id }, data: { state: "completed" } });
  const before = await trail();
  const stats = await readStageStats(prisma, batch.id);

  // Export only: the object holds every record as it is in Postgres, and they stay.
  const exported = await run(batch.id, "--to", `s3://${bucket}/archive`);
  expect(exported.code).toBe(0);
  const key = `archive/${batch.id}/audit-from-${before[0]!.id}.jsonl.gz`;
  expect(exported.out).toContain(`exported 25 audit records`);
  expect(await objects()).toEqual([key]);
  const written = await lines(key);
  expect(written.map((r) => r.id)).toEqual(before.map((r) => r.id.toString()));
  expect(written[1]).toMatchObject({ batchId: batch.id, stage: "convert", outcome: "succeeded", durationMs: 11, details: { i: 1, note: "ünïcode \u2028 line" } });
  expect(await prisma.auditEvent.count({ where: { batchId: batch.id } })).toBe(25);

  // With --prune: the same object again, then the records are gone; the other batch's stay, and the report's stage timings are unchanged.
  const pruned = await run(batch.id, "--to", `s3://${bucket}/archive/`, "--prune");
  expect(pruned.code).toBe(0);
  expect(pruned.out).toContain("pruned 25 audit records");
  expect(await objects()).toEqual([key]);
  expect((await lines(key)).length).toBe(25);
  expect(await prisma.auditEvent.count({ where: { batchId: batch.id } })).toBe(0);
  expect(await prisma.auditEvent.count({ where: { batchId: other.batch.id } })).toBe(3);
  expect(await readStageStats(prisma, batch.id)).toEqual(stats);

  // Again: nothing to do, nothing lost.
  const again = await run(batch.id, "--to", `s3://${bucket}/archive/`, "--prune");
  expect(again.code).toBe(0);
  expect(again.out).toContain("no audit records left to export");
  expect(await objects()).toEqual([key]);

  // A record written after the prune (a late duplicate delivery) goes to an object of its own.
  const late = await prisma.auditEvent.create({ data: { batchId: batch.id, stage: "convert", outcome: "skipped", workerId: "w" } });
  expect((await run(batch.id, "--to", `s3://${bucket}/archive/`, "--prune")).out).toContain("exported 1 audit records");
  const lateKey = `archive/${batch.id}/audit-from-${late.id}.jsonl.gz`;
  expect(await objects()).toEqual([key, lateKey].sort());
  expect((await lines(lateKey)).map((r) => r.outcome)).toEqual(["skipped"]);
  expect(await prisma.auditEvent.count({ where: { batchId: batch.id } })).toBe(0);

  // A destination that is no s3:// URL is a usage error.
  expect((await run(batch.id, "--to", "/tmp/archive")).code).toBe(2);
});
