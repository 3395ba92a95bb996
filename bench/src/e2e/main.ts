// End-to-end throughput against the raw render rate, and the cost of a page per stage.
//   pnpm bench:e2e [folder]     # default: bench/corpus/e2e (520 pages of mixed documents)
//   BENCH_E2E_STAGES=0          # skip the run with one process per service (per-stage table)
//   BENCH_E2E_STAGES=only       # only that run
//   BENCH_DPI=150
//   BENCH_E2E_NODE_FLAGS="--single-threaded-gc"   # V8 flags for the service processes of that run
//   BENCH_E2E_RUN_NODE_FLAGS="--max-semi-space-size=16"   # Node flags added to the CLI's own for `docpipe run`
//   BENCH_E2E_PROFILE=dir       # CPU profiles (.cpuprofile) of that run, in dir/<service>/ (one per thread)
// 1. `mutool draw` renders every page of the folder to PNG, one process per core.
// 2. `docpipe run` (the CLI in its own process, started as package.json's `docpipe` script starts
//    it, Node flags included) processes the same folder: pages/s from the batch's creation to its
//    completion, and the ratio to mutool's pages/s. Goal: ≥ 0.80.
// 3. The same batch with every service in its own process: CPU seconds per page per stage and
//    each service's peak memory against its ECS task's, the stand-ins (S3, SQS) and the
//    reference model apart, since production pays for neither.
// 4. From those, Fargate task-hours, vCPU-hours and dollars per million pages per stage (cost.ts).
import { mkdir, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, relative, resolve } from "node:path";
import { defaultSizes, type ServiceId } from "../../../infra/lib/config.ts";
import { inspectPdf } from "../../../packages/pdf/src/index.ts";
import { listFiles } from "../../../services/cli/src/index.ts";
import { OUT_DIR, table } from "../common.ts";
import { printCosts, type StageCost } from "./cost.ts";
import type { BatchRun } from "./batch.ts";
import { runCli } from "./cli-run.ts";
import { loadAverage } from "./proc.ts";
import { runProcesses, type ProcessRun } from "./processes.ts";
import { runReference, type ReferenceResult } from "./reference.ts";

const GOAL = 0.8;
const DPI = Number(process.env.BENCH_DPI ?? 150);
const TIMEOUT_MS = 30 * 60_000;
const folder = resolve(process.env.INIT_CWD ?? process.cwd(), process.argv[2] ?? new URL("../../corpus/e2e/", import.meta.url).pathname);
const out = join(OUT_DIR, "e2e");
await mkdir(out, { recursive: true });

const files = await Promise.all(
  (await listFiles(folder))
    .filter((f) => f.toLowerCase().endsWith(".pdf"))
    .map(async (f) => ({ path: join(folder, f), pages: (await inspectPdf(join(folder, f))).pageCount })),
);
const pages = files.reduce((s, f) => s + f.pages, 0);
const cores = availableParallelism();
console.log(`${relative(process.cwd(), folder) || folder}: ${files.length} PDFs, ${pages} pages; ${cores} cores, ${DPI} dpi`);

const loads: string[] = [loadAverage()];
const stagesOnly = process.env.BENCH_E2E_STAGES === "only";
const ref = stagesOnly ? undefined : await runReference(files, { dpi: DPI, processes: cores, outDir: join(out, "mutool") });
const run = stagesOnly ? undefined : await runCli(folder, { dpi: DPI, logFile: join(out, "docpipe-run.log"), timeoutMs: TIMEOUT_MS });
let ratio: number | undefined;
if (ref && run) ratio = compare(ref, run);

let stages: ProcessRun | undefined;
let costs: StageCost[] | undefined;
if (process.env.BENCH_E2E_STAGES !== "0") {
  stages = await runProcesses(folder, { dpi: DPI, logDir: out, timeoutMs: TIMEOUT_MS });
  loads.push(loadAverage());
  printStages(stages);
  costs = printCosts(stages);
  console.log(`load average (1/5/15 min) after the run with one process per service: ${loadAverage()}`);
}
await writeFile(join(out, "result.json"), `${JSON.stringify({ folder, dpi: DPI, cores, pages, loads, reference: ref, run, ratio, stages, costs }, null, 2)}\n`);
console.log(`\nfigures as JSON: ${join(out, "result.json")}`);

