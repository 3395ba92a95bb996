import type { PrismaClient, UsagePlan } from "@docpipe/db";
import { createHash, randomBytes } from "node:crypto";
import { bucketNameProblem } from "@docpipe/api-contract";

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
  plan: { name: string; ratePerSecond: number; burst: number; quotaDocuments: number | null; quotaPages: number | null; quotaPeriod: QuotaPeriod };
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
  /**
   * Pages per period, charged once per document where its page count is first known; null for no quota.
   * @defaultValue null
   */
  quotaPages?: number | null;
  quotaPeriod: QuotaPeriod;
}

/** Creates a usage plan, or updates the plan of that name (keys on it pick the change up on their next request). */
export async function upsertPlan(prisma: PrismaClient, input: CreatePlanInput): Promise<UsagePlan> {
  if (!(input.ratePerSecond > 0)) throw new KeyManagementError("invalid_plan", "rate must be above 0 per second");
  if (!Number.isInteger(input.burst) || input.burst < 1) throw new KeyManagementError("invalid_plan", "burst must be a whole number ≥ 1");
  if (input.quotaDocuments !== null && (!Number.isInteger(input.quotaDocuments) || input.quotaDocuments < 0)) {
    throw new KeyManagementError("invalid_plan", "quota must be a whole number ≥ 0");
  }
  const quotaPages = input.quotaPages ?? null;
  if (quotaPages !== null && (!Number.isInteger(quotaPages) || quotaPages < 0 || quotaPages > 2 ** 31 - 1)) {
    throw new KeyManagementError("invalid_plan", "page quota must be a whole number from 0 to 2147483647");
  }
  const { name, ...rest } = { ...input, quotaPages };
  return prisma.usagePlan.upsert({ where: { name }, create: { name, ...rest }, update: rest });
}

export function listPlans(prisma: PrismaClient): Promise<UsagePlan[]> {
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
