import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { PrismaClient } from "@docpipe/db";
import { uploadFile } from "@docpipe/queue";

/** A refusal a person can act on (the batch is not finished, the destination is no s3:// URL). */
export class AuditExportError extends Error {
  override readonly name = "AuditExportError";
}

export interface AuditExportResult {
  /** Records written to the object (0: nothing left to export, no object written). */
  exported: number;
  /** Records deleted from Postgres (0 without `prune`). */
  pruned: number;
  /** s3://bucket/key of the object, when one was written. */
  object?: string;
  bytes?: number;
}

/** Records read from Postgres per query (keyset on id): memory stays flat for a batch of any size. */
const PAGE = 10_000;

/** `s3://bucket/prefix` → bucket and a key prefix that ends in `/` (or is empty). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m?.[1]) throw new AuditExportError(`--to must be an s3:// URL such as s3://my-archive/docpipe/, not "${url}"`);
  const prefix = m[2] ?? "";
  return { bucket: m[1], prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/` };
}

interface Row {
  id: bigint;
  batchId: string | null;
  documentId: string | null;
  pageNumber: number | null;
  stage: string;
  outcome: string;
  workerId: string;
  attempt: number;
  durationMs: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  messageId: string | null;
  details: unknown;
  createdAt: Date;
}

/**
 * Exports a finished batch's audit records to S3 as gzipped JSON lines (one AuditEvent per
 * line, `id` as a string), and with `prune` deletes them from Postgres once the object is
 * verified: read back from S3, it holds exactly the records exported, first to last id.
 *
 * The object is `<prefix><batchId>/audit-from-<firstId>.jsonl.gz`: named by the first record it
 * holds, so a re-run before the prune (or after a failed one) writes the same object again, and
 * a re-run after the prune finds nothing to export, or only records written since (a late
 * duplicate delivery), which go to an object of their own. The prune is one DELETE of exactly
 * the exported records, which rolls back unless it deletes as many as were exported: it is all
 * or nothing, so no record is ever in neither place, nor in two objects. The batch's counters
 * and stage timings are kept apart from the trail (BatchCounter, StageTiming), so its status
 * and report are unchanged by a prune.
 */
export async function exportBatchAudit(opts: {
  prisma: PrismaClient;
  s3: S3Client;
  batchId: string;
  to: string;
  prune?: boolean;
  tmpDir?: string;
}): Promise<AuditExportResult> {
  const { prisma, s3, batchId } = opts;
  const { bucket, prefix } = parseS3Url(opts.to);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(batchId)) {
    throw new AuditExportError(`"${batchId}" is not a batch id (a UUID)`);
  }
  const batch = await prisma.batch.findUnique({ where: { id: batchId }, select: { state: true } });
  if (!batch) throw new AuditExportError(`no batch ${batchId}`);
  if (batch.state !== "completed" && batch.state !== "failed") {
    throw new AuditExportError(`batch ${batchId} is ${batch.state}: only a finished (completed or failed) batch's audit records are exported`);
  }

  const dir = await mkdtemp(join(opts.tmpDir ?? tmpdir(), "docpipe-audit-"));
  try {
    const file = join(dir, "audit.jsonl.gz");
    const written = await writeRecords(prisma, batchId, file);
    if (written.count === 0) return { exported: 0, pruned: 0 };
    const key = `${prefix}${batchId}/audit-from-${written.firstId}.jsonl.gz`;
    await uploadFile(s3, bucket, key, file, "application/gzip");
    const read = await readBack(s3, bucket, key);
    if (read.count !== written.count || read.firstId !== written.firstId || read.lastId !== written.lastId) {
      throw new Error(
        `s3://${bucket}/${key} holds ${read.count} records (${read.firstId}..${read.lastId}), ${written.count} (${written.firstId}..${written.lastId}) were written: nothing pruned`,
      );
    }
    const result: AuditExportResult = { exported: written.count, pruned: 0, object: `s3://${bucket}/${key}`, bytes: read.bytes };
    if (opts.prune) result.pruned = await prune(prisma, batchId, written);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Span {
  count: number;
  firstId: string;
  lastId: string;
}

async function writeRecords(prisma: PrismaClient, batchId: string, file: string): Promise<Span> {
  const span = { count: 0, firstId: "", lastId: "" };
  async function* lines(): AsyncGenerator<string> {
    let after = -1n;
    for (;;) {
      const rows = await prisma.$queryRaw<Row[]>`
        SELECT "id", "batchId"::text, "documentId"::text, "pageNumber", "stage", "outcome"::text, "workerId", "attempt", "durationMs",
               "errorCode", "errorMessage", "messageId", "details", "createdAt"
        FROM "AuditEvent" WHERE "batchId" = ${batchId}::uuid AND "id" > ${after} ORDER BY "id" LIMIT ${PAGE}`;
      for (const r of rows) {
        if (span.count === 0) span.firstId = r.id.toString();
        span.lastId = r.id.toString();
        span.count++;
        yield `${JSON.stringify({ ...r, id: r.id.toString() })}\n`;
      }
      if (rows.length < PAGE) break;
      after = rows[rows.length - 1]!.id;
    }
  }
  await pipeline(Readable.from(lines()), createGzip(), createWriteStream(file));
  return span;
}

/** Reads the object back from S3 and counts its records: the proof the prune waits for. */
async function readBack(s3: S3Client, bucket: string, key: string): Promise<Span & { bytes: number }> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const span = { count: 0, firstId: "", lastId: "", bytes: got.ContentLength ?? 0 };
  const gunzip = createGunzip();
  const body = got.Body as Readable;
  body.on("error", (e) => gunzip.destroy(e));
  const count = (line: string) => {
    const { id } = JSON.parse(line) as { id: string };
    if (span.count === 0) span.firstId = id;
    span.lastId = id;
    span.count++;
  };
  // Split on "\n" alone: readline also splits on U+2028 and U+2029, which JSON strings may hold as they are.
  let rest = "";
  for await (const chunk of body.pipe(gunzip).setEncoding("utf8") as AsyncIterable<string>) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const line of parts) count(line);
  }
  if (rest !== "") count(rest);
  return span;
}

/**
 * Deletes exactly the exported records, all or none: the batch's records from the first id to the
 * last, which must be as many as were exported (a record committed inside the range after the
 * export read it, say by a late delivery, makes the counts differ: then nothing is deleted, and a
 * re-run exports the range again, with it, to the same object).
 */
async function prune(prisma: PrismaClient, batchId: string, written: Span): Promise<number> {
  return prisma.$transaction(
    async (tx) => {
      const deleted = await tx.$executeRaw`
        DELETE FROM "AuditEvent" WHERE "batchId" = ${batchId}::uuid AND "id" BETWEEN ${BigInt(written.firstId)} AND ${BigInt(written.lastId)}`;
      if (deleted !== written.count) {
        throw new Error(`the prune would delete ${deleted} records, ${written.count} were exported: rolled back, nothing pruned`);
      }
      return deleted;
    },
    { timeout: 30 * 60_000, maxWait: 60_000 },
  );
}
