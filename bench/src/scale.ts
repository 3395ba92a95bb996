// The database path at scale: a batch of SCALE_PAGES pages (default 10,000,000) built in the local
// Postgres, then GET /batches/:id, the CLI's progress query and the full report timed while a
// writer load pushes pages through the pipeline's per-page write pattern. W, the write statements
// per page, comes from a real run of every service on the bundled samples (pg_stat_statements).
//   pnpm bench:scale
//   SCALE_PAGES=1000000 SCALE_WRITE_RATE=100 SCALE_SAMPLES=300 pnpm bench:scale
//   SCALE_WRITES_ONLY=1 pnpm bench:scale   (W and its statements only)
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pageProgress } from "../../services/ingestion/src/report.ts";
import type { PrismaClient } from "../../packages/db/src/index.ts";
import { start } from "../../packages/local-stack/src/index.ts";
import { createLogger } from "../../packages/queue/src/index.ts";
import { createApiKey } from "../../packages/api-keys/src/index.ts";
import { createIngestionService } from "../../services/ingestion/src/index.ts";
import { table } from "./common.ts";
import { buildBatch, type BuiltBatch } from "./scale/build.ts";
import type { WriterLoadResult } from "./scale/load.ts";
import { storagePerPage } from "./scale/storage.ts";
import { countWrites, STATEMENT_STATS_SETTINGS } from "./scale/writes.ts";

const PAGES = Number(process.env.SCALE_PAGES ?? 10_000_000);
const WRITE_RATE = Number(process.env.SCALE_WRITE_RATE ?? 100);
const WRITERS = Number(process.env.SCALE_WRITERS ?? 8);
const SAMPLES = Number(process.env.SCALE_SAMPLES ?? 300);
const REPORTS = Number(process.env.SCALE_REPORTS ?? 5);
const GOALS = { statusP99Ms: 100, progressP99Ms: 100, reportMs: 5000, writesPerPage: 6 };

/** Keep the stack (.local/bench-scale) and reuse a batch of SCALE_PAGES built by an earlier run: for working on the queries. */
const KEEP = process.env.SCALE_KEEP === "1";
const SAMPLES_DIR = path.resolve(import.meta.dirname, "../../samples");

const logger = createLogger({ service: "bench-scale", level: process.env.LOG_LEVEL ?? "warn" });
const say = (line: string) => process.stderr.write(`${line}\n`);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const p99 = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.min(ms.length - 1, Math.ceil(0.99 * ms.length) - 1)]!;
const p50 = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;

async function timed(n: number, pauseMs: number, fn: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  return ms;
}

/** Starts the writer load in a child process (its own event loop and database pool). */
async function forkWriterLoad(args: string[]): Promise<{ stop(): Promise<WriterLoadResult> }> {
  const child = fork(path.join(import.meta.dirname, "scale/load-child.ts"), args, { stdio: "inherit" });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`the writer load exited with code ${code} before it started`)));
  });
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        child.removeAllListeners("exit");
        child.once("message", (msg: { result: WriterLoadResult }) => resolve(msg.result));
        child.once("exit", (code) => reject(new Error(`the writer load exited with code ${code}`)));
        child.send({ stop: true });
      }),
  };
}

/** A batch an earlier SCALE_KEEP run built with at least `pages` pages. */
async function findBuilt(prisma: PrismaClient, pages: number): Promise<BuiltBatch | undefined> {
  const rows = await prisma.$queryRaw<{ id: string; pages: bigint; documents: number }[]>`
    SELECT b.id, (SELECT sum(value) FROM "BatchCounter" c WHERE c."batchId" = b.id AND c.name = 'pages.rows')::bigint AS pages, b."documentCount" AS documents
    FROM "Batch" b WHERE b.label = 'bench-scale' ORDER BY b."createdAt" DESC LIMIT 1`;
  const row = rows[0];
  if (!row || Number(row.pages) < pages) return undefined;
  say(`scale: reusing batch ${row.id} (${row.pages} pages)`);
  return { batchId: row.id, pages: Number(row.pages), documents: row.documents, auditEvents: NaN, seconds: 0 };
}

