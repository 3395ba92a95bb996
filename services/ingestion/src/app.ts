import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, QueueProducer, type Logger, type QueueUrls } from "@docpipe/queue";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from "fastify";
import { hostname } from "node:os";
import type { z } from "zod";
import { BucketError, HttpError, NotFoundError, ValidationError, type ErrorBody } from "./errors.js";
import { BatchLister, type ListerHooks } from "./lister.js";
import { registerOperatorRoutes } from "./operator.js";
import { buildBatchReport, pageProgress } from "./report.js";
import { detectStall } from "./stall.js";
import {
  CreateBatchBody,
  decodeCursor,
  documentStates,
  encodeCursor,
  IdParams,
  issuesToDetails,
  ListDocumentsQuery,
  ReportQuery,
} from "./schemas.js";

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
  /** Bucket of split pages and PNGs, for retrying failed pages alone (else their whole document is re-run). */
  workBucket?: string;
  /** An unfinished batch with no audit event for this long is reported as stalled. @defaultValue `600` */
  stallAfterSeconds?: number;
  logger: Logger;
  /** Written as `workerId` on audit records. @defaultValue `ingestion@<hostname>:<pid>` */
  workerId?: string;
  /** Largest request body accepted, in bytes. @defaultValue `65536` */
  bodyLimit?: number;
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
  /** Test hooks into the listing of each page. */
  listerHooks?: ListerHooks;
}

/** The fastify instance, typed with our pino logger. */
export type IngestionApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

function parse<S extends z.ZodType>(schema: S, value: unknown, where: "body" | "path" | "query"): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ValidationError(`invalid request ${where}`, issuesToDetails(r.error));
}

/** Fastify's own 4xx errors (body parsing, limits) under our codes. */
const fastifyCodes: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "bad_request",
};

