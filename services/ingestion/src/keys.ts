import type { Prisma, PrismaClient } from "@docpipe/db";
import { createHash, randomBytes } from "node:crypto";
import { bucketNameProblem } from "./schemas.js";

/**
 * API keys, usage plans and the counters behind them, shared by the HTTP API (authentication,
 * throttling, quota, metering) and the CLI (`docpipe keys ...`, `docpipe usage`): one
 * implementation, both talking to the same tables.
 *
 * A key is `dp_<8 hex>_<43 base64url>`: the first part (`prefix`) is not secret and names the
 * key in lists and logs; the rest is 256 bits from the CSPRNG. Only the SHA-256 of the whole
 * key is stored. A fast unsalted hash is enough here because the secret is random and
 * 256 bits long: nobody can guess or brute-force it whatever the hash costs, and no two keys
 * share a value a salt would have to separate. bcrypt/scrypt exist to slow down guessing of
 * low-entropy passwords; on a key checked on every request they would only cost tens of ms of
 * CPU per call and rule out the indexed lookup by hash.
 */

export type QuotaPeriod = "day" | "month";

/** What the API needs to know about the caller of a request. */
export interface CallerKey {
  id: string;
  prefix: string;
  name: string;
  owner: string;
  allowedBuckets: string[];
  allowedPrefixes: string[];
  plan: { name: string; ratePerSecond: number; burst: number; quotaDocuments: number | null; quotaPeriod: QuotaPeriod };
}

export class KeyManagementError extends Error {
  override readonly name = "KeyManagementError";
  constructor(
    readonly code: "plan_not_found" | "key_not_found" | "invalid_allow_list" | "invalid_plan",
    message: string,
  ) {
    super(message);
  }
}

export const hashKey = (key: string): string => createHash("sha256").update(key, "utf8").digest("hex");

/** A new key: the secret (shown once), its non-secret prefix and the hash that is stored. */
export function generateKey(): { key: string; prefix: string; hash: string } {
  const prefix = `dp_${randomBytes(4).toString("hex")}`;
  const key = `${prefix}_${randomBytes(32).toString("base64url")}`;
  return { key, prefix, hash: hashKey(key) };
}

const isUniqueViolation = (e: unknown): boolean => (e as { code?: unknown }).code === "P2002";

/** Prefixes are 32 random bits: a collision is rare, and answered by drawing again. */
async function withFreshKey<T>(fn: (k: { key: string; prefix: string; hash: string }) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(generateKey());
    } catch (e) {
      if (!isUniqueViolation(e) || attempt >= 5) throw e;
    }
  }
}

function checkAllowList(buckets: readonly string[], prefixes: readonly string[]): void {
  if (buckets.length === 0) throw new KeyManagementError("invalid_allow_list", "a key needs at least one bucket (or * for any bucket)");
  for (const b of buckets) {
    const problem = b === "*" ? undefined : bucketNameProblem(b);
    if (problem) throw new KeyManagementError("invalid_allow_list", `invalid S3 bucket name ${b}: ${problem}`);
  }
  for (const p of prefixes) {
    if (p.startsWith("/")) throw new KeyManagementError("invalid_allow_list", `prefix ${p} must not start with /`);
  }
}

export interface CreatePlanInput {
  name: string;
  ratePerSecond: number;
  burst: number;
  /** Documents per period; null for no quota. */
  quotaDocuments: number | null;
  quotaPeriod: QuotaPeriod;
}

/** Creates a usage plan, or updates the plan of that name (keys on it pick the change up on their next request). */
export async function upsertPlan(prisma: PrismaClient, input: CreatePlanInput) {
  if (!(input.ratePerSecond > 0)) throw new KeyManagementError("invalid_plan", "rate must be above 0 per second");
  if (!Number.isInteger(input.burst) || input.burst < 1) throw new KeyManagementError("invalid_plan", "burst must be a whole number ≥ 1");
  if (input.quotaDocuments !== null && (!Number.isInteger(input.quotaDocuments) || input.quotaDocuments < 0)) {
    throw new KeyManagementError("invalid_plan", "quota must be a whole number ≥ 0");
  }
  const { name, ...rest } = input;
  return prisma.usagePlan.upsert({ where: { name }, create: input, update: rest });
}

