import { createPrisma, type PrismaClient } from "@docpipe/db";
import {
  createApiKey,
  disableApiKey,
  KeyManagementError,
  listApiKeys,
  listPlans,
  rotateApiKey,
  upsertPlan,
  usageReport,
  type QuotaPeriod,
} from "@docpipe/api-keys";
import { parseArgs } from "node:util";

/**
 * `docpipe keys|plans|usage`: key management straight on the database (the same functions the
 * ingestion API uses), so an operator needs no key to make the first one.
 */

export const ADMIN_USAGE = `  keys create --name N --owner O --plan P --bucket B [--bucket B2 ...] [--prefix P ...]
                        create an API key; prints the key once (only its SHA-256 is stored).
                        --bucket '*' allows any bucket; no --prefix allows any prefix.
  keys list             every key: prefix, name, owner, plan, allow-list, enabled, last use.
  keys disable <id|prefix>
                        refuse the key from now on (403 api_key_disabled).
  keys rotate <id|prefix> [--grace SECONDS]
                        a new secret for the same key (same plan, quota and batches); the old
                        one keeps working for --grace seconds (default 86400; 0 = at once).
  plans list | plans set --name N --rate R --burst B [--quota Q --period day|month]
                        usage plans: requests per second, burst, documents per day or month.
  usage [--days N] [--json]
                        requests, throttled, batches and documents per key per day.
        These talk to the database: $DATABASE_URL, or the running local stack (--stack NAME,
        default docpipe), started for the command if it is not running.`;

export class AdminUsageError extends Error {
  override readonly name = "AdminUsageError";
}

/** The database of $DATABASE_URL, else of the local stack (running, or started for this command). */
async function withDatabase<T>(stackName: string, fn: (prisma: PrismaClient) => Promise<T>): Promise<T> {
  let databaseUrl = process.env.DATABASE_URL;
  let stop: (() => Promise<void>) | undefined;
  if (!databaseUrl) {
    const { findRunningStack, start } = await import("@docpipe/local-stack");
    databaseUrl = (await findRunningStack(stackName))?.env?.DATABASE_URL;
    if (!databaseUrl) {
      const stack = await start({ name: stackName, ephemeral: false, handleSignals: false });
      databaseUrl = stack.databaseUrl;
      stop = () => stack.stop();
    }
  }
  const prisma = createPrisma({ databaseUrl, poolMax: 2 });
  try {
    return await fn(prisma);
  } finally {
    await prisma.$disconnect();
    await stop?.();
  }
}

