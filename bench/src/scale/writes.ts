// W of `pnpm bench:scale`: the write statements the pipeline sends per page, counted by
// pg_stat_statements over a real run of every service on the bundled samples.
import path from "node:path";
import pg from "pg";
import { ApiClient } from "../../../services/cli/src/api.ts";
import { listFiles } from "../../../services/cli/src/run.ts";
import { startPipeline } from "../../../services/cli/src/pipeline.ts";
import type { LocalStack } from "../../../packages/local-stack/src/index.ts";
import { uploadFile, type Logger } from "../../../packages/queue/src/index.ts";

/** Settings the stack's Postgres needs for the count: statements are tracked at the top level only. */
export const STATEMENT_STATS_SETTINGS = ["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=top", "pg_stat_statements.max=10000"];

/**
 * Writes that follow time or HTTP requests, not pages: every API call (the CLI polls status)
 * meters its key, and every reconciler pass marks the queues it saw drained. Counted and shown,
 * but not in W.
 */
const NOT_PER_PAGE_TABLES = new Set(["RateBucket", "UsageDaily", "ApiKey", "QueueDrain"]);

export interface WriteCount {
  pages: number;
  documents: number;
  /** Write statements per page of the pipeline's tables: W. */
  perPage: number;
  /** Rows inserted, updated or deleted per page (triggers' rows included), from pg_stat_user_tables. */
  rowsPerPage: number;
  /** Write statements per table they write (a statement that writes several counts for each), pipeline tables. */
  byTable: Map<string, number>;
  /** Writes per request (metering) or per reconciler pass, left out of W. */
  perRequest: number;
  /** The statements, most frequent first. */
  statements: { calls: number; query: string }[];
}

/** Tables a statement writes: INSERT INTO x, UPDATE x, DELETE FROM x, in any CTE. */
export function writtenTables(query: string): string[] {
  const out = new Set<string>();
  // A locking clause (FOR UPDATE OF t, FOR NO KEY UPDATE) writes nothing; ON CONFLICT ... DO UPDATE SET names no table.
  const text = query.replace(/\bFOR\s+(NO\s+KEY\s+)?UPDATE\b/gi, "");
  for (const m of text.matchAll(/\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:"?public"?\.)?"?([A-Za-z_][A-Za-z0-9_]*)"?/gi)) {
    if (m[1]!.toUpperCase() !== "SET") out.add(m[1]!);
  }
  return [...out];
}

/**
 * Runs every service on `folder` against `stack` (whose Postgres has {@link STATEMENT_STATS_SETTINGS}),
 * waits for the batch to finish, and counts the write statements sent meanwhile.
 */
export async function countWrites(stack: LocalStack, folder: string, logger: Logger): Promise<WriteCount & { batchId: string }> {
  const db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  try {
    await db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    const pipeline = await startPipeline({ stack, logger, waitTimeSeconds: 1 });
    let batchId: string;
    let before: Snapshot;
    try {
      const prefix = "bench-scale/samples/";
      for (const rel of await listFiles(folder)) {
        await uploadFile(stack.s3, stack.stagingBucket, `${prefix}${rel.split(path.sep).join("/")}`, path.join(folder, rel));
      }
      await db.query("SELECT pg_stat_statements_reset()");
      before = await snapshot(db);
      const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
      ({ batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: [prefix], label: "bench-scale samples" }));
      // Polled from the database, not the API, so the count holds the pipeline's writes alone.
      for (let waited = 0; ; waited += 250) {
        const batch = await stack.prisma.batch.findUnique({ where: { id: batchId }, select: { state: true } });
        if (batch?.state === "completed" || batch?.state === "failed") break;
        if (waited > 300_000) throw new Error(`the samples batch did not finish in 5 minutes (state ${batch?.state})`);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      // Stopping flushes audit records still in flight: they count.
      await pipeline.stop();
    }
    const after = await snapshot(db);
    const { rows: statements } = await db.query<{ calls: string; query: string }>(
      `SELECT s.calls::text, s.query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
       WHERE d.datname = current_database() AND s.query ~* '\\m(insert|update|delete)\\M' ORDER BY s.calls DESC`,
    );
    const { rows: [size] = [] } = await db.query<{ pages: string; documents: string }>(
      `SELECT (SELECT count(*) FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = $1)::text AS pages,
              (SELECT count(*) FROM "Document" WHERE "batchId" = $1)::text AS documents`,
      [batchId],
    );
    const pages = Number(size?.pages ?? 0);
    const byTable = new Map<string, number>();
    let pipelineStatements = 0;
    let perRequest = 0;
    const listed: { calls: number; query: string }[] = [];
    for (const s of statements) {
      const tables = writtenTables(s.query);
      if (tables.length === 0) continue;
      const calls = Number(s.calls);
      // The reconciler's scan for units whose message was lost: every pass, whatever the pages.
      if (tables.every((t) => NOT_PER_PAGE_TABLES.has(t)) || /^\s*WITH lost AS/i.test(s.query)) {
        perRequest += calls;
        continue;
      }
      pipelineStatements += calls;
      for (const t of tables) byTable.set(t, (byTable.get(t) ?? 0) + calls);
      listed.push({ calls, query: s.query.replace(/\s+/g, " ").slice(0, 160) });
    }
    return {
      batchId,
      pages,
      documents: Number(size?.documents ?? 0),
      perPage: pages > 0 ? pipelineStatements / pages : NaN,
      rowsPerPage: pages > 0 ? (after.rows - before.rows) / pages : NaN,
      byTable,
      perRequest,
      statements: listed,
    };
  } finally {
    await db.end();
  }
}

interface Snapshot {
  rows: number;
}

/** Rows written to the pipeline's tables so far (statistics flushed first). */
async function snapshot(db: pg.Client): Promise<Snapshot> {
  await db.query("SELECT pg_stat_force_next_flush()");
  // Statistics of other backends reach the shared counters within a second of their transactions.
  await new Promise((r) => setTimeout(r, 1_100));
  await db.query("SELECT pg_stat_clear_snapshot()");
  const { rows: [r] = [] } = await db.query<{ rows: string }>(
    `SELECT sum(n_tup_ins + n_tup_upd + n_tup_del)::text AS rows FROM pg_stat_user_tables
     WHERE relname NOT IN ('RateBucket', 'UsageDaily', 'ApiKey', '_prisma_migrations')`,
  );
  return { rows: Number(r?.rows ?? 0) };
}