export function listPlans(prisma: PrismaClient) {
  return prisma.usagePlan.findMany({ orderBy: { name: "asc" } });
}

export interface CreateKeyInput {
  name: string;
  owner: string;
  /** The usage plan's name. */
  plan: string;
  buckets: string[];
  /** Empty: any prefix of the allowed buckets. */
  prefixes?: string[];
}

export interface CreatedKey {
  id: string;
  /** The secret: shown once, never stored. */
  key: string;
  prefix: string;
  name: string;
  owner: string;
  plan: string;
}

export async function createApiKey(prisma: PrismaClient, input: CreateKeyInput): Promise<CreatedKey> {
  const prefixes = input.prefixes ?? [];
  checkAllowList(input.buckets, prefixes);
  if (!input.name.trim() || !input.owner.trim()) throw new KeyManagementError("invalid_allow_list", "a key needs a name and an owner");
  const plan = await prisma.usagePlan.findUnique({ where: { name: input.plan } });
  if (!plan) throw new KeyManagementError("plan_not_found", `no usage plan named ${input.plan}`);
  return withFreshKey(async ({ key, prefix, hash }) => {
    const row = await prisma.apiKey.create({
      data: {
        prefix,
        hash,
        name: input.name,
        owner: input.owner,
        planId: plan.id,
        allowedBuckets: input.buckets,
        allowedPrefixes: prefixes,
      },
    });
    return { id: row.id, key, prefix, name: row.name, owner: row.owner, plan: plan.name };
  });
}

/** A key by id (UUID) or by its prefix (`dp_xxxxxxxx`). */
async function findKey(prisma: PrismaClient, idOrPrefix: string) {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrPrefix);
  const row = await prisma.apiKey.findUnique({ where: isUuid ? { id: idOrPrefix } : { prefix: idOrPrefix } });
  if (!row) throw new KeyManagementError("key_not_found", `no API key ${idOrPrefix}`);
  return row;
}

export async function listApiKeys(prisma: PrismaClient) {
  const rows = await prisma.apiKey.findMany({ include: { plan: { select: { name: true } } }, orderBy: [{ owner: "asc" }, { createdAt: "asc" }] });
  return rows.map((k) => ({
    id: k.id,
    prefix: k.prefix,
    name: k.name,
    owner: k.owner,
    plan: k.plan.name,
    allowedBuckets: k.allowedBuckets,
    allowedPrefixes: k.allowedPrefixes,
    enabled: k.enabled,
    createdAt: k.createdAt,
    lastUsedAt: k.lastUsedAt,
    rotatedAt: k.rotatedAt,
    previousPrefix: k.previousExpiresAt && k.previousExpiresAt > new Date() ? k.previousPrefix : null,
    previousExpiresAt: k.previousExpiresAt && k.previousExpiresAt > new Date() ? k.previousExpiresAt : null,
  }));
}

/** Disables a key at once (both its current and any previous secret); its batches keep running. */
export async function disableApiKey(prisma: PrismaClient, idOrPrefix: string): Promise<{ id: string; prefix: string }> {
  const row = await findKey(prisma, idOrPrefix);
  await prisma.apiKey.update({ where: { id: row.id }, data: { enabled: false, disabledAt: new Date() } });
  return { id: row.id, prefix: row.prefix };
}

/**
 * A new secret for the same key: same id, owner, plan, allow-list, token bucket, quota and
 * metering (rotating must not reset a quota). The old secret keeps working for `graceSeconds`
 * so callers can be redeployed with the new one; 0 cuts it off at once.
 */
