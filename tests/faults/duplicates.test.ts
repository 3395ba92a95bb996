// Duplicate delivery: every message of a run is sent twice (each SendMessage and each entry of
// each SendMessageBatch, the S3 object-created notifications included), as SQS's at-least-once
// delivery may do. The outcome must be the same as a run without duplicates, and so must the
// work: every render and every model call is counted, and none may go beyond the retries the
// audit trail records (here there are none: each unit is claimed by one delivery and finished once).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SendMessageBatchCommandOutput } from "@aws-sdk/client-sqs";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { ApiClient } from "@docpipe/cli";
import { startPipeline } from "@docpipe/cli";
import { RenderPool } from "@docpipe/pdf";
import { testLogger } from "../e2e/support.js";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import {
  buildCorpus,
  chaosSeeds,
  chunkRanges,
  createTestApiKey,
  expectBatchMatchesTruth,
  expectNoUnexplainedWork,
  planCorpus,
  seededRandom,
  totalPages,
  waitForBatch,
} from "./support/scenario.js";

const MIDDLEWARE = "deliver-every-message-twice";

interface Twice {
  /** Messages sent a second time. */
  duplicated: number;
  /** Second sends SQS refused (each would be a message delivered once only). */
  refused: number;
}

/**
 * Makes `sqs` send every message twice: each SendMessage and SendMessageBatch is sent again
 * right after the first send succeeds, so both copies are in the queue together and may be
 * received in the same batch by two handlers at once, the hardest case for idempotency.
 */
function deliverEverythingTwice(sqs: SQSClient): Twice {
  const counts: Twice = { duplicated: 0, refused: 0 };
  sqs.middlewareStack.add(
    (next, context) => async (args) => {
      const first = await next(args);
      if (context.commandName === "SendMessageCommand") {
        await next(args).then(
          () => counts.duplicated++,
          () => counts.refused++,
        );
      } else if (context.commandName === "SendMessageBatchCommand") {
        const again = await next(args).catch(() => undefined);
        const out = again?.output as SendMessageBatchCommandOutput | undefined;
        counts.duplicated += out?.Successful?.length ?? 0;
        counts.refused += out ? (out.Failed?.length ?? 0) : ((args.input as { Entries?: unknown[] }).Entries?.length ?? 0);
      }
      return first;
    },
    { step: "initialize", name: MIDDLEWARE },
  );
  return counts;
}

for (const seed of chaosSeeds(7)) test(`every message delivered twice: same PNGs, results, audit trail and counts as delivered once (seed ${seed})`, { timeout: 5 * 60_000 }, async ({ stack }) => {
  const dir = await mkdtemp(join(tmpdir(), "docpipe-dup-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const truth = await buildCorpus(stack, dir, "dup/", planCorpus(seededRandom(seed), { singles: 6, small: 6, large: 3, minPages: 90 }));

  // The in-process pipeline shares the stack's SQS client, as does the stack's S3 → SQS bridge.
  const twice = deliverEverythingTwice(stack.sqs);
  onTestFinished(() => {
    stack.sqs.middlewareStack.remove(MIDDLEWARE);
  });
  // Renders are counted at the pool the converter (and the failsafe, should it run) draw with; model calls at the model.
  const pool = new RenderPool({ size: 2 });
  onTestFinished(() => pool.close());
  const pipeline = await startPipeline({ stack, logger: testLogger(), dpi: 50, waitTimeSeconds: 1, renderPool: pool });
  let batchId: string;
  let report: Awaited<ReturnType<ApiClient["report"]>>;
  try {
    const api = new ApiClient(pipeline.apiUrl, await createTestApiKey(stack.prisma, stack.stagingBucket));
    ({ batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: ["dup/"], label: "duplicates" }));
    expect(await waitForBatch(stack.prisma, batchId, 4 * 60_000)).toBe("completed");
    report = await api.report(batchId);
  } finally {
    // Stopping waits for in-flight handlers, so the duplicates' audit records are in before we read them.
    await pipeline.stop();
  }
  stack.sqs.middlewareStack.remove(MIDDLEWARE);

  // Every message a run sends: one ingest per document, one large/small per split, one single-page and one S3 notification per page.
  const pages = totalPages(truth);
  const chunks = truth.filter((t) => t.cls === "large").reduce((s, t) => s + chunkRanges(t.file.pageCount).length, 0);
  const large = truth.filter((t) => t.cls === "large").length;
  const small = truth.filter((t) => t.cls === "small").length;
  // (A lower bound: a stage that redoes idempotent work for a duplicate sends its messages again.)
  expect(twice.refused).toBe(0);
  expect(twice.duplicated).toBeGreaterThanOrEqual(truth.length + large + small + chunks + 2 * pages);

  await expectBatchMatchesTruth(stack, stack.prisma, batchId, truth, report);

  // The work: one render and one model call per page, as without duplicates; no retry was needed.
  const work = { renders: pool.requested, modelCalls: pipeline.model.stats().requests };
  process.stdout.write(`[duplicates] ${pages} pages: ${work.renders} renders, ${work.modelCalls} model calls\n`);
  expect(await expectNoUnexplainedWork(stack.prisma, batchId, work)).toEqual({ convert: pages, inference: pages });
  expect(work).toEqual({ renders: pages, modelCalls: pages });

  // The audit trail: every unit of work succeeded (checked above), and exactly once: a second
  // copy either finds the unit's completion record or loses the claim to the first copy.
  const events = await stack.prisma.auditEvent.findMany({
    where: { batchId, documentId: { not: null }, outcome: { in: ["succeeded", "skipped"] } },
    select: { documentId: true, stage: true, pageNumber: true, outcome: true, details: true },
  });
  const unit = (e: (typeof events)[number]) => {
    const d = e.details as { firstPage?: number; lastPage?: number } | null;
    const part = e.stage === "split-small" ? ` ${d?.firstPage}-${d?.lastPage}` : e.pageNumber ? ` #${e.pageNumber}` : "";
    return `${e.stage} ${e.documentId}${part}`;
  };
  const successes = new Map<string, number>();
  for (const e of events.filter((x) => x.outcome === "succeeded")) successes.set(unit(e), (successes.get(unit(e)) ?? 0) + 1);
  const repeated = [...successes].filter(([, n]) => n > 1).map(([u, n]) => `${u}: ${n} succeeded`);
  process.stdout.write(`[duplicates] units with more than one success: ${repeated.length}\n${repeated.join("\n")}\n`);
  expect(repeated).toEqual([]);
  const skipped = (stage: string) => events.filter((e) => e.outcome === "skipped" && e.stage === stage).length;
  // The second copies arrived and were recognised, at every stage.
  expect({
    classify: skipped("classify") >= truth.length,
    "split-large": skipped("split-large") >= large,
    "split-small": skipped("split-small") >= small + chunks,
    convert: skipped("convert") >= pages,
    inference: skipped("inference") >= pages,
  }).toEqual({ classify: true, "split-large": true, "split-small": true, convert: true, inference: true });
});