/** The first ListObjectsV2 call, made before answering 202: can we list this bucket at all? */
async function checkBucket(s3: S3Client, bucket: string, prefix: string, timeoutMs: number): Promise<void> {
  try {
    await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 }), {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const err = coerceError(e);
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (err.name === "NoSuchBucket" || status === 404) {
      throw new BucketError(422, "bucket_not_found", `bucket ${bucket} does not exist`, bucket, { cause: err });
    }
    if (err.name === "AccessDenied" || err.name === "AllAccessDisabled" || status === 403) {
      throw new BucketError(403, "bucket_forbidden", `this service may not list bucket ${bucket}`, bucket, { cause: err });
    }
    if (err.name === "PermanentRedirect" || status === 301) {
      throw new BucketError(422, "bucket_wrong_region", `bucket ${bucket} is in another region than this service`, bucket, {
        cause: err,
      });
    }
    throw new BucketError(503, "bucket_unavailable", `S3 did not answer for bucket ${bucket}; try again`, bucket, { cause: err });
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const toNumber = (v: bigint | null): number | null => (v === null ? null : Number(v));

/**
 * The ingestion HTTP API. Returns the fastify instance (not listening; call `listen`, or use
 * `app.server` with supertest after `ready()`), with `app.lister` listing batches in the
 * background. Closing the app stops the lister after its in-flight pages.
 */
export function buildApp(opts: AppOptions): IngestionApp {
  const { prisma, s3, sqs } = opts;
  const logger = opts.logger;
  const s3CheckTimeoutMs = opts.s3CheckTimeoutMs ?? 5_000;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 2_000;
  const producer = new QueueProducer({
    sqs,
    queueUrl: opts.queueUrls.ingest.url,
    queue: "ingest",
    logger,
    parallelRequests: opts.sendParallelism ?? 8,
  });
  const workerId = opts.workerId ?? `ingestion@${hostname()}:${process.pid}`;
  const lister = new BatchLister({
    prisma,
    s3,
    producer,
    logger,
    workerId,
    ...(opts.listPageSize !== undefined && { pageSize: opts.listPageSize }),
    ...(opts.maxConcurrentListings !== undefined && { maxConcurrentBatches: opts.maxConcurrentListings }),
    ...(opts.listerHooks && { hooks: opts.listerHooks }),
  });

  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: opts.bodyLimit ?? 65_536,
    return503OnClosing: true,
  });
  app.decorate("lister", lister);
  // JSON only: a text/plain body gets 415, not a schema error about a string.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) {
      if (error.statusCode >= 500) request.log.warn({ err: error }, "request failed");
      return reply.code(error.statusCode).send(error.toBody());
    }
    const status = error.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      const body: ErrorBody = {
        error: { code: fastifyCodes[error.code] ?? "bad_request", message: error.message, details: null },
      };
      return reply.code(status).send(body);
    }
    request.log.error({ err: error }, "unhandled error");
    const body: ErrorBody = { error: { code: "internal_error", message: "internal error", details: null } };
    return reply.code(500).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = {
      error: { code: "route_not_found", message: `no route ${request.method} ${request.url}`, details: null },
    };
    return reply.code(404).send(body);
  });

  app.addHook("onReady", async () => {
    if (opts.resumeOnStart ?? true) await lister.resumeAll();
  });
  app.addHook("onClose", async () => {
    await lister.stop();
  });

  app.post("/batches", async (request, reply) => {
    const body = parse(CreateBatchBody, request.body, "body");
    await checkBucket(s3, body.bucket, body.prefixes[0]!, s3CheckTimeoutMs);
    const batch = await prisma.$transaction(async (tx) => {
      const b = await tx.batch.create({
        data: {
          bucket: body.bucket,
          prefixes: body.prefixes,
          options: { skipAlreadyProcessed: body.skipAlreadyProcessed ?? false },
          ...(body.label !== undefined && { label: body.label }),
        },
        select: { id: true, state: true },
      });
      await tx.auditEvent.create({
        data: {
          batchId: b.id,
          stage: "ingestion",
          outcome: "started",
          workerId,
          details: { event: "batch_created", bucket: body.bucket, prefixes: body.prefixes },
        },
      });
      return b;
    });
    request.log.info({ batchId: batch.id, bucket: body.bucket, prefixes: body.prefixes.length }, "batch accepted");
    lister.start(batch.id);
    return reply
      .code(202)
      .header("location", `/batches/${batch.id}`)
      .send({ batchId: batch.id, state: batch.state });
  });

  app.get("/batches/:id", async (request) => {
    const { id } = parse(IdParams, request.params, "path");
    const batch = await prisma.batch.findUnique({ where: { id } });
    if (!batch) throw new NotFoundError("batch", id);
    const [groups, pages, stalled] = await Promise.all([
      prisma.document.groupBy({ by: ["state"], where: { batchId: id }, _count: { _all: true } }),
      pageProgress(prisma, id),
      detectStall(prisma, batch, (opts.stallAfterSeconds ?? 600) * 1000),
    ]);
    const documents = Object.fromEntries(documentStates.map((s) => [s, 0])) as Record<(typeof documentStates)[number], number>;
    for (const g of groups) documents[g.state] = g._count._all;
    return {
      batchId: batch.id,
      label: batch.label,
      bucket: batch.bucket,
      prefixes: batch.prefixes,
      state: batch.state,
      documentCount: batch.documentCount,
      skippedCount: batch.skippedCount,
      documents,
      pages,
      listing: {
        finished: batch.listingPrefix >= batch.prefixes.length,
        prefixIndex: batch.listingPrefix,
        prefix: batch.prefixes[batch.listingPrefix] ?? null,
      },
      createdAt: batch.createdAt,
      listedAt: batch.listedAt,
      completedAt: batch.completedAt,
      stalled,
    };
  });

  app.get("/batches/:id/documents", async (request) => {
    const { id } = parse(IdParams, request.params, "path");
    const query = parse(ListDocumentsQuery, request.query, "query");
    let after: string | undefined;
    if (query.cursor !== undefined) {
      after = decodeCursor(query.cursor);
      if (after === undefined) {
        throw new ValidationError("invalid request query", [{ path: "cursor", message: "not a cursor this API returned" }]);
      }
    }
    const batch = await prisma.batch.findUnique({ where: { id }, select: { bucket: true } });
    if (!batch) throw new NotFoundError("batch", id);
    // Keyset pagination on (batchId, bucket, key): with both fixed, the unique index serves keys in order.
    const rows = await prisma.document.findMany({
      where: { batchId: id, bucket: batch.bucket, ...(query.state && { state: query.state }), ...(after !== undefined && { key: { gt: after } }) },
      orderBy: { key: "asc" },
      take: query.limit + 1,
      select: {
        id: true,
        bucket: true,
        key: true,
        state: true,
        class: true,
        size: true,
        pageCount: true,
        failureCode: true,
        failureReason: true,
        createdAt: true,
        updatedAt: true,
        completedAt: true,
      },
    });
    const more = rows.length > query.limit;
    const items = (more ? rows.slice(0, query.limit) : rows).map((d) => ({ ...d, size: toNumber(d.size) }));
    return { items, nextCursor: more ? encodeCursor(items[items.length - 1]!.key) : null };
  });

  app.get("/batches/:id/report", async (request) => {
    const { id } = parse(IdParams, request.params, "path");
    const { documents } = parse(ReportQuery, request.query, "query");
    const report = await buildBatchReport(prisma, id, { perDocument: documents, stallAfterSeconds: opts.stallAfterSeconds ?? 600 });
    if (!report) throw new NotFoundError("batch", id);
    return report;
  });

  app.get("/documents/:id", async (request) => {
    const { id } = parse(IdParams, request.params, "path");
    const doc = await prisma.document.findUnique({
      where: { id },
      include: {
        pages: {
          orderBy: { pageNumber: "asc" },
          include: { result: { select: { modelName: true, modelVersion: true, features: true, latencyMs: true, createdAt: true } } },
        },
        auditEvents: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
      },
    });
    if (!doc) throw new NotFoundError("document", id);
    const { auditEvents, pages, size, ...rest } = doc;
    return {
      ...rest,
      size: toNumber(size),
      pages,
      auditTrail: auditEvents.map((a) => ({ ...a, id: a.id.toString() })),
    };
  });

  registerOperatorRoutes(app, { prisma, sqs, logger, workerId, queueUrls: opts.queueUrls, ...(opts.workBucket !== undefined && { workBucket: opts.workBucket }) });

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    const [database, queue] = await Promise.allSettled([
      withTimeout(prisma.$queryRaw`SELECT 1`, readyTimeoutMs, "database"),
      sqs.send(new GetQueueAttributesCommand({ QueueUrl: opts.queueUrls.ingest.url, AttributeNames: ["QueueArn"] }), {
        abortSignal: AbortSignal.timeout(readyTimeoutMs),
      }),
    ]);
    const describe = (r: PromiseSettledResult<unknown>): string => (r.status === "fulfilled" ? "ok" : coerceError(r.reason).message);
    const checks = { database: describe(database), queue: describe(queue), lister: lister.stopping ? "stopping" : "ok" };
    if (database.status === "fulfilled" && queue.status === "fulfilled" && !lister.stopping) return { status: "ready", checks };
    const body: ErrorBody = { error: { code: "not_ready", message: "a dependency is unreachable", details: checks } };
    return reply.code(503).send(body);
  });

  return app;
}