export async function rotateApiKey(
  prisma: PrismaClient,
  idOrPrefix: string,
  opts: { graceSeconds?: number } = {},
): Promise<CreatedKey & { previousPrefix: string; previousExpiresAt: Date }> {
  const row = await findKey(prisma, idOrPrefix);
  const graceSeconds = Math.max(0, opts.graceSeconds ?? 86_400);
  const previousExpiresAt = new Date(Date.now() + graceSeconds * 1000);
  return withFreshKey(async ({ key, prefix, hash }) => {
    const updated = await prisma.apiKey.update({
      where: { id: row.id },
      data: {
        prefix,
        hash,
        // Kept even without grace, so the old secret gets a 403 that says why rather than a 401.
        previousHash: row.hash,
        previousPrefix: row.prefix,
        previousExpiresAt,
        rotatedAt: new Date(),
      },
      include: { plan: { select: { name: true } } },
    });
    return {
      id: updated.id,
      key,
      prefix,
      name: updated.name,
      owner: updated.owner,
      plan: updated.plan.name,
      previousPrefix: row.prefix,
      previousExpiresAt,
    };
  });
}

export type AuthResult =
  | { ok: true; key: CallerKey }
  | { ok: false; status: 401 | 403; code: "api_key_unknown" | "api_key_disabled" | "api_key_expired"; message: string };

/** Why `bucket` and `prefixes` are outside the key's allow-list, or undefined when they are inside. */
export function allowListProblem(key: Pick<CallerKey, "allowedBuckets" | "allowedPrefixes" | "prefix">, bucket: string, prefixes: readonly string[]) {
  if (!key.allowedBuckets.includes("*") && !key.allowedBuckets.includes(bucket)) {
    return { code: "bucket_not_allowed", message: `API key ${key.prefix} may not submit bucket ${bucket}`, details: { bucket, allowedBuckets: key.allowedBuckets } };
  }
  if (key.allowedPrefixes.length === 0) return undefined;
  const outside = prefixes.filter((p) => !key.allowedPrefixes.some((a) => p.startsWith(a)));
  if (outside.length === 0) return undefined;
  return {
    code: "prefix_not_allowed",
    message: `API key ${key.prefix} may not submit ${outside.map((p) => `"${p}"`).join(", ")} in bucket ${bucket}`,
    details: { bucket, prefixes: outside, allowedPrefixes: key.allowedPrefixes },
  };
}

export interface RateDecision {
  allowed: boolean;
  /** Tokens left after this request. */
  tokens: number;
  /** When not allowed: how long until one token is back, in ms. */
  retryAfterMs: number;
}

/**
 * Authenticates a presented key and takes one token from its bucket, in one SQL statement (one
 * round trip per request): the key is found by the SHA-256 of the secret; if it is usable
 * (enabled, and the current secret or a previous one within its grace period) its token
 * bucket row is refilled from the stored timestamp and charged, and the request is metered.
 * Several processes share the bucket without a race: the row lock serialises concurrent
 * requests, and the refill uses the database's clock (clock_timestamp(), not now(): under
 * contention a statement that waited for the lock would otherwise refill from a time before
 * the previous holder's). The same statement decides whether the request passes and, if not,
 * when one token will be back. Unknown → 401; disabled or an expired old secret → 403.
 */
