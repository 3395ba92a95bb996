// Fault injection end to end: the pipeline as separate processes, a batch of 50+ documents and
// 500+ pages, workers of every service SIGKILLed at seeded random moments and restarted, and
// the model endpoint down and then failing on a share of calls. Afterwards the outcome must be
// exactly what a run without faults gives: nothing lost, nothing doubled, every count true.
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@docpipe/local-stack";
import { startReferenceModel } from "@docpipe/reference-model";
import { ApiClient } from "@docpipe/cli";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import {
  buildCorpus,
  chaosSeeds,
  createTestApiKey,
  expectBatchMatchesTruth,
  expectNoUnexplainedWork,
  planCorpus,
  randomInt,
  seededRandom,
  totalPages,
  waitForBatch,
  waitForQuietQueues,
} from "./support/scenario.js";
import { pipelineProcesses } from "./support/services.js";
import { Supervisor, type SupervisorEvent } from "./support/supervisor.js";

// Seeds: fixed in CI; CHAOS_SEED=1234 replays one run, CHAOS_SOAK=20 runs twenty random ones.
/** Seconds a received message stays hidden: what a killed worker's message waits before it comes back. */
const VISIBILITY_SECONDS = 8;
const BATCH_TIMEOUT_MS = 6 * 60_000;
/**
 * Each worker service is killed once in each window (shares of the batch's pages done). Two kills:
 * the large queue dead-letters on the 4th receive, so no split can run out of receives.
 */
const KILL_WINDOWS = [
  [0, 0.45],
  [0.3, 0.85],
] as const;

