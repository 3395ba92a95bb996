import { createHash } from "node:crypto";
import type { Prisma, PrismaClient } from "@docpipe/db";
import { HttpError } from "./errors.js";

/** How long an Idempotency-Key answers with the batch its first request created. */
export const IDEMPOTENCY_TTL_HOURS = 24;

const expired = (): Date => new Date(Date.now() - IDEMPOTENCY_TTL_HOURS * 3_600_000);

/** A request's Idempotency-Key and what its body was. */
export interface Idempotency {
  key: string;
  /** Hex SHA-256 of the body, its keys sorted: the same request whatever the key order or spacing. */
  requestHash: string;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

export function idempotencyOf(key: string | undefined, body: unknown): Idempotency | undefined {
  if (key === undefined) return undefined;
  return { key, requestHash: createHash("sha256").update(JSON.stringify(canonical(body))).digest("hex") };
}

/** 422: the key was used, within 24 hours, for a request with another body. */
export class IdempotencyKeyReused extends HttpError {
  override readonly name = "IdempotencyKeyReused";
  constructor(key: string, batchId: string) {
    super(
      422,
      "idempotency_key_reused",
      `Idempotency-Key ${JSON.stringify(key)} was used in the last ${IDEMPOTENCY_TTL_HOURS} hours for another request (batch ${batchId}); send a new key for a new batch`,
      { batchId },
    );
  }
}

/**
 * The batch an earlier request with this key and API key created (within 24 hours), if any.
 * Throws {@link IdempotencyKeyReused} when that request had another body.
 */
export async function earlierBatch(prisma: PrismaClient, apiKeyId: string, i: Idempotency): Promise<string | undefined> {
  const row = await prisma.idempotencyKey.findUnique({ where: { apiKeyId_key: { apiKeyId, key: i.key } } });
  if (!row || row.createdAt < expired()) return undefined;
  if (row.requestHash !== i.requestHash) throw new IdempotencyKeyReused(i.key, row.batchId);
  return row.batchId;
}

/** Raised inside the batch's transaction when a concurrent request with the same key stored it first: the transaction rolls back. */
export class IdempotencyRace extends Error {
  override readonly name = "IdempotencyRace";
}

/**
 * Stores the key with the batch, in the batch's transaction. A concurrent request with the same
 * key waits on the key's row until the first commits, then finds it taken ({@link IdempotencyRace}:
 * its batch is rolled back and it answers with the first). An expired key is taken over. The API
 * key's expired keys are removed on the way.
 */
export async function rememberKey(tx: Prisma.TransactionClient, apiKeyId: string, i: Idempotency, batchId: string): Promise<void> {
  const before = expired();
  await tx.idempotencyKey.deleteMany({ where: { apiKeyId, createdAt: { lt: before } } });
  const stored = await tx.$executeRaw`
    INSERT INTO "IdempotencyKey" ("apiKeyId", "key", "requestHash", "batchId", "createdAt")
    VALUES (${apiKeyId}::uuid, ${i.key}, ${i.requestHash}, ${batchId}::uuid, now() AT TIME ZONE 'UTC')
    ON CONFLICT ("apiKeyId", "key") DO NOTHING`;
  if (stored === 0) throw new IdempotencyRace(`Idempotency-Key ${i.key} was stored by a concurrent request`);
}