export async function admitRequest(prisma: PrismaClient, presented: string): Promise<{ auth: AuthResult; rate?: RateDecision }> {
  const hash = hashKey(presented);
  const rows = await prisma.$queryRaw<
    {
      id: string;
      prefix: string;
      previousPrefix: string | null;
      hash: string;
      name: string;
      owner: string;
      allowedBuckets: string[];
      allowedPrefixes: string[];
      enabled: boolean;
      usable: boolean;
      planName: string;
      ratePerSecond: number;
      burst: number;
      quotaDocuments: number | null;
      quotaPeriod: QuotaPeriod;
      tokens: number | null;
      allowed: boolean | null;
      retryMs: number | null;
    }[]
  >`
    WITH k AS (
      SELECT k."id", k."prefix", k."previousPrefix", k."hash", k."name", k."owner", k."allowedBuckets", k."allowedPrefixes",
             k."enabled", p."name" AS "planName", p."ratePerSecond", p."burst", p."quotaDocuments", p."quotaPeriod"::text AS "quotaPeriod",
             (k."enabled" AND (k."hash" = ${hash} OR k."previousExpiresAt" > now() AT TIME ZONE 'UTC')) AS "usable"
      FROM "ApiKey" k JOIN "UsagePlan" p ON p."id" = k."planId"
      WHERE k."hash" = ${hash} OR k."previousHash" = ${hash}
      LIMIT 1
    ), bucket AS (
      INSERT INTO "RateBucket" AS b ("apiKeyId", "tokens", "lastAllowed", "updatedAt")
      SELECT "id", "burst"::float8 - 1, true, clock_timestamp() FROM k WHERE "usable"
      ON CONFLICT ("apiKeyId") DO UPDATE SET ("tokens", "lastAllowed", "updatedAt") = (
        SELECT CASE WHEN avail >= 1 THEN avail - 1 ELSE avail END, avail >= 1, greatest(b."updatedAt", t)
        FROM (
          SELECT least((SELECT "burst" FROM k)::float8,
                       b."tokens" + (SELECT "ratePerSecond" FROM k) * greatest(0, extract(epoch FROM t - b."updatedAt"))::float8) AS avail, t
          FROM (SELECT clock_timestamp() AS t) c
        ) r
      )
      RETURNING "tokens", "lastAllowed"
    ), metered AS (
      INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "requests", "throttled")
      SELECT (SELECT "id" FROM k), (now() AT TIME ZONE 'UTC')::date, 1, CASE WHEN "lastAllowed" THEN 0 ELSE 1 END FROM bucket
      ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "requests" = u."requests" + 1, "throttled" = u."throttled" + excluded."throttled"
    ), touched AS (
      UPDATE "ApiKey" SET "lastUsedAt" = now() AT TIME ZONE 'UTC'
      WHERE "id" = (SELECT "id" FROM k WHERE "usable")
        AND ("lastUsedAt" IS NULL OR "lastUsedAt" < now() AT TIME ZONE 'UTC' - interval '10 seconds')
    )
    SELECT k.*, bucket."tokens", bucket."lastAllowed" AS "allowed",
           CASE WHEN bucket."lastAllowed" THEN NULL ELSE ceil(1000 * (1 - bucket."tokens") / k."ratePerSecond")::float8 END AS "retryMs"
    FROM k LEFT JOIN bucket ON true`;
  const row = rows[0];
  if (!row) return { auth: { ok: false, status: 401, code: "api_key_unknown", message: "this API key is not known" } };
  if (!row.enabled) return { auth: { ok: false, status: 403, code: "api_key_disabled", message: `API key ${row.prefix} is disabled` } };
  if (!row.usable) {
    return {
      auth: {
        ok: false,
        status: 403,
        code: "api_key_expired",
        message: `this secret of API key ${row.previousPrefix ?? row.prefix} was rotated and its grace period is over; use the new one`,
      },
    };
  }
  const key: CallerKey = {
    id: row.id,
    prefix: row.hash === hash ? row.prefix : (row.previousPrefix ?? row.prefix),
    name: row.name,
    owner: row.owner,
    allowedBuckets: row.allowedBuckets,
    allowedPrefixes: row.allowedPrefixes,
    plan: { name: row.planName, ratePerSecond: row.ratePerSecond, burst: row.burst, quotaDocuments: row.quotaDocuments, quotaPeriod: row.quotaPeriod },
  };
  const allowed = row.allowed === true;
  return {
    auth: { ok: true, key },
    rate: { allowed, tokens: row.tokens ?? 0, retryAfterMs: allowed ? 0 : Math.max(1, Number(row.retryMs)) },
  };
}

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