for (const SEED of chaosSeeds(4242)) {
  test(`SIGKILLed workers of every service and a failing model endpoint lose nothing and double nothing (seed ${SEED})`, { timeout: 9 * 60_000 }, async ({ stack, prisma, env }) => {
    const say = (msg: string) => process.stdout.write(`[chaos seed ${SEED}] ${msg}\n`);
    const random = seededRandom(SEED);
    const dir = await mkdtemp(join(tmpdir(), "docpipe-chaos-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    // A prefix per seed: a soak loop runs several seeds on one stack, and each batch must list only its own corpus.
    const prefix = `chaos-${SEED}/`;
    const plan = planCorpus(random, { singles: 18, small: 22, large: 12, minPages: 520 });
    const truth = await buildCorpus(stack, dir, prefix, plan);
    expect(truth.length).toBeGreaterThanOrEqual(50);
    expect(totalPages(truth)).toBeGreaterThanOrEqual(500);
    say(`${truth.length} documents, ${totalPages(truth)} pages (${plan.singles} single, ${plan.small.length} small, ${plan.large.length} large by page count); logs in ${dir}`);

    const model = await startReferenceModel({ s3: stack.s3 });
    onTestFinished(() => model.stop());
    const apiPort = await freePort();
    const t0 = Date.now();
    const onEvent = (e: SupervisorEvent) => {
      if (e.what !== "started" && e.what !== "ready") say(`${(e.t / 1000).toFixed(1)}s ${e.what} ${e.instance} pid ${e.pid ?? "-"} ${e.detail ?? ""}`);
    };
    const supervisor = new Supervisor({
      env: { ...env, LOG_LEVEL: "info", VISIBILITY_TIMEOUT_SECONDS: String(VISIBILITY_SECONDS) },
      logDir: dir,
      onEvent,
    });
    // Disposed in this test's own finally: the stack fixture fails a test that leaves anything polling.
    try {
      const specs = pipelineProcesses({ apiPort, modelUrl: `${model.url}/invocations` });
      await supervisor.start(specs);
      say(`${supervisor.instances().length} processes ready in ${Date.now() - t0} ms: ${supervisor.instances().join(", ")}`);

      const api = new ApiClient(`http://127.0.0.1:${apiPort}`, await createTestApiKey(prisma, stack.stagingBucket));
      const { batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: [prefix], label: `chaos seed ${SEED}` });
      const submitted = Date.now();

      // The ingestion API first, within a moment of accepting the batch: its listing must resume on restart.
      const killed = new Map<string, number>();
      /** Instances between their kill and the end of their restart. */
      const down = new Set<string>();
      const killAndRestart = async (id: string, pauseMs: number) => {
        const service = id.split("#")[0]!;
        down.add(id);
        try {
          const [listed, done] = await Promise.all([
            prisma.document.count({ where: { batchId } }),
            prisma.page.count({ where: { document: { batchId }, state: "done" } }),
          ]);
          await supervisor.kill(id, `(${listed} documents listed, ${done} pages done)`);
          killed.set(service, (killed.get(service) ?? 0) + 1);
          await sleep(pauseMs);
          await supervisor.restart(id);
        } finally {
          down.delete(id);
        }
      };
      const pagesDone = () => prisma.page.count({ where: { document: { batchId }, state: "done" } });
      const pages = totalPages(truth);
      let finished = false;
      /** Resolves once `fraction` of the pages are done (or the batch has finished). */
      const progress = async (fraction: number) => {
        while (!finished && (await pagesDone()) < fraction * pages) await sleep(200);
      };
      const restarts: Promise<void>[] = [];
      const restartFailures: string[] = [];
      const killLater = (id: string) =>
        restarts.push(
          killAndRestart(id, randomInt(random, 200, 2_000)).catch((e: unknown) => {
            restartFailures.push(`${id}: ${String(e)}`);
          }),
        );

      // The ingestion API first, within a moment of accepting the batch: its listing must resume on restart.
      await sleep(randomInt(random, 0, 300));
      killLater("ingestion#1");

      // Then every worker service once per kill window, at a seeded random point of the window (a
      // share of the batch's pages done), so kills land on work in every phase; the windows overlap,
      // so the order of services is random too. One replica at a time.
      const workerServices = specs.map((s) => s.name).filter((n) => n !== "ingestion");
      const victims = workerServices
        .flatMap((service) => KILL_WINDOWS.map(([lo, hi]) => ({ service, moment: lo + random() * (hi - lo) })))
        .sort((a, b) => a.moment - b.moment);
      const killer = (async () => {
        for (const { service, moment } of victims) {
          await progress(moment);
          await sleep(randomInt(random, 0, 700));
          if (finished) return;
          const replicas = supervisor.instances(service).filter((id) => !down.has(id));
          if (replicas.length === 0) continue;
          // Restarts run alongside the next kills, as ECS replaces tasks while others die.
          killLater(replicas[randomInt(random, 0, replicas.length - 1)]!);
        }
      })();

      // The model, once pages reach it: down for a few seconds (503 on every call, the breaker
      // opens), then 500 on 30% of calls until 20 such failures were served, then well again.
      const outage = (async () => {
        await progress(random() * 0.3 + 0.05);
        if (finished) return;
        say(`${((Date.now() - t0) / 1000).toFixed(1)}s model down (${await pagesDone()} pages done)`);
        model.setFaults({ down: true });
        await sleep(4_000);
        say(`${((Date.now() - t0) / 1000).toFixed(1)}s model up, 30% of calls answered 500`);
        model.setFaults({ down: false, errorRate: 0.3 });
        for (let i = 0; i < 600 && !finished && (model.stats().byStatus["500"] ?? 0) < 20; i++) await sleep(100);
        say(`${((Date.now() - t0) / 1000).toFixed(1)}s model healthy (${await pagesDone()} pages done)`);
        model.setFaults({ errorRate: 0 });
      })();

      let state: string;
      try {
        state = await waitForBatch(prisma, batchId, BATCH_TIMEOUT_MS);
      } finally {
        finished = true;
        await Promise.all([killer, outage]);
        // Restarts still under way end before the report is asked for and the processes are stopped.
        await Promise.all(restarts);
      }
      say(`batch ${state} ${((Date.now() - submitted) / 1000).toFixed(1)} s after submission; model answered ${JSON.stringify(model.stats().byStatus)}`);

      // Messages of workers killed after their work but before their audit record come back after
      // their visibility timeout and complete the trail; wait for them while the workers still run.
      await waitForQuietQueues(stack, 4 * VISIBILITY_SECONDS * 1000);
      const report = await api.report(batchId);
      // ECS's scale-in: SIGTERM to every process; each must exit cleanly within the stop timeout.
      const stops = await supervisor.stopAll();
      say(`stopped: ${stops.map((s) => `${s.instance} ${s.ms} ms`).join(", ")}`);

      expect(supervisor.crashes(), "processes that died without being killed").toEqual([]);
      expect(restartFailures).toEqual([]);
      // Every service lost a process at least once while the batch was open.
      expect(workerServices.filter((n) => !killed.get(n))).toEqual([]);
      expect(model.stats().byStatus).toMatchObject({ "503": expect.any(Number), "500": expect.any(Number) });
      expect(stops.filter((s) => !s.withinTimeout || s.exit.code !== 0)).toEqual([]);
      expect(state).toBe("completed");
      await expectBatchMatchesTruth(stack, prisma, batchId, truth, report);
      // Killed workers' pages are rendered and scored again, each time as a redelivery the trail shows; nothing else is.
      await expectNoUnexplainedWork(prisma, batchId);
    } finally {
      await supervisor.dispose();
    }
  });
}
