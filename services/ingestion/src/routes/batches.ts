import type { S3Client } from "@aws-sdk/client-s3";
import {
  BatchAccepted,
  BatchReplayed,
  BatchReport,
  BatchStatusResponse,
  CreateBatchBody,
  CreateBatchHeaders,
  decodeCursor,
  DocumentsPage,
  encodeCursor,
  IdParams,
  ListDocumentsQuery,
  ReportQuery,
  type BatchStatus,
} from "@docpipe/api-contract";
import type { PrismaClient } from "@docpipe/db";
import type { Logger } from "@docpipe/queue";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { storedOptions } from "../batch-options.js";
import { createBatch } from "../create-batch.js";
import { idempotencyOf } from "../idempotency.js";
import { NotFoundError, ValidationError } from "../errors.js";
import type { BatchLister } from "../lister.js";
import { callerOf } from "../plugins/auth.js";
import { batchProgress, buildBatchReport } from "../report.js";
import { detectStall } from "../stall.js";
import { answer, errors, idErrors, iso, isoOrNull, keyErrors } from "./responses.js";

export interface BatchRoutesOptions {
  prisma: PrismaClient;
  s3: S3Client;
  lister: Pick<BatchLister, "start">;
  workerId: string;
  s3CheckTimeoutMs: number;
  stallAfterSeconds: number;
  reservedBuckets: readonly string[];
}

const badCursor = () => new ValidationError("invalid request query", [{ path: "cursor", message: "not a cursor this API returned" }]);

/** A batch's state and progress, or undefined when the owner has no such batch. */
async function batchStatus(prisma: PrismaClient, id: string, owner: string, stallAfterSeconds: number): Promise<BatchStatus | undefined> {
  const batch = await prisma.batch.findFirst({
    where: { id, owner },
    include: { continuations: { select: { id: true }, orderBy: { createdAt: "asc" }, take: 1 } },
  });
  if (!batch) return undefined;
  const [{ documents, pages }, stalled] = await Promise.all([batchProgress(prisma, id), detectStall(prisma, batch, stallAfterSeconds * 1000)]);
  return {
    batchId: batch.id,
    label: batch.label,
    bucket: batch.bucket,
    prefixes: batch.prefixes,
    state: batch.state,
    ...storedOptions(batch.options),
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
    createdAt: iso(batch.createdAt),
    listedAt: isoOrNull(batch.listedAt),
    completedAt: isoOrNull(batch.completedAt),
    stalled: stalled && { ...stalled, since: iso(stalled.since) },
  };
}

/**
 * The batches resource. Batches and documents are visible to every key of the owner that
 * submitted them (so a rotated or second key of the same team still sees them), and to nobody
 * else: another owner's id answers 404, exactly like an id that does not exist.
 */
export const batchRoutes: FastifyPluginAsyncZod<BatchRoutesOptions> = async (app, opts) => {
  const { prisma } = opts;

  app.post(
    "/batches",
    {
      schema: {
        operationId: "createBatch",
        summary: "Submit a batch of S3 prefixes",
        body: CreateBatchBody,
        headers: CreateBatchHeaders,
        response: {
          200: answer("Already accepted: this Idempotency-Key and body created this batch in the last 24 hours", BatchReplayed),
          202: answer("Accepted: the listing runs in the background (Location: /batches/{id})", BatchAccepted),
          ...errors({
            ...keyErrors,
            400: "`validation_error` (details: path and message per problem), `invalid_json`",
            403:
              "`bucket_reserved` (the pipeline's own work bucket, for every key), `bucket_not_allowed` / `prefix_not_allowed` " +
              "(the key's allow-list; S3 is not called), `bucket_forbidden`, or a key problem",
            413: "`payload_too_large`",
            415: "`unsupported_media_type`",
            422: "`bucket_not_found`, `bucket_wrong_region`, `idempotency_key_reused` (the key came with another body; details: batchId)",
            429: "`rate_limited`, or `quota_exceeded` / `page_quota_exceeded` (no document or no page left; details: limit, used, period, resetsAt; header X-Quota-Reset)",
            503: "`bucket_unavailable`: S3 did not answer; try again",
          }),
        },
      },
    },
    async (request, reply) => {
      const idempotency = idempotencyOf(request.headers["idempotency-key"], request.body);
      const accepted = await createBatch(opts, callerOf(request), request.body, request.log as Logger, idempotency);
      return reply.code("replayed" in accepted ? 200 : 202).header("location", `/batches/${accepted.batchId}`).send(accepted);
    },
  );

  app.get(
    "/batches/:id",
    {
      schema: {
        operationId: "getBatch",
        summary: "A batch's state and progress",
        params: IdParams,
        response: { 200: answer("The batch", BatchStatusResponse), ...errors({ ...keyErrors, ...idErrors("batch") }) },
      },
    },
    async (request) => {
      const status = await batchStatus(prisma, request.params.id, callerOf(request).owner, opts.stallAfterSeconds);
      if (!status) throw new NotFoundError("batch", request.params.id);
      return status;
    },
  );

  app.get(
    "/batches/:id/documents",
    {
      schema: {
        operationId: "listBatchDocuments",
        summary: "A batch's documents, a page at a time (in key order)",
        params: IdParams,
        querystring: ListDocumentsQuery,
        response: {
          200: answer("A page of documents; pass nextCursor as cursor for the next", DocumentsPage),
          ...errors({ ...keyErrors, ...idErrors("batch"), 400: "`validation_error`: a malformed id, state, limit or cursor" }),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const query = request.query;
      let after: string | undefined;
      if (query.cursor !== undefined) {
        after = decodeCursor(query.cursor);
        if (after === undefined) throw badCursor();
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
      const items = (more ? rows.slice(0, query.limit) : rows).map((d) => ({
        ...d,
        size: d.size === null ? null : Number(d.size),
        createdAt: iso(d.createdAt),
        updatedAt: iso(d.updatedAt),
        completedAt: isoOrNull(d.completedAt),
      }));
      return { items, nextCursor: more ? encodeCursor(items[items.length - 1]!.key) : null };
    },
  );

  app.get(
    "/batches/:id/report",
    {
      schema: {
        operationId: "getBatchReport",
        summary: "A batch's report: documents, pages, failures by reason, features, stage timings",
        params: IdParams,
        querystring: ReportQuery,
        response: {
          200: answer("The report, computed from the database", BatchReport),
          ...errors({
            ...keyErrors,
            ...idErrors("batch"),
            400: "`validation_error`: a malformed id, documents not true or false, a limit outside 1..1000, a cursor this API did not issue (or without documents=true)",
          }),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { documents, limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      if (cursor !== undefined && after === undefined) throw badCursor();
      const visible = await prisma.batch.count({ where: { id, owner: callerOf(request).owner } });
      if (!visible) throw new NotFoundError("batch", id);
      const report = await buildBatchReport(prisma, id, {
        ...(documents && { perDocument: { limit, after } }),
        stallAfterSeconds: opts.stallAfterSeconds,
      });
      if (!report) throw new NotFoundError("batch", id);
      return report;
    },
  );
};
