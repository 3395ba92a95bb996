import type { Prisma, PrismaClient } from "@docpipe/db";
import type { CallerKey, QuotaPeriod } from "./keys.js";

// Quotas and the per-day metering of every key (requests, throttled requests, batches, documents).

/** Counts a request refused for its quota as throttled in the day's metering. */
export async function meterQuotaRefusal(prisma: PrismaClient, apiKeyId: string): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "throttled") VALUES (${apiKeyId}::uuid, (now() AT TIME ZONE 'UTC')::date, 1)
    ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "throttled" = u."throttled" + 1`;
}

/** Counts an accepted batch in the day's metering. */
export async function meterBatch(prisma: Prisma.TransactionClient, apiKeyId: string): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "batches") VALUES (${apiKeyId}::uuid, (now() AT TIME ZONE 'UTC')::date, 1)
    ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "batches" = u."batches" + 1`;
}

export interface QuotaStatus {
  period: QuotaPeriod;
  /** Null: the plan has no quota. */
  limit: number | null;
  used: number;
  remaining: number | null;
  periodStart: Date;
  resetsAt: Date;
}

/** The key's quota in the current UTC period (day or month). */
export async function quotaStatus(prisma: Prisma.TransactionClient, key: Pick<CallerKey, "id" | "plan">, opts: { lock?: boolean } = {}): Promise<QuotaStatus> {
  const period = key.plan.quotaPeriod;
  const [p] = await prisma.$queryRaw<{ start: Date; reset: Date }[]>`
    SELECT date_trunc(${period}, now() AT TIME ZONE 'UTC')::date AS start,
           (date_trunc(${period}, now() AT TIME ZONE 'UTC') + ${period === "day" ? "1 day" : "1 month"}::interval) AS reset`;
  const start = p!.start;
  let used: number;
  if (opts.lock) {
    // Serialises admissions of this key across processes for the rest of the transaction.
    await prisma.$executeRaw`
      INSERT INTO "QuotaCounter" ("apiKeyId", "periodStart", "used") VALUES (${key.id}::uuid, ${start}::date, 0)
      ON CONFLICT DO NOTHING`;
    const [row] = await prisma.$queryRaw<{ used: number }[]>`
      SELECT "used" FROM "QuotaCounter" WHERE "apiKeyId" = ${key.id}::uuid AND "periodStart" = ${start}::date FOR UPDATE`;
    used = row?.used ?? 0;
  } else {
    const [row] = await prisma.$queryRaw<{ used: number }[]>`
      SELECT "used" FROM "QuotaCounter" WHERE "apiKeyId" = ${key.id}::uuid AND "periodStart" = ${start}::date`;
    used = row?.used ?? 0;
  }
  const limit = key.plan.quotaDocuments;
  // `reset` is a UTC wall-clock timestamp without zone: read it as UTC.
  const resetsAt = new Date(`${(p!.reset as Date).toISOString().slice(0, 19)}Z`);
  return { period, limit, used, remaining: limit === null ? null : Math.max(0, limit - used), periodStart: start, resetsAt };
}

/** Adds admitted documents to the key's quota counter and the day's metering (inside the admitting transaction). */
export async function chargeDocuments(tx: Prisma.TransactionClient, apiKeyId: string, periodStart: Date, n: number): Promise<void> {
  if (n <= 0) return;
  await tx.$executeRaw`
    INSERT INTO "QuotaCounter" AS q ("apiKeyId", "periodStart", "used") VALUES (${apiKeyId}::uuid, ${periodStart}::date, ${n})
    ON CONFLICT ("apiKeyId", "periodStart") DO UPDATE SET "used" = q."used" + excluded."used"`;
  await tx.$executeRaw`
    INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "documents") VALUES (${apiKeyId}::uuid, (now() AT TIME ZONE 'UTC')::date, ${n})
    ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "documents" = u."documents" + excluded."documents"`;
}

export interface UsageRow {
  day: string;
  requests: number;
  throttled: number;
  batches: number;
  documents: number;
}

/** Metering of one key per UTC day, newest first. */
export async function keyUsage(prisma: PrismaClient, apiKeyId: string, days = 30): Promise<UsageRow[]> {
  const rows = await prisma.usageDaily.findMany({
    where: { apiKeyId, day: { gte: new Date(Date.now() - days * 86_400_000) } },
    orderBy: { day: "desc" },
  });
  return rows.map((r) => ({ day: r.day.toISOString().slice(0, 10), requests: r.requests, throttled: r.throttled, batches: r.batches, documents: r.documents }));
}

/** Metering of every key, per UTC day, for the CLI report. */
export async function usageReport(prisma: PrismaClient, opts: { days?: number } = {}) {
  const since = new Date(Date.now() - (opts.days ?? 30) * 86_400_000);
  const rows = await prisma.usageDaily.findMany({
    where: { day: { gte: since } },
    include: { apiKey: { select: { prefix: true, name: true, owner: true, plan: { select: { name: true } } } } },
    orderBy: [{ day: "desc" }, { apiKeyId: "asc" }],
  });
  return rows.map((r) => ({
    day: r.day.toISOString().slice(0, 10),
    keyId: r.apiKeyId,
    prefix: r.apiKey.prefix,
    name: r.apiKey.name,
    owner: r.apiKey.owner,
    plan: r.apiKey.plan.name,
    requests: r.requests,
    throttled: r.throttled,
    batches: r.batches,
    documents: r.documents,
  }));
}
