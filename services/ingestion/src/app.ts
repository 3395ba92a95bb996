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
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { hostname } from "node:os";
import { z } from "zod";
import { AccessError, BucketError, HttpError, NotFoundError, ThrottledError, ValidationError, type ErrorBody } from "./errors.js";
import { admitRequest, allowListProblem, keyUsage, meterBatch, meterQuotaRefusal, quotaStatus, type CallerKey } from "@docpipe/api-keys";
import { BatchLister, type ListerHooks } from "./lister.js";
import { registerOperatorRoutes } from "./operator.js";
import { buildBatchReport, pageProgress } from "./report.js";
import { detectStall } from "./stall.js";
import { BatchOptions } from "./batch-options.js";
import {
  BatchAccepted,
  BatchStatusResponse,
  CreateBatchBody,
  DocumentsPage,
  ErrorResponse,
  UsageResponse,
  decodeCursor,
  documentStates,
  encodeCursor,
  IdParams,
  issuesToDetails,
  ListDocumentsQuery,
  ReportQuery,
} from "@docpipe/api-contract";

declare module "fastify" {
  interface FastifyInstance {
    /** The background listing of batches; stopped (after its in-flight pages) when the app closes. */
    lister: BatchLister;
  }
  interface FastifyRequest {
    /** The authenticated key; set for every route but the public ones. */
    caller: CallerKey | null;
  }
  interface FastifyContextConfig {
    /** No API key needed (health checks, docs). */
    public?: boolean;
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
  /** Most documents one batch may hold; see `onTooLarge`. @defaultValue `1000000` */
  maxDocumentsPerBatch?: number;
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

/** JSON Schema (OpenAPI 3.0 flavour) of a zod schema, for the route's documentation. */
function doc(schema: z.ZodType, io: "input" | "output" = "output"): Record<string, unknown> {
  return z.toJSONSchema(schema, { io, target: "openapi-3.0", unrepresentable: "any" }) as Record<string, unknown>;
}

const errorDoc = (description: string) => ({ description, ...doc(ErrorResponse) });
const securedErrors = {
  401: errorDoc("`api_key_missing` (no x-api-key or Authorization: Bearer header) or `api_key_unknown`"),
  403: errorDoc("`api_key_disabled`, or `api_key_expired` (a rotated secret past its grace period)"),
  429: errorDoc("`rate_limited`: over the plan's rate; Retry-After says when to try again"),
};

/** The key from `x-api-key`, or from `Authorization: Bearer <key>`. */
function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const x = headers["x-api-key"];
  if (typeof x === "string" && x.trim()) return x.trim();
  const auth = headers.authorization;
  if (typeof auth === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  return undefined;
}

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
    ...(opts.maxDocumentsPerBatch !== undefined && { maxDocumentsPerBatch: opts.maxDocumentsPerBatch }),
  });

  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: opts.bodyLimit ?? 65_536,
    return503OnClosing: true,
  });
  app.decorate("lister", lister);
  app.decorateRequest("caller", null);
  // Schemas on routes document the API (OpenAPI at /docs); the handlers validate with zod
  // themselves, so errors keep one shape, and answers are sent as the handlers build them.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // JSON only: a text/plain body gets 415, not a schema error about a string.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) {
      if (error.statusCode >= 500) request.log.warn({ err: error }, "request failed");
      if (error instanceof ThrottledError) {
        reply.header("retry-after", String(error.retryAfterSeconds));
        for (const [k, v] of Object.entries(error.headers)) reply.header(k, v);
      }
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

  // Every request but the public routes: who is calling (401/403), and within their rate (429).
  // Runs before the body is parsed, so an anonymous or throttled caller costs one or two queries.
  app.addHook("onRequest", async (request, reply) => {
    if (request.routeOptions.config.public || request.url === "/docs" || request.url.startsWith("/docs/")) return;
    const presented = presentedKey(request.headers);
    if (!presented) {
      throw new AccessError(401, "api_key_missing", "send your API key in the x-api-key header (or Authorization: Bearer <key>)");
    }
    const admitted = await admitRequest(prisma, presented);
    if (!admitted.auth.ok) throw new AccessError(admitted.auth.status, admitted.auth.code, admitted.auth.message);
    const key = admitted.auth.key;
    const rate = admitted.rate!; // always there for a usable key
    request.caller = key;
    reply.header("x-ratelimit-limit", String(key.plan.ratePerSecond));
    reply.header("x-ratelimit-burst", String(key.plan.burst));
    reply.header("x-ratelimit-remaining", String(Math.floor(rate.tokens)));
    if (!rate.allowed) {
      throw new ThrottledError(
        "rate_limited",
        `API key ${key.prefix} is over its rate of ${key.plan.ratePerSecond} requests per second (burst ${key.plan.burst}); retry after ${rate.retryAfterMs} ms`,
        Math.max(1, Math.ceil(rate.retryAfterMs / 1000)),
        { retryAfterMs: rate.retryAfterMs, ratePerSecond: key.plan.ratePerSecond, burst: key.plan.burst },
      );
    }
    request.log = request.log.child({ apiKey: key.prefix });
  });

  /** The caller of a secured route (the onRequest hook has set it). */
  const callerOf = (request: { caller: CallerKey | null }): CallerKey => {
    if (!request.caller) throw new AccessError(401, "api_key_missing", "this route needs an API key");
    return request.caller;
  };

  app.addHook("onReady", async () => {
    if (opts.resumeOnStart ?? true) await lister.resumeAll();
  });
  app.addHook("onClose", async () => {
    await lister.stop();
  });

  app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "docpipe ingestion API",
        version: "1",
        description:
          "Submit S3 prefixes of PDFs as batches and follow them through the pipeline. Every route but /healthz, /readyz and /docs " +
          "needs an API key (x-api-key header or Authorization: Bearer). Each key has a usage plan: a token bucket over all its " +
          "requests (429 rate_limited with Retry-After) and a quota of documents per day or month (429 quota_exceeded with " +
          "Retry-After and X-Quota-Reset). Every error is `{ error: { code, message, details } }`.",
      },
      components: {
        securitySchemes: {
          apiKey: { type: "apiKey", in: "header", name: "x-api-key" },
          bearer: { type: "http", scheme: "bearer" },
        },
      },
      security: [{ apiKey: [] }, { bearer: [] }],
    },
  });
  app.register(swaggerUi, { routePrefix: "/docs" });
  // Routes in a plugin registered after swagger, so its onRoute hook sees every one of them.
  app.register(async (api) => {
    api.post("/batches", {
      schema: {
        summary: "Submit a batch of S3 prefixes",
        body: doc(CreateBatchBody, "input"),
        response: {
          202: { description: "accepted; listing runs in the background", ...doc(BatchAccepted) },
          400: errorDoc("`validation_error`, `invalid_json`"),
          ...securedErrors,
          403: errorDoc("`bucket_not_allowed` / `prefix_not_allowed` (the key's allow-list; S3 is not called), `bucket_forbidden`, or a key problem"),
          413: errorDoc("`payload_too_large`"),
          415: errorDoc("`unsupported_media_type`"),
          422: errorDoc("`bucket_not_found`, `bucket_wrong_region`"),
          429: errorDoc("`rate_limited`, or `quota_exceeded` (details: limit, used, period, resetsAt; header X-Quota-Reset)"),
          503: errorDoc("`bucket_unavailable`"),
        },
      },
    }, async (request, reply) => {
      const caller = callerOf(request);
      const body = parse(CreateBatchBody, request.body, "body");
      const denied = allowListProblem(caller, body.bucket, body.prefixes);
      if (denied) throw new AccessError(403, denied.code, denied.message, denied.details);
      const quota = await quotaStatus(prisma, caller);
      if (quota.remaining === 0) {
        await meterQuotaRefusal(prisma, caller.id);
        throw new ThrottledError(
          "quota_exceeded",
          `API key ${caller.prefix} has used its quota of ${quota.limit} documents per ${quota.period}; it resets at ${quota.resetsAt.toISOString()}`,
          Math.max(1, Math.ceil((quota.resetsAt.getTime() - Date.now()) / 1000)),
          { limit: quota.limit, used: quota.used, period: quota.period, resetsAt: quota.resetsAt.toISOString() },
          { "x-quota-reset": quota.resetsAt.toISOString() },
        );
      }
      await checkBucket(s3, body.bucket, body.prefixes[0]!, s3CheckTimeoutMs);
      const options = BatchOptions.parse({ onTooLarge: body.onTooLarge, skipAlreadyProcessed: body.skipAlreadyProcessed });
      const batch = await prisma.$transaction(async (tx) => {
        const b = await tx.batch.create({
          data: {
            bucket: body.bucket,
            prefixes: body.prefixes,
            options,
            apiKeyId: caller.id,
            owner: caller.owner,
            ...(body.label !== undefined && { label: body.label }),
          },
          select: { id: true, state: true },
        });
        await meterBatch(tx, caller.id);
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

    // Batches and documents are visible to every key of the owner that submitted them (so a
    // rotated or second key of the same team still sees them), and to nobody else: another
    // owner's id answers 404, exactly like an id that does not exist, so ids leak nothing.
    api.get("/batches/:id", {
      schema: { summary: "A batch's state and progress", params: doc(IdParams, "input"), response: { 200: doc(BatchStatusResponse), 404: errorDoc("`batch_not_found`"), ...securedErrors } },
    }, async (request) => {
      const { id } = parse(IdParams, request.params, "path");
      const batch = await prisma.batch.findFirst({
        where: { id, owner: callerOf(request).owner },
        include: { continuations: { select: { id: true }, orderBy: { createdAt: "asc" }, take: 1 } },
      });
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
        onTooLarge: BatchOptions.catch({ onTooLarge: "reject" }).parse(batch.options).onTooLarge,
        failure: batch.failureCode ? { code: batch.failureCode, reason: batch.failureReason } : null,
        parentBatchId: batch.parentBatchId,
        continuedIn: batch.continuations[0]?.id ?? null,
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

    api.get("/batches/:id/documents", {
      schema: {
        summary: "A batch's documents, a page at a time",
        params: doc(IdParams, "input"),
        querystring: doc(ListDocumentsQuery, "input"),
        response: { 200: doc(DocumentsPage), 404: errorDoc("`batch_not_found`"), ...securedErrors },
      },
    }, async (request) => {
      const { id } = parse(IdParams, request.params, "path");
      const query = parse(ListDocumentsQuery, request.query, "query");
      let after: string | undefined;
      if (query.cursor !== undefined) {
        after = decodeCursor(query.cursor);
        if (after === undefined) {
          throw new ValidationError("invalid request query", [{ path: "cursor", message: "not a cursor this API returned" }]);
        }
      }
      const batch = await prisma.batch.findFirst({ where: { id, owner: callerOf(request).owner }, select: { bucket: true } });
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

    api.get("/batches/:id/report", {
      schema: {
        summary: "A batch's report: documents, pages, failures by reason, features, stage timings",
        params: doc(IdParams, "input"),
        querystring: doc(ReportQuery, "input"),
        response: { 200: { type: "object", additionalProperties: true }, 404: errorDoc("`batch_not_found`"), ...securedErrors },
      },
    }, async (request) => {
      const { id } = parse(IdParams, request.params, "path");
      const { documents } = parse(ReportQuery, request.query, "query");
      const visible = await prisma.batch.count({ where: { id, owner: callerOf(request).owner } });
      if (!visible) throw new NotFoundError("batch", id);
      const report = await buildBatchReport(prisma, id, { perDocument: documents, stallAfterSeconds: opts.stallAfterSeconds ?? 600 });
      if (!report) throw new NotFoundError("batch", id);
      return report;
    });

    api.get("/documents/:id", {
      schema: {
        summary: "A document, its pages with result summaries, and its audit trail",
        params: doc(IdParams, "input"),
        response: { 200: { type: "object", additionalProperties: true }, 404: errorDoc("`document_not_found`"), ...securedErrors },
      },
    }, async (request) => {
      const { id } = parse(IdParams, request.params, "path");
      const document = await prisma.document.findFirst({
        where: { id, batch: { owner: callerOf(request).owner } },
        include: {
          pages: {
            orderBy: { pageNumber: "asc" },
            include: { result: { select: { modelName: true, modelVersion: true, features: true, latencyMs: true, createdAt: true } } },
          },
          auditEvents: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
        },
      });
      if (!document) throw new NotFoundError("document", id);
      const { auditEvents, pages, size, ...rest } = document;
      return {
        ...rest,
        size: toNumber(size),
        pages,
        auditTrail: auditEvents.map((a) => ({ ...a, id: a.id.toString() })),
      };
    });

    api.get("/usage", {
      schema: {
        summary: "The calling key's plan, quota and metering per day (last 30 days)",
        response: { 200: doc(UsageResponse), ...securedErrors },
      },
    }, async (request) => {
      const caller = callerOf(request);
      const [quota, days] = await Promise.all([quotaStatus(prisma, caller), keyUsage(prisma, caller.id)]);
      return {
        key: { id: caller.id, prefix: caller.prefix, name: caller.name, owner: caller.owner },
        plan: caller.plan,
        quota: { period: quota.period, limit: quota.limit, used: quota.used, remaining: quota.remaining, resetsAt: quota.resetsAt },
        days,
      };
    });

    registerOperatorRoutes(api, { prisma, sqs, logger, workerId, queueUrls: opts.queueUrls, ...(opts.workBucket !== undefined && { workBucket: opts.workBucket }) });

    api.get("/healthz", { config: { public: true }, schema: { summary: "Liveness", security: [] } }, async () => ({ status: "ok" }));

    api.get("/readyz", { config: { public: true }, schema: { summary: "Readiness: database and ingest queue", security: [] } }, async (_request, reply) => {
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
  });

  return app;
}
