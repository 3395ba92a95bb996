import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { createAwsClients, type CommonEnv } from "./config.js";
import type { QueueKey } from "./contracts.js";
import { Liveness, serveLiveness, type LivenessServer } from "./liveness.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { resolveQueueUrls, type QueueUrls } from "./queue-urls.js";
import { createTaskProtection, type TaskProtection } from "./task-protection.js";

/** What a service's `build` gets: its parsed configuration and the clients made from it. */
export interface ServiceDeps<C extends CommonEnv> {
  config: C;
  logger: Logger;
  s3: S3Client;
  sqs: SQSClient;
  prisma: PrismaClient;
  queueUrls: Record<QueueKey, QueueUrls>;
  /** Pass to each worker (`createWorker({ liveness })`); served on HEALTH_PORT for the health check. */
  liveness: Liveness;
  /** Pass to the workers whose jobs outlast the stop timeout (`createWorker({ taskProtection })`); free outside ECS. */
  taskProtection: TaskProtection;
  /** EMF metrics on stdout with `Service` = the service's name; pass to each worker (`createWorker({ metrics })`). */
  metrics: Metrics;
}

/** A service as `runService` drives it. */
export interface RunnableService {
  start(): void;
  stop(): Promise<void>;
  /** Set by a service that ends by itself (a one-off task): `runService` returns once it settles, or rejects with it. */
  finished?: Promise<void>;
}

export interface RunServiceOptions<C extends CommonEnv> {
  /** Service name in logs; may depend on the configuration (e.g. the splitter's role). */
  name: string | ((config: C) => string);
  /** The service's `loadConfig`; it throws a ConfigError naming each bad variable. */
  loadConfig: (env: Record<string, string | undefined>) => C;
  /** Builds the service from the configuration and the clients (async when it must read something first, e.g. a secret). */
  build: (deps: ServiceDeps<C>) => RunnableService | Promise<RunnableService>;
  /** @defaultValue process.env */
  env?: Record<string, string | undefined>;
  /** Signals that stop the service. @defaultValue SIGTERM (ECS scale-in) and SIGINT (Ctrl-C) */
  signals?: NodeJS.Signals[];
}

/**
 * A service's `main`: loads the configuration, makes the logger, AWS clients and Prisma,
 * resolves the queue URLs, builds and starts the service, and on the first stop signal stops
 * it and releases every client. Rejects (after logging why) when any step fails, so that
 * `main.ts` is `runService({...}).catch(() => process.exit(1))`.
 */
export async function runService<C extends CommonEnv>(opts: RunServiceOptions<C>): Promise<void> {
  let config: C;
  try {
    config = opts.loadConfig(opts.env ?? process.env);
  } catch (e) {
    // No logger yet: its level is configuration too.
    console.error(e);
    throw e;
  }
  const name = typeof opts.name === "function" ? opts.name(config) : opts.name;
  const logger = createLogger({ service: name, level: config.LOG_LEVEL });
  const { s3, sqs } = createAwsClients(config);
  const prisma = createPrisma({ databaseUrl: config.DATABASE_URL });
  // Listening before the service starts, so a signal during start is not missed. `once`: a
  // second Ctrl-C while stopping gets Node's default and ends the process.
  const signals = opts.signals ?? ["SIGTERM", "SIGINT"];
  let onSignal!: (signal: NodeJS.Signals) => void;
  const signalled = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  for (const s of signals) process.once(s, onSignal);
  const liveness = new Liveness();
  const metrics = createMetrics({ service: name });
  let health: LivenessServer | undefined;
  try {
    if (config.HEALTH_PORT) health = await serveLiveness(liveness, { port: config.HEALTH_PORT });
    const queueUrls = await resolveQueueUrls(sqs, config.QUEUE_PREFIX);
    const taskProtection = createTaskProtection({ agentUri: config.ECS_AGENT_URI, logger });
    const service = await opts.build({ config, logger, s3, sqs, prisma, queueUrls, liveness, taskProtection, metrics });
    service.start();
    logger.info("started");
    const signal = await (service.finished ? Promise.race([signalled, service.finished]) : signalled);
    if (signal) logger.info({ signal }, "stopping");
    await service.stop();
    logger.info("stopped");
  } catch (e) {
    logger.fatal({ err: e }, "service failed");
    throw e;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    await health?.close();
    metrics.close();
    await prisma.$disconnect();
    s3.destroy();
    sqs.destroy();
  }
}
