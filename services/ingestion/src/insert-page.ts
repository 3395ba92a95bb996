import type { Prisma } from "@docpipe/db";
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
export interface InsertedPage {
  inserted: { id: string; key: string }[];
  /** The first new key left out for lack of `room`, if any. */
  firstRefused: string | undefined;
}

/**
 * `room` caps how many new rows the page may add (the batch's size bound, the key's quota):
 * new keys are admitted in listing order, and the first one left out is returned so the
 * listing knows where it stopped.
 */
export async function insertPage(
  prisma: Prisma.TransactionClient,
  page: { batchId: string; bucket: string; workerId: string; objects: readonly ListedObject[]; room?: number },
): Promise<InsertedPage> {
  const { batchId, bucket, workerId, objects } = page;
  if (objects.length === 0) return { inserted: [], firstRefused: undefined };
  const room = page.room === undefined ? null : Math.max(0, page.room);
  const ids = objects.map(() => randomUUID());
  const keys = objects.map((o) => o.key);
  const sizes = objects.map((o) => (o.size === undefined ? null : String(o.size)));
  // Timestamps in UTC, as Prisma writes them into these `timestamp without time zone` columns.
  const rows = await prisma.$queryRaw<{ kind: "inserted" | "refused"; id: string | null; key: string }[]>`
    WITH listed AS (
      SELECT * FROM unnest(${ids}::uuid[], ${keys}::text[], ${sizes}::bigint[]) WITH ORDINALITY AS t(id, key, size, ord)
    ), fresh AS (
      SELECT l.* FROM listed l
      WHERE NOT EXISTS (SELECT 1 FROM "Document" d WHERE d."batchId" = ${batchId}::uuid AND d."bucket" = ${bucket} AND d."key" = l.key)
    ), admitted AS (
      SELECT * FROM fresh ORDER BY ord LIMIT ${room}::bigint
    ), inserted AS (
      INSERT INTO "Document" ("id", "batchId", "bucket", "key", "size", "createdAt", "updatedAt")
      SELECT id, ${batchId}::uuid, ${bucket}, key, size, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM admitted
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
    SELECT 'inserted' AS kind, id::text AS id, key FROM inserted
    UNION ALL
    (SELECT 'refused', NULL, key FROM fresh WHERE ord > (SELECT coalesce(max(ord), 0) FROM admitted) ORDER BY ord LIMIT 1)`;
  return {
    inserted: rows.filter((r) => r.kind === "inserted").map((r) => ({ id: r.id!, key: r.key })),
    firstRefused: rows.find((r) => r.kind === "refused")?.key,
  };
}
