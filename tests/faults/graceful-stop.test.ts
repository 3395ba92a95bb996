// Graceful stop: ECS sends SIGTERM before it scales a task in. Each worker service gets one while
// it is in the middle of a message, and must exit within the stop timeout having either finished
// that message or given it back to the queue; a restarted worker completes whatever was given
// back, and the batch ends exactly as it would have without the stops.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QueueKey } from "@docpipe/queue";
import { freePort } from "@docpipe/local-stack";
import { startReferenceModel } from "@docpipe/reference-model";
import { ApiClient } from "@docpipe/cli";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { queueCounts } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { buildCorpus, createTestApiKey, expectBatchMatchesTruth, planCorpus, seededRandom, totalPages, waitForBatch } from "./support/scenario.js";
import { pipelineProcesses } from "./support/services.js";
import { Supervisor, type StopResult } from "./support/supervisor.js";

const say = (msg: string) => process.stdout.write(`[graceful] ${msg}\n`);

/** What a worker logs, on its way out, for a message it was handling when SIGTERM came. */
const FINISHED = "message handled";
const RELEASED = "stop timed out; releasing unfinished messages to the queue";

test("SIGTERM mid-message: every worker finishes or releases its message, exits in time, and nothing is lost", { timeout: 6 * 60_000 }, async ({ stack, prisma, env }) => {
  const dir = await mkdtemp(join(tmpdir(), "docpipe-graceful-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const truth = await buildCorpus(stack, dir, "graceful/", planCorpus(seededRandom(11), { singles: 12, small: 12, large: 4, minPages: 130 }));
  const model = await startReferenceModel({ s3: stack.s3 });
  onTestFinished(() => model.stop());

  const apiPort = await freePort();
  // Debug level: the worker logs each message it finishes, which tells a stop mid-message from an idle one.
  const supervisor = new Supervisor({ env: { ...env, LOG_LEVEL: "debug", VISIBILITY_TIMEOUT_SECONDS: "10" }, logDir: dir });
  const specs = new Map(pipelineProcesses({ apiPort, modelUrl: `${model.url}/invocations`, replicas: 1 }).map((s) => [s.name, s]));
  const depth = (queue: QueueKey) => queueCounts(stack.sqs, stack.queueUrls[queue].url);
  // Quick polls: a worker holds a message for moments only, and a SIGTERM must land in one.
  const until = (what: string, ok: () => Promise<boolean>) => waitFor(what, ok, { intervalMs: 25 });
  const stops: StopResult[] = [];
  /**
   * Starts the service once its input queue has a backlog, SIGTERMs it while it holds a message,
   * and restarts it. A SIGTERM that lands between two messages proves nothing, so it is tried again.
   */
  const stopMidMessage = async (name: string, queue: QueueKey, backlog: number) => {
    await until(`${backlog} messages on ${queue}`, async () => (await depth(queue)).visible >= backlog);
    for (let attempt = 1; ; attempt++) {
      if (supervisor.instances(name).length === 0) await supervisor.start([specs.get(name)!]);
      else await supervisor.restart(`${name}#1`);
      await until(`${name} holding a message`, async () => (await depth(queue)).inFlight > 0);
      const result = await supervisor.stop(`${name}#1`);
      stops.push(result);
      const finished = result.linesAfterSignal.filter((l) => l.msg === FINISHED).length;
      const released = result.linesAfterSignal.filter((l) => l.msg === RELEASED).length;
      say(`${name}: SIGTERM -> exit ${JSON.stringify(result.exit)} in ${result.ms} ms; finished ${finished}, released ${released} (try ${attempt})`);
      if (finished + released > 0) return result;
      if (attempt === 3) throw new Error(`${name} was never stopped mid-message in 3 tries; see ${supervisor.logFile(`${name}#1`)}`);
    }
  };

  try {
    // The ingestion API and the failsafe run throughout; every other service waits for a backlog.
    await supervisor.start([specs.get("ingestion")!, ...(specs.has("failsafe") ? [specs.get("failsafe")!] : [])]);
    const api = new ApiClient(`http://127.0.0.1:${apiPort}`, await createTestApiKey(prisma, stack.stagingBucket));
    const { batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["graceful/"], label: "graceful stop" });

    await stopMidMessage("chunking-orchestrator", "ingest", truth.length);
    await supervisor.restart("chunking-orchestrator#1");
    // A large split holds its message for a while: the stop waits for it.
    await stopMidMessage("splitter-large", "large", 2);
    await supervisor.restart("splitter-large#1");
    await stopMidMessage("splitter-small", "small", 4);
    await supervisor.restart("splitter-small#1");
    await stopMidMessage("page-converter", "singlePage", 10);
    await supervisor.restart("page-converter#1");

    // A slow model: SIGTERM while calls are out; the stop waits for them and stores their results.
    model.setFaults({ delayMs: 1_500 });
    const slow = await stopMidMessage("inference-client", "convertedImage", 5);
    expect(slow.linesAfterSignal.some((l) => l.msg === FINISHED)).toBe(true);
    // A model that is down: the breaker holds the pages; the stop gives them back at once instead of waiting.
    model.setFaults({ delayMs: 0, down: true });
    model.resetStats();
    await supervisor.restart("inference-client#1");
    await until("the breaker to open", async () => (model.stats().byStatus["503"] ?? 0) >= 5 && (await depth("convertedImage")).inFlight > 0);
    const held = await supervisor.stop("inference-client#1");
    stops.push(held);
    say(`inference-client (breaker open): SIGTERM -> exit ${JSON.stringify(held.exit)} in ${held.ms} ms`);
    expect(held.linesAfterSignal.some((l) => l.msg === RELEASED)).toBe(true);
    model.setFaults({ down: false });
    await supervisor.restart("inference-client#1");

    expect(await waitForBatch(prisma, batchId, 3 * 60_000)).toBe("completed");
    const report = await api.report(batchId);
    // And at the end, SIGTERM to every process at once while idle.
    stops.push(...(await supervisor.stopAll()));

    expect(supervisor.crashes(), "processes that died without being stopped").toEqual([]);
    expect(
      stops.filter((s) => !s.withinTimeout || s.exit.code !== 0).map((s) => `${s.instance}: ${JSON.stringify(s.exit)} after ${s.ms} ms`),
      `processes that did not exit cleanly within ${supervisor.stopTimeoutMs} ms`,
    ).toEqual([]);
    // Released pages come back at once: no waiting for the visibility timeout or the stop timeout.
    expect(held.ms).toBeLessThan(10_000);
    say(`${truth.length} documents, ${totalPages(truth)} pages; stops: ${stops.map((s) => `${s.instance} ${s.ms} ms`).join(", ")}`);
    await expectBatchMatchesTruth(stack, prisma, batchId, truth, report);
  } finally {
    await supervisor.dispose();
  }
});