function compare(ref: ReferenceResult, run: BatchRun & { command: string }): number {
  loads.push(loadAverage());
  if (run.pages !== pages || run.failedDocuments > 0) {
    console.log(`WARNING: docpipe finished ${run.pages} of ${pages} pages, ${run.failedDocuments} documents failed (log: ${join(out, "docpipe-run.log")})`);
  }
  const refRate = ref.pages / ref.wallSeconds;
  const runRate = run.pages / run.wallSeconds;
  const ratio = runRate / refRate;
  const runCpu = run.nodeCpuSeconds + run.postgresCpuSeconds;
  console.log(`\nload average (1/5/15 min) before mutool and after docpipe run: ${loads.join(" | ")}`);
  console.log(`docpipe run: ${run.command}`);
  table([
    ["engine", "pages", "wall s", "pages/s", "CPU-s", "CPU-ms/page", "of which"],
    [`mutool draw × ${ref.processes} processes`, ref.pages, ref.wallSeconds.toFixed(1), refRate.toFixed(2), ref.cpuSeconds.toFixed(1),
      ((1000 * ref.cpuSeconds) / ref.pages).toFixed(1), `PNGs ${(ref.pngBytes / ref.pages / 1024).toFixed(0)} KiB/page`],
    ["docpipe run (one process)", run.pages, run.wallSeconds.toFixed(1), runRate.toFixed(2), runCpu.toFixed(1), ((1000 * runCpu) / run.pages).toFixed(1),
      `node ${run.nodeCpuSeconds.toFixed(1)} s (main thread ${run.mainThreadCpuSeconds.toFixed(1)} s), postgres ${run.postgresCpuSeconds.toFixed(1)} s`],
  ]);
  console.log(`docpipe run's threads (CPU-s): ${Object.entries(run.threads).sort((a, b) => b[1] - a[1]).map(([n, s]) => `${n} ${s.toFixed(1)}`).join(", ")}`);
  console.log(`\nratio (docpipe pages/s ÷ mutool pages/s): ${ratio.toFixed(2)}  goal ≥ ${GOAL.toFixed(2)}: ${ratio >= GOAL ? "met" : "NOT met"}`);
  // On an idle machine each run's wall time is bounded below by its CPU spread over the cores, and
  // docpipe's also by its main thread, which every service shares: what the ratio can be at best.
  const refIdle = ref.cpuSeconds / Math.min(cores, ref.processes);
  const runIdle = Math.max(run.mainThreadCpuSeconds, runCpu / cores);
  console.log(`from CPU alone, on an idle machine at best: mutool ${refIdle.toFixed(1)} s, docpipe ${runIdle.toFixed(1)} s ` +
    `(${run.mainThreadCpuSeconds > runCpu / cores ? "its main thread" : "its CPU over the cores"}), ratio ≤ ${(refIdle / runIdle).toFixed(2)}`);
  return ratio;
}

function printStages(p: ProcessRun): void {
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  const per = (s: number) => ((1000 * s) / p.pages).toFixed(2);
  const auditStages: Record<string, string[]> = {
    ingestion: ["ingestion"],
    classify: ["classify"],
    split: ["split-large", "split-small"],
    convert: ["convert"],
    "inference client": ["inference"],
    failsafe: ["failsafe"],
  };
  const pipeline = p.processes.filter((x) => x.task);
  const total = pipeline.reduce((s, x) => s + x.cpuSeconds, 0) + p.postgresCpuSeconds;
  const rows: (string | number)[][] = [["stage", "process", "CPU-s", "CPU-ms/page", "share", "in stage ms/page", "peak RSS", "task memory", "within"]];
  for (const x of pipeline) {
    const size = defaultSizes[x.task as ServiceId];
    const wall = (auditStages[x.stage] ?? []).reduce((s, k) => s + (p.stageWallSecondsPerPage[k] ?? 0), 0);
    rows.push([x.stage, x.name, x.cpuSeconds.toFixed(1), per(x.cpuSeconds), `${((100 * x.cpuSeconds) / total).toFixed(0)}%`,
      x.name === "splitter-small" || !auditStages[x.stage] ? "" : (1000 * wall).toFixed(0),
      mib(x.peakRssBytes), `${size.memoryMiB} MiB`, x.peakRssBytes <= size.memoryMiB * 1024 * 1024 ? "yes" : "NO"]);
  }
  rows.push(["database", "postgres", p.postgresCpuSeconds.toFixed(1), per(p.postgresCpuSeconds), `${((100 * p.postgresCpuSeconds) / total).toFixed(0)}%`, "", "", "", ""]);
  rows.push(["pipeline total", "", total.toFixed(1), per(total), "100%", "", "", "", ""]);
  rows.push(["stand-ins: S3 + SQS", "this process", p.standInCpuSeconds.toFixed(1), per(p.standInCpuSeconds), "", "", "", "", ""]);
  const model = p.processes.find((x) => !x.task)!;
  rows.push([model.stage, model.name, model.cpuSeconds.toFixed(1), per(model.cpuSeconds), "", "", mib(model.peakRssBytes), "", ""]);
  console.log(`\nOne process per service, as deployed: ${p.pages} pages in ${p.wallSeconds.toFixed(1)} s ` +
    `(${(p.pages / p.wallSeconds).toFixed(2)} pages/s, ${p.failedDocuments} documents failed)`);
  table(rows);
  console.log("(in stage: mean time a page's unit of work spent in the stage, from the audit trail; split counts large and small)");
  printRequests(p.requests, p.pages);
}

function printRequests(requests: Record<string, number>, pages: number): void {
  const sorted = Object.entries(requests).sort((a, b) => b[1] - a[1]);
  const total = sorted.reduce((s, [, n]) => s + n, 0);
  console.log(`\nS3 and SQS requests the stand-ins answered during that run: ${(total / pages).toFixed(2)} per page`);
  table([["request", "count", "per page"], ...sorted.map(([k, n]) => [k, n, (n / pages).toFixed(2)])]);
}
