import type { PrismaClient } from "./generated/client.js";

/**
 * A batch's counters, which database triggers keep in the same transaction as the rows they
 * count (migration `batch_counters`): reading them costs a few hundred rows whatever the batch's
 * size. Names: `documents.<state>`, `documents.duplicates`, `pages.<state>`, `pages.rows`,
 * `pages.imaged`, `pages.expected`, `results`, `features.pages:<f>`, `features.documents:<f>`.
 * Counters that are zero are absent.
 */
export async function readBatchCounters(prisma: PrismaClient, batchId: string): Promise<Map<string, number>> {
  const rows = await prisma.$queryRaw<{ name: string; value: bigint }[]>`
    SELECT name, sum(value)::bigint AS value FROM "BatchCounter" WHERE "batchId" = ${batchId}::uuid GROUP BY name HAVING sum(value) <> 0`;
  return new Map(rows.map((r) => [r.name, Number(r.value)]));
}

/**
 * The counters a batch must have, counted from its rows (one aggregate over the whole batch: for
 * checks and repairs, not for every request). Same names as {@link readBatchCounters}.
 */
export async function countBatchRows(prisma: PrismaClient, batchId: string): Promise<Map<string, number>> {
  const rows = await prisma.$queryRaw<{ name: string; value: bigint }[]>`SELECT name, value FROM docpipe_batch_counts(${batchId}::uuid)`;
  return new Map(rows.map((r) => [r.name, Number(r.value)]));
}

/** Stage timings as `timing:<stage>:<durationMs>:attempts|failures` entries, kept (StageTiming) or counted from the audit trail. */
async function timingEntries(prisma: PrismaClient, batchId: string, from: "kept" | "audit"): Promise<[string, number][]> {
  const rows =
    from === "kept"
      ? await prisma.$queryRaw<{ stage: string; durationMs: number; attempts: bigint; failures: bigint }[]>`
          SELECT stage, "durationMs", sum(attempts)::bigint AS attempts, sum(failures)::bigint AS failures
          FROM "StageTiming" WHERE "batchId" = ${batchId}::uuid GROUP BY stage, "durationMs"`
      : await prisma.$queryRaw<{ stage: string; durationMs: number; attempts: bigint; failures: bigint }[]>`
          SELECT stage, "durationMs", attempts, failures FROM docpipe_batch_timings(${batchId}::uuid)`;
  return rows.flatMap((r) => [
    [`timing:${r.stage}:${r.durationMs}:attempts`, Number(r.attempts)],
    [`timing:${r.stage}:${r.durationMs}:failures`, Number(r.failures)],
  ]);
}

/**
 * Counters (and stage timings) that differ from a recount of the batch's rows (and audit trail):
 * empty when every one is exact. Timings are only comparable while the audit trail is unpruned.
 */
export async function counterDrift(prisma: PrismaClient, batchId: string): Promise<{ name: string; counter: number; rows: number }[]> {
  const [counters, rowCounts, timings, auditTimings] = await Promise.all([
    readBatchCounters(prisma, batchId),
    countBatchRows(prisma, batchId),
    timingEntries(prisma, batchId, "kept"),
    timingEntries(prisma, batchId, "audit"),
  ]);
  const kept = new Map([...counters, ...timings]);
  const counted = new Map([...rowCounts, ...auditTimings]);
  const names = [...new Set([...kept.keys(), ...counted.keys()])].sort();
  return names
    .map((name) => ({ name, counter: kept.get(name) ?? 0, rows: counted.get(name) ?? 0 }))
    .filter((d) => d.counter !== d.rows);
}

/** Rebuilds a batch's counters from its rows, and its stage timings from its audit trail when asked (not after a prune). */
export async function recountBatch(prisma: PrismaClient, batchId: string, opts: { timings?: boolean } = {}): Promise<void> {
  await prisma.$executeRaw`SELECT docpipe_recount_batch(${batchId}::uuid, ${opts.timings ?? false})`;
}

export interface StageStats {
  stage: string;
  /** Finished attempts: succeeded, failed or dead-lettered. */
  attempts: number;
  /** Failed or dead-lettered attempts. */
  failures: number;
  /** Percentiles of the attempts' durations (as Postgres's percentile_cont, on durations kept to three significant digits); null without durations. */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
}

/** Attempts, failures and duration percentiles per stage, from the batch's StageTiming rows (kept by a trigger on AuditEvent). */
export async function readStageStats(prisma: PrismaClient, batchId: string): Promise<StageStats[]> {
  const rows = await prisma.$queryRaw<{ stage: string; durationMs: number; attempts: bigint; failures: bigint }[]>`
    SELECT stage, "durationMs", sum(attempts)::bigint AS attempts, sum(failures)::bigint AS failures
    FROM "StageTiming" WHERE "batchId" = ${batchId}::uuid
    GROUP BY stage, "durationMs" HAVING sum(attempts) <> 0 ORDER BY stage, "durationMs"`;
  const byStage = new Map<string, { durationMs: number; count: number; failures: number }[]>();
  for (const r of rows) {
    const list = byStage.get(r.stage) ?? [];
    list.push({ durationMs: r.durationMs, count: Number(r.attempts), failures: Number(r.failures) });
    byStage.set(r.stage, list);
  }
  return [...byStage].map(([stage, buckets]) => {
    const timed = buckets.filter((b) => b.durationMs >= 0);
    return {
      stage,
      attempts: buckets.reduce((s, b) => s + b.count, 0),
      failures: buckets.reduce((s, b) => s + b.failures, 0),
      p50Ms: percentile(timed, 0.5),
      p90Ms: percentile(timed, 0.9),
      p99Ms: percentile(timed, 0.99),
    };
  });
}

/** percentile_cont over values given as ascending (value, count) buckets. */
export function percentile(buckets: readonly { durationMs: number; count: number }[], p: number): number | null {
  const n = buckets.reduce((s, b) => s + b.count, 0);
  if (n === 0) return null;
  const pos = p * (n - 1);
  const at = (i: number): number => {
    let seen = 0;
    for (const b of buckets) {
      seen += b.count;
      if (i < seen) return b.durationMs;
    }
    return buckets.at(-1)!.durationMs;
  };
  const lo = Math.floor(pos);
  const low = at(lo);
  return low + (at(Math.ceil(pos)) - low) * (pos - lo);
}
