import type { PrismaClient } from "@docpipe/db";
import { randomUUID } from "node:crypto";

export interface ListedObject {
  key: string;
  size: number | undefined;
}

/**
 * Inserts a page of listed PDFs as Document rows, writes the first audit record of each new
 * one and adds them to the batch's documentCount, all in one statement (so one transaction
 * and one round trip). Keys the batch already has are skipped (unique on batch, bucket, key),
 * so a page listed again after a crash adds nothing. Returns the rows it inserted.
 *
 * One statement with array parameters instead of Prisma's createManyAndReturn + createMany:
 * the same rows at a fraction of the cost (a thousand rows are three parameters, not six
 * thousand), which is what listing a million objects spends most of its time on.
 */
export async function insertPage(
  prisma: PrismaClient,
  page: { batchId: string; bucket: string; workerId: string; objects: readonly ListedObject[] },
): Promise<{ id: string; key: string }[]> {
  const { batchId, bucket, workerId, objects } = page;
  if (objects.length === 0) return [];
  const ids = objects.map(() => randomUUID());
  const keys = objects.map((o) => o.key);
  const sizes = objects.map((o) => (o.size === undefined ? null : String(o.size)));
  // Timestamps in UTC, as Prisma writes them into these `timestamp without time zone` columns.
  return prisma.$queryRaw<{ id: string; key: string }[]>`
    WITH listed AS (
      SELECT * FROM unnest(${ids}::uuid[], ${keys}::text[], ${sizes}::bigint[]) AS t(id, key, size)
    ), inserted AS (
      INSERT INTO "Document" ("id", "batchId", "bucket", "key", "size", "createdAt", "updatedAt")
      SELECT id, ${batchId}::uuid, ${bucket}, key, size, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM listed
      ON CONFLICT ("batchId", "bucket", "key") DO NOTHING
      RETURNING "id", "key", "size"
    ), audited AS (
      INSERT INTO "AuditEvent" ("batchId", "documentId", "stage", "outcome", "workerId", "details", "createdAt")
      SELECT ${batchId}::uuid, id, 'ingestion', 'succeeded'::"AuditOutcome", ${workerId},
             jsonb_build_object('event', 'listed', 'bucket', ${bucket}::text, 'key', key, 'size', size),
             now() AT TIME ZONE 'UTC'
      FROM inserted
    ), counted AS (
      UPDATE "Batch"
      SET "documentCount" = "documentCount" + (SELECT count(*) FROM inserted), "updatedAt" = now() AT TIME ZONE 'UTC'
      WHERE "id" = ${batchId}::uuid
    )
    SELECT id::text AS id, key FROM inserted`;
}