function table(rows: (string | number)[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => String(c ?? "").padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new AdminUsageError(`--${name} must be a number`);
  return n;
};

/** Runs `docpipe keys|plans|usage ...`; returns the exit code. */
export async function adminCommand(command: "keys" | "plans" | "usage", argv: string[], out: (line: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      owner: { type: "string" },
      plan: { type: "string" },
      bucket: { type: "string", multiple: true },
      prefix: { type: "string", multiple: true },
      grace: { type: "string" },
      rate: { type: "string" },
      burst: { type: "string" },
      quota: { type: "string" },
      period: { type: "string" },
      days: { type: "string" },
      json: { type: "boolean" },
      stack: { type: "string" },
    },
  });
  const stackName = values.stack ?? "docpipe";
  const [sub, target] = positionals;
  try {
    if (command === "usage") {
      const rows = await withDatabase(stackName, (p) => usageReport(p, { days: num("days", values.days) ?? 30 }));
      if (values.json) out(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) out("no usage recorded");
      else
        out(
          table([
            ["day", "key", "name", "owner", "plan", "requests", "throttled", "batches", "documents"],
            ...rows.map((r) => [r.day, r.prefix, r.name, r.owner, r.plan, r.requests, r.throttled, r.batches, r.documents]),
          ]),
        );
      return 0;
    }
    if (command === "plans") {
      if (sub === "set") {
        if (!values.name || values.rate === undefined || values.burst === undefined) {
          throw new AdminUsageError("plans set needs --name, --rate and --burst");
        }
        const period = (values.period ?? "day") as QuotaPeriod;
        if (period !== "day" && period !== "month") throw new AdminUsageError("--period must be day or month");
        const plan = await withDatabase(stackName, (p) =>
          upsertPlan(p, {
            name: values.name!,
            ratePerSecond: num("rate", values.rate)!,
            burst: num("burst", values.burst)!,
            quotaDocuments: num("quota", values.quota) ?? null,
            quotaPeriod: period,
          }),
        );
        out(`plan ${plan.name}: ${plan.ratePerSecond}/s, burst ${plan.burst}, quota ${plan.quotaDocuments ?? "none"} per ${plan.quotaPeriod}`);
        return 0;
      }
      if (sub !== "list" && sub !== undefined) throw new AdminUsageError(`unknown plans command ${sub}`);
      const plans = await withDatabase(stackName, listPlans);
      out(
        table([
          ["name", "rate/s", "burst", "quota", "period"],
          ...plans.map((p) => [p.name, p.ratePerSecond, p.burst, p.quotaDocuments ?? "none", p.quotaPeriod]),
        ]),
      );
      return 0;
    }
    switch (sub) {
      case "create": {
        if (!values.name || !values.owner || !values.plan || !values.bucket?.length) {
          throw new AdminUsageError("keys create needs --name, --owner, --plan and at least one --bucket");
        }
        const k = await withDatabase(stackName, (p) =>
          createApiKey(p, { name: values.name!, owner: values.owner!, plan: values.plan!, buckets: values.bucket!, prefixes: values.prefix ?? [] }),
        );
        if (values.json) out(JSON.stringify(k, null, 2));
        else {
          out(k.key);
          process.stderr.write(`key ${k.prefix} (id ${k.id}) for ${k.owner}, plan ${k.plan}. It is shown only now: store it.\n`);
        }
        return 0;
      }
      case "list": {
        const keys = await withDatabase(stackName, listApiKeys);
        if (values.json) out(JSON.stringify(keys, null, 2));
        else
          out(
            table([
              ["id", "prefix", "name", "owner", "plan", "buckets", "prefixes", "enabled", "last used"],
              ...keys.map((k) => [
                k.id,
                k.prefix + (k.previousPrefix ? ` (+${k.previousPrefix} until ${k.previousExpiresAt!.toISOString()})` : ""),
                k.name,
                k.owner,
                k.plan,
                k.allowedBuckets.join(","),
                k.allowedPrefixes.join(",") || "*",
                k.enabled ? "yes" : "no",
                k.lastUsedAt?.toISOString() ?? "never",
              ]),
            ]),
          );
        return 0;
      }
      case "disable": {
        if (!target) throw new AdminUsageError("keys disable needs a key id or prefix");
        const k = await withDatabase(stackName, (p) => disableApiKey(p, target));
        out(`disabled ${k.prefix} (${k.id})`);
        return 0;
      }
      case "rotate": {
        if (!target) throw new AdminUsageError("keys rotate needs a key id or prefix");
        const graceSeconds = num("grace", values.grace);
        const k = await withDatabase(stackName, (p) => rotateApiKey(p, target, graceSeconds === undefined ? {} : { graceSeconds }));
        if (values.json) out(JSON.stringify(k, null, 2));
        else {
          out(k.key);
          process.stderr.write(`new secret for ${k.prefix} (id ${k.id}); the old ${k.previousPrefix} works until ${k.previousExpiresAt.toISOString()}\n`);
        }
        return 0;
      }
      default:
        throw new AdminUsageError(sub ? `unknown keys command ${sub}` : "keys needs a command: create, list, disable or rotate");
    }
  } catch (e) {
    if (e instanceof KeyManagementError) throw new AdminUsageError(`${e.code}: ${e.message}`);
    throw e;
  }
}
