import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { QueueProducer, type Logger, type QueueUrls } from "@docpipe/queue";
import Fastify, { type FastifyInstance, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from "fastify";
import { serializerCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { hostname } from "node:os";
import { BatchLister, type ListerHooks } from "./lister.js";
import { authPlugin, type AuthOptions } from "./plugins/auth.js";
import { clientErrorHandler, errorsPlugin, frameworkErrors, validatorCompiler } from "./plugins/errors.js";
import { openApiPlugin } from "./plugins/openapi.js";
import { batchRoutes } from "./routes/batches.js";
import { documentRoutes } from "./routes/documents.js";
import { healthRoutes } from "./routes/health.js";
import { retryFailedRoutes } from "./routes/retry-failed.js";
import { usageRoutes } from "./routes/usage.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The background listing of batches; stopped (after its in-flight pages) when the app closes. */
    lister: BatchLister;
  }
}

export interface AppOptions {
  prisma: PrismaClient;
  s3: S3Client;
  sqs: SQSClient;
  /** The ingest queue; retry-failed also re-sends single pages and PNG notifications when it has theirs. */
  queueUrls: { ingest: QueueUrls; singlePage?: QueueUrls; convertedImage?: QueueUrls };
  /**
   * Bucket of split pages and PNGs: never a source of a batch (403 `bucket_reserved` for every
   * key), and where retry-failed finds failed pages to retry alone.
   */
  workBucket: string;
  /** An unfinished batch with no audit event for this long is reported as stalled. @defaultValue `600` */
  stallAfterSeconds?: number;
  logger: Logger;
  /** Written as `workerId` on audit records. @defaultValue `ingestion@<hostname>:<pid>` */
  workerId?: string;
  /** Largest request body accepted, in bytes. @defaultValue `65536` */
  bodyLimit?: number;
  /** A request (headers and body) that has not fully arrived after this long gets 408 `request_timeout`, in ms. @defaultValue `30000` */
  requestTimeoutMs?: number;
  /** Keys per ListObjectsV2 page (MaxKeys), 1 to 1000. @defaultValue `1000` */
  listPageSize?: number;
  /** Batches listed at the same time by this process. @defaultValue `2` */
  maxConcurrentListings?: number;
  /** SendMessageBatch requests in flight at once while sending a page's messages. @defaultValue `8` */
  sendParallelism?: number;
  /** How long the bucket check of `POST /batches` waits for S3, in ms. @defaultValue `5000` */
  s3CheckTimeoutMs?: number;
  /** How long `/readyz` waits for the database and the queue, in ms. @defaultValue `2000` */
  readyTimeoutMs?: number;
  /** Resume every batch left in state `listing` when the app is ready. @defaultValue `true` */
  resumeOnStart?: boolean;
  /** Authentication: how long known keys are cached, how many failures an address may make. */
  auth?: AuthOptions;
  /**
   * Proxies in front of this process whose X-Forwarded-For is believed, as hops (1 behind the
   * load balancer): the client address that failed authentications are counted per. @defaultValue `0`
   */
  trustProxy?: number;
  /** Test hooks into the listing of each page. */
  listerHooks?: ListerHooks;
  /** Most documents one batch may hold; see `onTooLarge`. @defaultValue `1000000` */
  maxDocumentsPerBatch?: number;
}

/** The fastify instance, typed with our pino logger and zod schemas. */
export type IngestionApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger, ZodTypeProvider>;

/**
 * The ingestion HTTP API: plugins for errors, authentication and the OpenAPI document, then
 * one per resource (batches, retry-failed, documents, usage, health), every route's zod schema
 * validating, typing and documenting it. Returns the fastify instance (not listening; call
 * `listen`, or use `app.server` with supertest after `ready()`), with `app.lister` listing
 * batches in the background. Closing the app stops the lister after its in-flight pages.
 */
export function buildApp(opts: AppOptions): IngestionApp {
  const { prisma, s3, sqs, logger } = opts;
  const workerId = opts.workerId ?? `ingestion@${hostname()}:${process.pid}`;
  const stallAfterSeconds = opts.stallAfterSeconds ?? 600;
  const producer = new QueueProducer({ sqs, queueUrl: opts.queueUrls.ingest.url, queue: "ingest", logger, parallelRequests: opts.sendParallelism ?? 8 });
  const lister = new BatchLister({
    prisma,
    s3,
    producer,
    logger,
    workerId,
    ...(opts.listPageSize !== undefined && { pageSize: opts.listPageSize }),
    ...(opts.maxConcurrentListings !== undefined && { maxConcurrentBatches: opts.maxConcurrentListings }),
    ...(opts.listerHooks && { hooks: opts.listerHooks }),
    ...(opts.maxDocumentsPerBatch !== undefined && { maxDocumentsPerBatch: opts.maxDocumentsPerBatch }),
  });

  const requestTimeout = opts.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: opts.bodyLimit ?? 65_536,
    requestTimeout,
    // Node checks the timeouts every connectionsCheckingInterval; a slow sender costs a socket that long at most.
    http: { headersTimeout: requestTimeout, connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.round(requestTimeout / 4))) },
    // Our errors plugin answers 503 in the API's shape while closing, and these two what fastify would answer in its own.
    return503OnClosing: false,
    clientErrorHandler,
    frameworkErrors,
    ...(opts.trustProxy && { trustProxy: (_address: string, hop: number) => hop < opts.trustProxy! }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: a text/plain body gets 415, not a schema error about a string.
  app.removeContentTypeParser("text/plain");
  app.decorate("lister", lister);
  app.addHook("onReady", async () => {
    if (opts.resumeOnStart ?? true) await lister.resumeAll();
  });
  app.addHook("onClose", async () => {
    await lister.stop();
  });

  app.register(errorsPlugin);
  app.register(authPlugin, { prisma, ...(opts.auth && { auth: opts.auth }) });
  app.register(openApiPlugin);
  app.register(batchRoutes, {
    prisma,
    s3,
    lister,
    workerId,
    stallAfterSeconds,
    s3CheckTimeoutMs: opts.s3CheckTimeoutMs ?? 5_000,
    reservedBuckets: [opts.workBucket],
  });
  app.register(retryFailedRoutes, { prisma, sqs, logger, workerId, queueUrls: opts.queueUrls, workBucket: opts.workBucket });
  app.register(documentRoutes, { prisma });
  app.register(usageRoutes, { prisma });
  app.register(healthRoutes, { prisma, sqs, ingestQueueUrl: opts.queueUrls.ingest.url, lister, readyTimeoutMs: opts.readyTimeoutMs ?? 2_000 });
  return app;
}
