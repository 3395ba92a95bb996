// A purged queue mid-batch (an operator's mistake on AWS; on a laptop, the same as the process
// holding the queues dying): every message waiting or in flight is gone, while the rows and the
// objects stay. Nothing else will ever send those messages again; the reconciler must, and the
// batch must end exactly as a run without the purge does.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient, startPipeline } from "@docpipe/cli";
import { RenderPool } from "@docpipe/pdf";
import { testLogger } from "../e2e/support.js";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import {
  buildCorpus,
  chaosSeeds,
  createTestApiKey,
  expectBatchMatchesTruth,
  expectNoUnexplainedWork,
  planCorpus,
  seededRandom,
  totalPages,
  waitForBatch,
} from "./support/scenario.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const seed of chaosSeeds(11)) {
  test(`every queue purged mid-batch: the reconciler re-sends what was lost (seed ${seed})`, { timeout: 6 * 60_000 }, async ({ stack }) => {
    const say = (msg: string) => process.stdout.write(`[purge seed ${seed}] ${msg}\n`);
    const random = seededRandom(seed);
    const dir = await mkdtemp(join(tmpdir(), "docpipe-purge-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const truth = await buildCorpus(stack, dir, "purge/", planCorpus(random, { singles: 5, small: 6, large: 3, minPages: 80 }));
    const pages = totalPages(truth);
    // Purge when this share of the pages is scored: somewhere between the first splits and the last results.
    const at = 0.1 + random() * 0.6;
    say(`${truth.length} documents, ${pages} pages; purging every queue at ${(at * 100).toFixed(0)}% of the pages scored`);

    const pool = new RenderPool({ size: 2 });
    onTestFinished(() => pool.close());
    const pipeline = await startPipeline({
      stack,
      logger: testLogger(),
      dpi: 50,
      waitTimeSeconds: 1,
      renderPool: pool,
      reconciler: { intervalSeconds: 1, idleSeconds: 2, settleSeconds: 1, skewSeconds: 0 },
    });
    let batchId: string;
    let report: Awaited<ReturnType<ApiClient["report"]>>;
    try {
      const api = new ApiClient(pipeline.apiUrl, await createTestApiKey(stack.prisma, stack.stagingBucket));
      ({ batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["purge/"], label: `purge seed ${seed}` }));
      const scored = () => stack.prisma.page.count({ where: { document: { batchId }, state: "done" } });
      while ((await scored()) < at * pages) await sleep(100);
      stack.purgeQueues();
      say(`purged with ${await scored()} pages scored`);
      expect(await waitForBatch(stack.prisma, batchId, 4 * 60_000)).toBe("completed");
      report = await api.report(batchId);
    } finally {
      await pipeline.stop();
    }

    await expectBatchMatchesTruth(stack, stack.prisma, batchId, truth, report);
    const reconciled = await stack.prisma.auditEvent.groupBy({ by: ["stage"], where: { batchId, outcome: "reconciled" }, _count: true });
    say(`reconciled: ${reconciled.map((r) => `${r.stage} ${r._count}`).join(", ")}; renders ${pool.requested}, model calls ${pipeline.model.stats().requests}`);
    expect(reconciled.length).toBeGreaterThan(0);
    await expectNoUnexplainedWork(stack.prisma, batchId, { renders: pool.requested, modelCalls: pipeline.model.stats().requests });
  });
}