async function main(): Promise<void> {
  const started = performance.now();
  say(`scale: load average at start ${loadavg()}`);
  const stack = await start({
    name: "bench-scale",
    ephemeral: !KEEP,
    logger,
    postgresSettings: [
      ...STATEMENT_STATS_SETTINGS,
      // Room to build the batch: a bulk load and its indexes, not a tuned server.
      "shared_buffers=1GB",
      "max_wal_size=8GB",
      "checkpoint_timeout=30min",
    ],
  });
  try {
    say("scale: running the pipeline on the samples to count its writes…");
    const writes = await countWrites(stack, SAMPLES_DIR, logger);
    say(`scale: ${writes.pages} pages, ${writes.perPage.toFixed(2)} write statements per page`);
    if (process.env.SCALE_WRITES_ONLY === "1") {
      // For work on the write path: what each statement costs per page, and nothing else.
      table([["calls", "per page", "statement"], ...writes.statements.map((s) => [s.calls, (s.calls / writes.pages).toFixed(2), s.query])]);
      return;
    }

    const owner = "bench-scale";
    const { key } = await createApiKey(stack.prisma, { name: "bench-scale", owner, plan: "local", buckets: ["*"] });
    const built =
      (KEEP ? await findBuilt(stack.prisma, PAGES) : undefined) ??
      (say(`scale: building a batch of ${PAGES} pages…`),
      await buildBatch({ databaseUrl: stack.databaseUrl, pages: PAGES, templateBatchId: writes.batchId, owner, bucket: stack.stagingBucket, log: say }));
    say(`scale: built ${built.pages} pages, ${built.documents} documents, ${built.auditEvents} audit events in ${built.seconds.toFixed(0)} s`);
    const storage = await storagePerPage(stack.databaseUrl, built.pages + writes.pages);

    const ingestion = createIngestionService({ prisma: stack.prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger, port: 0, host: "127.0.0.1", resumeOnStart: false });
    const api = await ingestion.start();
    const get = async (p: string) => {
      const res = await fetch(`${api}${p}`, { headers: { "x-api-key": key } });
      if (res.status !== 200) throw new Error(`GET ${p}: HTTP ${res.status} ${await res.text()}`);
      return res.json();
    };
    const load = await forkWriterLoad([stack.databaseUrl, built.batchId, stack.stagingBucket, String(WRITE_RATE), String(WRITERS)]);
    let loadResult;
    let status: number[];
    let progress: number[];
    let reports: number[];
    const loadDuring = loadavg();
    try {
      await new Promise((r) => setTimeout(r, 5_000));
      say(`scale: timing ${SAMPLES} status and progress reads and ${REPORTS} reports under the writer load (${WRITE_RATE} pages/s)…`);
      status = await timed(SAMPLES, 20, () => get(`/batches/${built.batchId}`));
      progress = await timed(SAMPLES, 20, () => pageProgress(stack.prisma, built.batchId));
      reports = await timed(REPORTS, 200, () => get(`/batches/${built.batchId}/report`));
    } finally {
      loadResult = await load.stop();
      await ingestion.stop();
    }
    if (loadResult.errors > 0) say(`scale: the writer load had ${loadResult.errors} errors, the first: ${loadResult.firstError}`);

    const result = {
      statusP99Ms: p99(status),
      progressP99Ms: p99(progress),
      reportMs: Math.max(...reports),
      writesPerPage: writes.perPage,
    };
    const met = (v: number, goal: number) => (v <= goal ? "yes" : "NO");
    console.log(`batch: ${built.pages} pages, ${built.documents} documents, ${built.auditEvents} audit events (built in ${built.seconds.toFixed(0)} s)`);
    console.log(`writer load: ${(loadResult.pages / loadResult.seconds).toFixed(0)} pages/s achieved (${WRITE_RATE} asked, ${WRITERS} documents at once), ${loadResult.pages} pages, ${loadResult.errors} errors`);
    table([
      ["measure", "p50 ms", "p99 ms", "max ms", "goal", "met"],
      ["GET /batches/:id (status)", p50(status).toFixed(1), p99(status).toFixed(1), Math.max(...status).toFixed(1), `p99 <= ${GOALS.statusP99Ms}`, met(result.statusP99Ms, GOALS.statusP99Ms)],
      ["progress query (pageProgress)", p50(progress).toFixed(1), p99(progress).toFixed(1), Math.max(...progress).toFixed(1), `p99 <= ${GOALS.progressP99Ms}`, met(result.progressP99Ms, GOALS.progressP99Ms)],
      ["GET /batches/:id/report (full)", p50(reports).toFixed(1), "", result.reportMs.toFixed(1), `max <= ${GOALS.reportMs}`, met(result.reportMs, GOALS.reportMs)],
    ]);
    console.log("");
    console.log(`writes per page (samples run: ${writes.pages} pages, ${writes.documents} documents): ${writes.perPage.toFixed(2)} statements, ${writes.rowsPerPage.toFixed(2)} rows (triggers included); goal <= ${GOALS.writesPerPage}: ${met(result.writesPerPage, GOALS.writesPerPage)}`);
    table([["table written", "statements", "per page"], ...[...writes.byTable].sort((a, b) => b[1] - a[1]).map(([t, n]) => [t, n, (n / writes.pages).toFixed(2)])]);
    console.log(`(left out: ${writes.perRequest} writes per API request (metering) or per reconciler pass (queue drain marks))`);
    console.log("");
    table([["storage", "bytes", "bytes per page"], ...storage.tables.map((t) => [t.name, t.bytes, (t.bytes / storage.pages).toFixed(0)]), ["total", storage.total, (storage.total / storage.pages).toFixed(0)]]);
    console.log("");
    console.log(`load average: start ${loadDuring} (before timing), end ${loadavg()}; whole run ${((performance.now() - started) / 60_000).toFixed(1)} min`);
    console.log(
      `scale: pages=${built.pages} statusP99Ms=${result.statusP99Ms.toFixed(1)} reportMs=${result.reportMs.toFixed(0)} ` +
        `progressP99Ms=${result.progressP99Ms.toFixed(1)} writesPerPage=${result.writesPerPage.toFixed(2)}`,
    );
  } finally {
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
