import { Prisma, type PrismaClient } from "@docpipe/db";
import { hashKey, type CallerKey, type QuotaPeriod } from "./keys.js";

export type AuthResult =
  | { ok: true; key: CallerKey }
  | { ok: false; status: 401 | 403; code: "api_key_unknown" | "api_key_disabled" | "api_key_expired"; message: string };

/**
 * Whether a batch prefix lies inside an allowed prefix. Allowed prefixes are folders: `team-a`
 * and `team-a/` both allow `team-a/` and every key below it, never `team-ab/` (which plain
 * `startsWith` would let through) nor the bare `team-a` (whose listing would reach `team-ab/`
 * too). An empty allowed prefix is the whole bucket.
 */
export function prefixWithin(prefix: string, allowed: string): boolean {
  if (allowed === "") return true;
  return prefix.startsWith(allowed.endsWith("/") ? allowed : `${allowed}/`);
}

/** Why `bucket` and `prefixes` are outside the key's allow-list, or undefined when they are inside. */
export function allowListProblem(key: Pick<CallerKey, "allowedBuckets" | "allowedPrefixes" | "prefix">, bucket: string, prefixes: readonly string[]) {
  if (!key.allowedBuckets.includes("*") && !key.allowedBuckets.includes(bucket)) {
    return { code: "bucket_not_allowed", message: `API key ${key.prefix} may not submit bucket ${bucket}`, details: { bucket, allowedBuckets: key.allowedBuckets } };
  }
  if (key.allowedPrefixes.length === 0) return undefined;
  const outside = prefixes.filter((p) => !key.allowedPrefixes.some((a) => prefixWithin(p, a)));
  if (outside.length === 0) return undefined;
  const folders = key.allowedPrefixes.map((a) => (a.endsWith("/") ? a : `${a}/`));
  return {
    code: "prefix_not_allowed",
    message:
      `API key ${key.prefix} may not submit ${outside.map((p) => JSON.stringify(p)).join(", ")} in bucket ${bucket}: ` +
      `its prefixes are folders, so a batch prefix must start with ${folders.map((f) => JSON.stringify(f)).join(" or ")}`,
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

/** The columns `tokenStatement` needs of the key it charges (its `k` CTE). */
type KeyRow = { id: string; usable: boolean } & Record<string, unknown>;

/**
 * One statement: the key (`k`, at most one row with "id", "burst", "ratePerSecond", "usable"),
 * its token bucket refilled from the stored timestamp and charged when usable, the request
 * metered, `lastUsedAt` touched (at most every 10 s); answers `k`'s columns with the decision.
 * Several processes share the bucket without a race: the row lock serialises concurrent
 * requests, and the refill uses the database's clock (clock_timestamp(), not now(): under
 * contention a statement that waited for the lock would otherwise refill from a time before
 * the previous holder's).
 */
function tokenStatement<R extends KeyRow>(prisma: PrismaClient, k: Prisma.Sql) {
  return prisma.$queryRaw<(R & { tokens: number | null; allowed: boolean | null; retryMs: number | null })[]>`
    WITH k AS (${k}), bucket AS (
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
}

const rateDecision = (row: { tokens: number | null; allowed: boolean | null; retryMs: number | null }): RateDecision => {
  const allowed = row.allowed === true;
  return { allowed, tokens: row.tokens ?? 0, retryAfterMs: allowed ? 0 : Math.max(1, Number(row.retryMs)) };
};

/** A key authenticated by its hash, with what a cache of it needs: until when this secret stays usable. */
export interface Admitted {
  auth: AuthResult;
  rate?: RateDecision;
  /** For a usable key: the end of the rotated secret's grace period when the presented secret is the previous one. */
  usableUntil?: Date | null;
}

/**
 * Authenticates a presented key and takes one token from its bucket, in one SQL statement (one
 * round trip per request): the key is found by the SHA-256 of the secret; if it is usable
 * (enabled, and the current secret or a previous one within its grace period) its token
 * bucket row is refilled and charged, and the request is metered (see tokenStatement).
 * Unknown → 401; disabled or an expired old secret → 403.
 */
export async function admitRequest(prisma: PrismaClient, presented: string): Promise<Admitted> {
  const hash = hashKey(presented);
  const rows = await tokenStatement<{
    id: string;
    prefix: string;
    previousPrefix: string | null;
    previousExpiresAt: Date | null;
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
    quotaPages: number | null;
    quotaPeriod: QuotaPeriod;
  }>(
    prisma,
    Prisma.sql`
      SELECT k."id", k."prefix", k."previousPrefix", k."previousExpiresAt", k."hash", k."name", k."owner", k."allowedBuckets", k."allowedPrefixes",
             k."enabled", p."name" AS "planName", p."ratePerSecond", p."burst", p."quotaDocuments", p."quotaPages", p."quotaPeriod"::text AS "quotaPeriod",
             (k."enabled" AND (k."hash" = ${hash} OR k."previousExpiresAt" > now() AT TIME ZONE 'UTC')) AS "usable"
      FROM "ApiKey" k JOIN "UsagePlan" p ON p."id" = k."planId"
      WHERE k."hash" = ${hash} OR k."previousHash" = ${hash}
      LIMIT 1`,
  );
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
  const current = row.hash === hash;
  const key: CallerKey = {
    id: row.id,
    prefix: current ? row.prefix : (row.previousPrefix ?? row.prefix),
    name: row.name,
    owner: row.owner,
    allowedBuckets: row.allowedBuckets,
    allowedPrefixes: row.allowedPrefixes,
    plan: { name: row.planName, ratePerSecond: row.ratePerSecond, burst: row.burst, quotaDocuments: row.quotaDocuments, quotaPages: row.quotaPages, quotaPeriod: row.quotaPeriod },
  };
  return { auth: { ok: true, key }, rate: rateDecision(row), usableUntil: current ? null : row.previousExpiresAt };
}

/**
 * Takes one token for a key authenticated earlier (a cached lookup): the key's row by id (it
 * must still exist) with the plan's limits as they were when it was looked up. Undefined when
 * the key is gone.
 */
export async function takeToken(prisma: PrismaClient, key: Pick<CallerKey, "id" | "plan">): Promise<RateDecision | undefined> {
  const rows = await tokenStatement(
    prisma,
    Prisma.sql`
      SELECT "id", ${key.plan.burst}::int AS "burst", ${key.plan.ratePerSecond}::float8 AS "ratePerSecond", true AS "usable"
      FROM "ApiKey" WHERE "id" = ${key.id}::uuid`,
  );
  return rows[0] && rateDecision(rows[0]);
}
