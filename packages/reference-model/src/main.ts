import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { S3Client } from "@aws-sdk/client-s3";
import { pino, type Logger } from "pino";
import { z } from "zod";
import { startReferenceModel } from "./server.js";

/**
 * Runs the reference model on its own: the model image (docker/Dockerfile, target `model`) on a
 * SageMaker endpoint, docker compose, or a machine beside the pipeline. SageMaker starts the
 * container as `<image> serve`; the argument is ignored. On SageMaker the S3 client's
 * credentials are the endpoint's execution role, found by the SDK's default chain.
 */
const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default("0.0.0.0"),
  AWS_REGION: z.string().default("us-east-1"),
  AWS_ENDPOINT_URL_S3: z.url().optional(),
  S3_FORCE_PATH_STYLE: z.enum(["true", "false"]).default("false"),
  LOG_LEVEL: z.string().default("info"),
  // The measure is synchronous (one core per process), so one process per core: 0 = as many as CPUs.
  MODEL_WORKERS: z.coerce.number().int().min(0).max(256).default(0),
  // At least the page converter's MAX_PIXELS, or its largest pages are refused (422).
  MAX_PIXELS: z.coerce.number().int().min(1).default(50_000_000),
});
type Env = z.infer<typeof Env>;

/** One server process: listens until SIGTERM or SIGINT, then finishes the invocations in flight. */
async function serve(env: Env, logger: Logger): Promise<void> {
  const s3 = new S3Client({
    region: env.AWS_REGION,
    forcePathStyle: env.S3_FORCE_PATH_STYLE === "true",
    ...(env.AWS_ENDPOINT_URL_S3 && { endpoint: env.AWS_ENDPOINT_URL_S3 }),
  });
  try {
    // One measure thread per process (there is a process per core already). Not for parallelism:
    // each page's inflated pixels (~6 MB at 150 dpi) are external memory that V8 reclaims with a
    // full mark-compact every few pages, and on a thread of its own that marks the measure's few
    // MB of heap, not the S3 client's ~20.
    const model = await startReferenceModel({ s3, port: env.PORT, host: env.HOST, logger, measureThreads: 1, maxPixels: env.MAX_PIXELS });
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    });
    await model.stop();
  } finally {
    s3.destroy();
    // A worker's channel to the primary would keep it alive.
    if (cluster.isWorker) cluster.worker?.disconnect();
  }
}

/**
 * The primary of several workers sharing the port: replaces a worker that dies, and passes a
 * stop signal on to every worker (tini signals only the primary), then waits for them.
 */
async function supervise(workers: number, logger: Logger): Promise<void> {
  let stopping = false;
  const fork = () => cluster.fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    // A page that crashes the decoder must not take the endpoint down with it.
    logger.error({ workerPid: worker.process.pid, code, signal }, "model worker died; starting another");
    fork();
  });
  for (let i = 0; i < workers; i++) fork();
  logger.info({ workers }, "reference model workers started");
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  stopping = true;
  await Promise.all(
    Object.values(cluster.workers ?? {}).map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (!worker || worker.isDead()) return resolve();
          worker.once("exit", () => resolve());
          worker.process.kill("SIGTERM");
        }),
    ),
  );
}

async function main(): Promise<void> {
  const parsed = Env.safeParse(process.env);
  if (!parsed.success) throw new Error(`invalid configuration: ${parsed.error.message}`);
  const env = parsed.data;
  const logger = pino({ level: env.LOG_LEVEL, base: { service: "reference-model" } });
  const workers = env.MODEL_WORKERS === 0 ? availableParallelism() : env.MODEL_WORKERS;
  if (workers > 1 && cluster.isPrimary) await supervise(workers, logger);
  else await serve(env, logger);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
