// The same batch with every service in its own process, as on ECS (each deployable's own main.ts,
// configured by its environment), so each stage's CPU and memory can be read from /proc on its
// own. The stand-ins (S3, SQS) stay in this process; Postgres and the reference model are apart.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createApiKey } from "../../../packages/api-keys/src/index.ts";
import { freePort, start as startStack } from "../../../packages/local-stack/src/index.ts";
import { ApiClient } from "../../../services/cli/src/index.ts";
import { awaitBatch, batchCounts, requestsSince, uploadFolder } from "./batch.ts";
import { peakRssBytes, treeCpuSeconds } from "./proc.ts";

const REPO = new URL("../../../", import.meta.url).pathname;
/** BENCH_E2E_NODE_FLAGS="--a --b": V8 flags for every service process, to measure one (e.g. --single-threaded-gc). */
const SERVICE_NODE_FLAGS = (process.env.BENCH_E2E_NODE_FLAGS ?? "").split(" ").filter(Boolean);

/** A deployable and the stage its CPU is charged to. */
interface ServiceRun {
  name: string;
  stage: string;
  main: string;
  env?: Record<string, string>;
  /** Its ECS task size (infra defaultSizes), to check its peak memory against. */
  task?: string;
}

export interface ProcessFigures {
  name: string;
  stage: string;
  task?: string;
  cpuSeconds: number;
  peakRssBytes: number;
}

export interface ProcessRun {
  pages: number;
  documents: number;
  failedDocuments: number;
  wallSeconds: number;
  processes: ProcessFigures[];
  postgresCpuSeconds: number;
  /** This process: the S3 and SQS stand-ins, plus the benchmark's own polling. */
  standInCpuSeconds: number;
  /** Mean time a unit of work spent in each stage (succeeded attempts), per page. */
  stageWallSecondsPerPage: Record<string, number>;
  /** S3 and SQS requests during the batch, by kind. */
  requests: Record<string, number>;
}

function launch(run: ServiceRun, env: Record<string, string>, logDir: string): { child: ChildProcess; ready: Promise<void> } {
  // BENCH_E2E_PROFILE=dir: a V8 CPU profile of every service, written when it stops.
  const profile = process.env.BENCH_E2E_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${join(process.env.BENCH_E2E_PROFILE, run.name)}`] : [];
  // As the images run them (docker/Dockerfile's CMD gives no V8 flag that changes CPU), unless BENCH_E2E_NODE_FLAGS says otherwise.
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...profile, "--conditions=@docpipe/source", "--import", "tsx", join(REPO, run.main)], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "info", ...env, ...run.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = createWriteStream(join(logDir, `${run.name}.log`));
  child.stderr!.pipe(log);
  const ready = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${run.name} exited with ${code} before it was ready (log: ${join(logDir, `${run.name}.log`)})`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      log.write(`${line}\n`);
      if (/"msg":"(started|reference model listening|Server listening at [^"]*)"/.test(line)) resolve();
    });
  });
  return { child, ready };
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.kill("SIGKILL"), 30_000);
          c.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          c.kill("SIGTERM");
        }),
    ),
  );
}

export async function runProcesses(folder: string, opts: { dpi: number; logDir: string; timeoutMs: number }): Promise<ProcessRun> {
  const stack = await startStack({ name: `bench-e2e-procs-${process.pid}`, ephemeral: false, handleSignals: true });
  const children: ChildProcess[] = [];
  // Interrupted (Ctrl-C, a timeout): the services go with the benchmark, not on as orphans.
  const killAll = () => children.forEach((c) => c.kill("SIGKILL"));
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  process.once("exit", killAll);
  for (const s of signals) process.once(s, killAll);
  try {
    const apiPort = await freePort();
    const modelPort = await freePort();
    const runs: ServiceRun[] = [
      { name: "reference-model", stage: "model (stand-in)", main: "packages/reference-model/src/main.ts", env: { PORT: String(modelPort), HOST: "127.0.0.1" } },
      { name: "ingestion", stage: "ingestion", main: "services/ingestion/src/main.ts", env: { PORT: String(apiPort), HOST: "127.0.0.1" }, task: "ingestion" },
      { name: "chunking-orchestrator", stage: "classify", main: "services/chunking-orchestrator/src/main.ts", task: "chunking-orchestrator" },
      { name: "splitter-large", stage: "split", main: "services/splitter/src/main.ts", env: { ROLE: "large" }, task: "splitter-large" },
      { name: "splitter-small", stage: "split", main: "services/splitter/src/main.ts", env: { ROLE: "small" }, task: "splitter-small" },
      { name: "page-converter", stage: "convert", main: "services/page-converter/src/main.ts", env: { DPI: String(opts.dpi) }, task: "page-converter" },
      { name: "inference-client", stage: "inference client", main: "services/inference-client/src/main.ts",
        env: { MODEL_URL: `http://127.0.0.1:${modelPort}/invocations` }, task: "inference-client" },
      { name: "failsafe", stage: "failsafe", main: "services/failsafe/src/main.ts", env: { DPI: String(opts.dpi) }, task: "failsafe" },
    ];
    const launched = runs.map((r) => launch(r, stack.env, opts.logDir));
    children.push(...launched.map((l) => l.child));
    await Promise.all(launched.map((l) => l.ready));

    const key = await createApiKey(stack.prisma, { name: `bench-e2e-${process.pid}`, owner: "bench", plan: "local", buckets: ["*"] });
    const prefix = "bench-e2e/";
    await uploadFolder(stack, folder, prefix);
    const api = new ApiClient(`http://127.0.0.1:${apiPort}`, key.key);

    const pids = new Set(children.map((c) => c.pid!));
    const cpu = () => ({
      // Trees: the reference model runs a process per core.
      services: children.map((c) => treeCpuSeconds(c.pid!)),
      postgres: treeCpuSeconds(process.pid, { match: /^postgres$/, exclude: pids }),
      self: (() => {
        const u = process.cpuUsage();
        return (u.user + u.system) / 1e6;
      })(),
    });
    const requests0 = stack.standInRequests();
    const before = cpu();
    const { batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: [prefix], label: "bench-e2e processes" });
    const end = await awaitBatch(stack, batchId, opts.timeoutMs);
    const after = cpu();
    const requests = requestsSince(requests0, stack.standInRequests());
    const counts = await batchCounts(stack, batchId);
    const processes = runs.map((r, i) => ({
      name: r.name,
      stage: r.stage,
      ...(r.task && { task: r.task }),
      cpuSeconds: after.services[i]! - before.services[i]!,
      peakRssBytes: peakRssBytes(children[i]!.pid!),
    }));
    const durations = await stack.prisma.auditEvent.groupBy({
      by: ["stage"],
      where: { batchId, outcome: "succeeded" },
      _sum: { durationMs: true },
    });
    const stageWallSecondsPerPage = Object.fromEntries(
      durations.map((d) => [d.stage, (d._sum.durationMs ?? 0) / 1000 / Math.max(1, counts.pages)]),
    );
    return {
      ...counts,
      wallSeconds: (end.completedAt.getTime() - end.createdAt.getTime()) / 1000,
      processes,
      postgresCpuSeconds: after.postgres - before.postgres,
      standInCpuSeconds: after.self - before.self,
      stageWallSecondsPerPage,
      requests,
    };
  } finally {
    await stopAll(children);
    process.off("exit", killAll);
    for (const s of signals) process.off(s, killAll);
    const dataDir = stack.dataDir;
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
