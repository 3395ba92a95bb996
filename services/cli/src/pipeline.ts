import { availableParallelism } from "node:os";
import { createOrchestrator } from "@docpipe/chunking-orchestrator";
import { createFailsafe, type FailsafeOptions } from "@docpipe/failsafe";
import { createInferenceClient } from "@docpipe/inference-client";
import { createApiKey, rotateApiKey } from "@docpipe/api-keys";
import { createIngestionService } from "@docpipe/ingestion";
import type { LocalStack } from "@docpipe/local-stack";
import { createPageConverter } from "@docpipe/page-converter";
import type { RenderPool } from "@docpipe/pdf";
import type { Logger } from "@docpipe/queue";
import { createReconciler, type Reconciler, type ReconcilerOptions } from "@docpipe/reconciler";
import { startReferenceModel, type Faults, type ReferenceModel } from "@docpipe/reference-model";
import { createSplitter } from "@docpipe/splitter";

export interface PipelineOptions {
  /** The stand-ins every service talks to. */
  stack: LocalStack;
  logger: Logger;
  /** Port of the ingestion API; 0 picks a free one. @defaultValue 0 */
  apiPort?: number;
  /** DPI of the PNGs. @defaultValue 150 */
  dpi?: number;
  /** MAX_PAGES of the orchestrator, splitters and failsafe: more pages fail as too_many_pages. @defaultValue 100000 */
  maxPages?: number;
  /**
   * NATIVE_SPLIT_MIN_BYTES of the splitters: sources this large are read by native mutool, as
   * every file of 2 GiB or more is; tests lower it to send a small file down that path. @defaultValue 2 GiB
   */
  nativeSplitMinBytes?: number;
  /** MAX_PIXELS of the converter and failsafe: a bigger page renders at a lower dpi. @defaultValue 50_000_000 */
  maxPixels?: number;
  /** Faults the reference model starts with. */
  modelFaults?: Partial<Faults>;
  /** How long the model client's breaker stays open. @defaultValue 30000 */
  breakerCooldownMs?: number;
  /** Long-poll wait of every worker; tests shorten it so stop() is quick. @defaultValue 20 */
  waitTimeSeconds?: number;
  /** Replay limits and delays of the failsafe; tests shorten them. */
  failsafe?: Pick<FailsafeOptions, "maxReplays" | "replayBaseSeconds" | "replayMaxSeconds" | "maxAttempts">;
  /**
   * The reconciler's timings. One machine's queues answer exactly and at once, so the local
   * defaults are short: a pass every 10 s, a unit idle for 30 s, a queue empty for 1 s.
   */
  reconciler?: Pick<ReconcilerOptions, "idleSeconds" | "settleSeconds" | "intervalSeconds" | "skewSeconds">;
  /** One render pool for the converter and the failsafe (the caller closes it); tests count its renders. @defaultValue one each */
  renderPool?: RenderPool;
}

export interface Pipeline {
  /** Base URL of the ingestion API. */
  apiUrl: string;
  /** The API key of the local runner (owner `local`, plan `local`, any bucket): pass it to `new ApiClient(apiUrl, apiKey)`. */
  apiKey: string;
  model: ReferenceModel;
  /** Runs every few seconds; `runOnce({ idleSeconds: 0 })` after a crash re-sends everything the crash lost. */
  reconciler: Reconciler;
  stop(): Promise<void>;
}

interface Stoppable {
  stop(): Promise<void>;
}

/**
 * Every docpipe service and the reference model in this process, against a local stack: what
 * `docpipe run` and the end-to-end tests use. Each service is the same factory its own
 * container's main.ts starts.
 */
export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const { stack, logger } = opts;
  const { s3, sqs, prisma, queueUrls, workBucket } = stack;
  const waitTimeSeconds = opts.waitTimeSeconds;
  const started: Stoppable[] = [];
  const stop = async () => {
    // Producers first, so nothing is sent to a consumer that has already stopped.
    for (const s of started.reverse()) await s.stop();
  };
  try {
    // The limits a deployment sets per service (MAX_PAGES, MAX_PIXELS), given once here.
    const maxPages = opts.maxPages !== undefined ? { maxPages: opts.maxPages } : {};
    const maxPixels = opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {};
    const model = await startReferenceModel({
      s3,
      logger: logger.child({ service: "reference-model" }),
      // It reads every page the converter may write.
      ...maxPixels,
      // A measure thread takes ~7 ms a page (~150 pages/s), far more than a core renders; each
      // thread more is an isolate to start (~100 CPU-ms) and to collect, for pages it never gets.
      measureThreads: Math.max(1, Math.floor(availableParallelism() / 4)),
      ...(opts.modelFaults && { faults: opts.modelFaults }),
    });
    started.push(model);
    const common = { sqs, s3, prisma, queueUrls, ...(waitTimeSeconds !== undefined && { waitTimeSeconds }) };
    const splitting = { workBucket, ...maxPages, ...(opts.nativeSplitMinBytes !== undefined && { nativeMinBytes: opts.nativeSplitMinBytes }) };
    const ingestion = createIngestionService({
      prisma,
      s3,
      sqs,
      queueUrls,
      workBucket,
      logger: logger.child({ service: "ingestion" }),
      port: opts.apiPort ?? 0,
    });
    const apiUrl = await ingestion.start();
    started.push(ingestion);
    const apiKey = await localRunnerKey(prisma);
    const workers = [
      createOrchestrator({ ...common, ...maxPages, logger: logger.child({ service: "chunking-orchestrator" }) }),
      createSplitter({ ...common, ...splitting, role: "large", logger: logger.child({ service: "splitter-large" }) }),
      createSplitter({ ...common, ...splitting, role: "small", logger: logger.child({ service: "splitter-small" }) }),
      createPageConverter({
        ...common,
        workBucket,
        ...(opts.dpi !== undefined && { dpi: opts.dpi }),
        ...maxPixels,
        ...(opts.renderPool && { pool: opts.renderPool }),
        logger: logger.child({ service: "page-converter" }),
      }),
      createInferenceClient({
        ...common,
        model: { url: `${model.url}/invocations` },
        // The per-task rate limit (20 calls/s by default) shares a remote endpoint's usage plan
        // among many inference tasks. Here the model is this process's own and only this client
        // calls it, so the client's concurrency bound is the only limit: at 20/s the model's
        // queue, not the hardware, set the pace of a local run (bench:e2e: converted pages
        // waited for scoring for the last 10 s of a 28 s batch).
        ratePerSecond: 0,
        ...(opts.breakerCooldownMs !== undefined && { breakerCooldownMs: opts.breakerCooldownMs }),
        logger: logger.child({ service: "inference-client" }),
      }),
      createFailsafe({
        ...common,
        workBucket,
        ...(opts.dpi !== undefined && { dpi: opts.dpi }),
        ...maxPages,
        ...maxPixels,
        ...opts.failsafe,
        ...(opts.renderPool && { pool: opts.renderPool }),
        logger: logger.child({ service: "failsafe" }),
      }),
    ];
    for (const w of workers) {
      w.start();
      started.push(w);
    }
    // Last, so it stops first: it sends to every queue.
    const reconciler = createReconciler({
      prisma,
      sqs,
      queueUrls,
      workBucket,
      intervalSeconds: 10,
      idleSeconds: 30,
      settleSeconds: 1,
      skewSeconds: 1,
      ...opts.reconciler,
      logger: logger.child({ service: "reconciler" }),
    });
    reconciler.start();
    started.push(reconciler);
    return { apiUrl, apiKey, model, reconciler, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The local runner's key. Only hashes are stored, so each start gives the one `local runner`
 * key a new secret (the previous run's is refused at once) instead of piling up a key per run;
 * its owner stays `local`, so earlier runs' batches stay visible.
 */
async function localRunnerKey(prisma: PipelineOptions["stack"]["prisma"]): Promise<string> {
  const existing = await prisma.apiKey.findFirst({ where: { owner: "local", name: "local runner" }, select: { id: true } });
  if (existing) return (await rotateApiKey(prisma, existing.id, { graceSeconds: 0 })).key;
  return (await createApiKey(prisma, { name: "local runner", owner: "local", plan: "local", buckets: ["*"] })).key;
}
