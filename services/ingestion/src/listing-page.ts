import type { _Object } from "@aws-sdk/client-s3";
import { isPdfKey } from "@docpipe/api-contract";
import { chargeDocuments, quotaStatus, type CallerKey, type QuotaStatus } from "@docpipe/api-keys";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, settleBatch, type IngestMessage, type Logger, type QueueProducer } from "@docpipe/queue";
import { ListingError } from "./errors.js";
import { insertPage, type InsertedPage } from "./insert-page.js";
import type { ListerHooks, ListingPosition, PageEvent } from "./lister.js";

/**
 * What happens to one listed page of a batch (rows, audit records, quota, messages, the saved
 * position) and how a listing ends (finished, split into a follow-up batch, or failed). The
 * BatchLister decides which page comes next and retries; this module writes.
 */

/** What the page writers need from the lister. */
export interface ListingDeps {
  prisma: PrismaClient;
  producer: Pick<QueueProducer<"ingest">, "send">;
  workerId: string;
  maxDocumentsPerBatch: number;
  hooks: ListerHooks;
  /** Starts listing a follow-up batch (a split listing continues in it). */
  continueIn(batchId: string): void;
}

/** Zero-byte "folder" objects the S3 console creates. */
export const isDirectoryMarker = (key: string): boolean => key.endsWith("/");

/**
 * One page, in two steps the lister may overlap with the neighbouring pages' (the next page's
 * rows are admitted while this page's messages go out): {@link admitPage} admits the rows and
 * audit records in one transaction; {@link sendPage} sends the messages, then moves the
 * position (with the skipped count) on with a compare-and-set. Messages never go out before
 * their rows, and the position never moves past a page before its messages are sent.
 */
export interface AdmittedPage {
  objects: _Object[];
  sizes: Map<string, number | undefined>;
  admission: Admission;
  /** PDFs of the page that belong to this batch (all of them unless the page hit a limit). */
  admittedKeys: string[];
  /** Index in `objects` of the first refused key (`objects.length` when none was). */
  cutIndex: number;
  skipped: number;
  event: PageEvent;
  t0: number;
  insertMs: number;
}

/** Rows and audit records of a page's new PDFs, within the room left; then the `afterInsert` hook. */
export async function admitPage(deps: ListingDeps, ctx: ListingContext, objects: _Object[], pos: ListingPosition, page: number): Promise<AdmittedPage> {
  const t0 = performance.now();
  const sizes = new Map<string, number | undefined>();
  for (const o of objects) {
    if (!o.Key || isDirectoryMarker(o.Key)) continue;
    if (isPdfKey(o.Key)) sizes.set(o.Key, o.Size);
  }
  const keys = [...sizes.keys()];

  const admission = await admit(deps, 
    ctx,
    keys.map((key) => ({ key, size: sizes.get(key) })),
  );
  const { inserted, firstRefused } = admission;
  // Keys from the first refused one on belong to no batch of this listing (or to the follow-up).
  const cutIndex = firstRefused === undefined ? objects.length : objects.findIndex((o) => o.Key === firstRefused);
  let skipped = 0;
  for (const o of objects.slice(0, cutIndex)) if (o.Key && !isDirectoryMarker(o.Key) && !isPdfKey(o.Key)) skipped++;
  // Listing order is S3's (UTF-8 bytes), so positions in the page, not string comparison, say what came before the cut.
  const admittedKeys = firstRefused === undefined ? keys : keys.slice(0, keys.indexOf(firstRefused));
  const insertMs = performance.now() - t0;
  const event: PageEvent = { batchId: ctx.batchId, page, position: pos, pdfs: keys.length, inserted: inserted.length, skipped };
  await deps.hooks.afterInsert?.(event);
  return { objects, sizes, admission, admittedKeys, cutIndex, skipped, event, t0, insertMs };
}

/**
 * The admitted page's messages, then its position. Returns "lost" when the saved position was
 * not where this run left it (another process is listing the batch), and "stopped" when the
 * page hit the batch's bound or the key's quota and the listing ended there.
 */
export async function sendPage(
  deps: ListingDeps,
  ctx: ListingContext,
  a: AdmittedPage,
  pos: ListingPosition,
  next: ListingPosition,
  log: Logger,
): Promise<"moved" | "lost" | "stopped"> {
  const { batchId, bucket } = ctx;
  const { inserted, firstRefused } = a.admission;
  // Rows that already existed come from a run that died mid-page: their messages may never
  // have gone out, so the ones nobody has picked up yet are sent again.
  let toSend: { id: string; key: string }[] = inserted;
  if (inserted.length < a.admittedKeys.length) {
    const fresh = new Set(inserted.map((r) => r.key));
    const earlier = await deps.prisma.document.findMany({
      where: { batchId, bucket, key: { in: a.admittedKeys.filter((k) => !fresh.has(k)) }, state: "queued" },
      select: { id: true, key: true },
    });
    toSend = [...inserted, ...earlier];
  }
  const messages: IngestMessage[] = toSend.map((d) => {
    const size = a.sizes.get(d.key);
    return { version: 1, batchId, documentId: d.id, bucket, key: d.key, ...(size !== undefined ? { size } : {}) };
  });
  const t1 = performance.now();
  await deps.producer.send(messages);
  const sendMs = performance.now() - t1;
  await deps.hooks.afterSend?.(a.event);

  if (firstRefused !== undefined) {
    return (await stopAt(deps, ctx, a.admission, a.objects, a.cutIndex, pos, a.skipped, log)) ? "stopped" : "lost";
  }

  const moved = await deps.prisma.batch.updateMany({
    where: { id: batchId, state: "listing", listingPrefix: pos.prefixIndex, listingToken: pos.token },
    data: { listingPrefix: next.prefixIndex, listingToken: next.token, listingStartAfter: null, skippedCount: { increment: a.skipped } },
  });
  log.debug(
    {
      page: a.event.page,
      pdfs: a.event.pdfs,
      inserted: inserted.length,
      sent: messages.length,
      skipped: a.skipped,
      insertMs: Math.round(a.insertMs),
      sendMs: Math.round(sendMs),
      totalMs: Math.round(performance.now() - a.t0),
    },
    "page listed",
  );
  if (moved.count === 0) return "lost";
  await deps.hooks.afterPage?.(a.event);
  return "moved";
}

/**
 * Admits a page's new PDFs within the room left (the batch's bound, the key's quota): rows,
 * audit records and the quota charge in one transaction that holds the batch row and the
 * key's quota row, so two processes never admit past either limit.
 */
async function admit(deps: ListingDeps, ctx: ListingContext, objects: { key: string; size: number | undefined }[]): Promise<Admission> {
  return deps.prisma.$transaction(
    async (tx) => {
      const [b] = await tx.$queryRaw<{ documentCount: number }[]>`
        SELECT "documentCount" FROM "Batch" WHERE "id" = ${ctx.batchId}::uuid FOR UPDATE`;
      let room = deps.maxDocumentsPerBatch - (b?.documentCount ?? 0);
      let cutBy: Admission["cutBy"] = "batch_limit";
      let quota: QuotaStatus | undefined;
      if (ctx.key) {
        quota = await quotaStatus(tx, ctx.key, { lock: ctx.key.plan.quotaDocuments !== null });
        if (quota.remaining !== null && quota.remaining < room) {
          room = quota.remaining;
          cutBy = "quota";
        }
      }
      const page = await insertPage(tx, { batchId: ctx.batchId, bucket: ctx.bucket, workerId: deps.workerId, objects, room });
      if (ctx.key && quota) await chargeDocuments(tx, ctx.key.id, quota.periodStart, page.inserted.length);
      return { ...page, cutBy, quota };
    },
    { maxWait: 10_000, timeout: 60_000 },
  );
}

/**
 * The page hit the batch's bound or the key's quota at `objects[cutIndex]`. With
 * `onTooLarge: "split"` and the batch bound, the rest of the listing moves to a follow-up
 * batch (same key, owner, prefixes and options; `parentBatchId` = this one) that starts at
 * that key, and this batch goes on to `processing`; otherwise this batch fails with
 * `batch_too_large` or `quota_exceeded`, its admitted documents going on through the
 * pipeline. One transaction with a compare-and-set on the position, like a page.
 */
async function stopAt(
  deps: ListingDeps,
  ctx: ListingContext,
  admission: Admission,
  objects: _Object[],
  cutIndex: number,
  pos: ListingPosition,
  skipped: number,
  log: Logger,
): Promise<boolean> {
  const { batchId } = ctx;
  const where = { id: batchId, state: "listing" as const, listingPrefix: pos.prefixIndex, listingToken: pos.token };
  if (admission.cutBy === "batch_limit" && ctx.onTooLarge === "split") {
    // Where the follow-up starts: right after the object before the cut, or at this page's own position.
    const resume =
      cutIndex > 0
        ? { listingPrefix: pos.prefixIndex, listingToken: null, listingStartAfter: objects[cutIndex - 1]!.Key! }
        : { listingPrefix: pos.prefixIndex, listingToken: pos.token, listingStartAfter: pos.token ? null : ctx.startAfter };
    const childId = await deps.prisma.$transaction(async (tx) => {
      const moved = await tx.batch.updateMany({
        where,
        data: { state: "processing", listedAt: new Date(), skippedCount: { increment: skipped }, listingPrefix: ctx.prefixes.length, listingToken: null },
      });
      if (moved.count === 0) return undefined;
      const parent = await tx.batch.findUniqueOrThrow({ where: { id: batchId } });
      const child = await tx.batch.create({
        data: {
          label: parent.label,
          bucket: parent.bucket,
          prefixes: parent.prefixes,
          options: parent.options ?? {},
          apiKeyId: parent.apiKeyId,
          owner: parent.owner,
          parentBatchId: batchId,
          ...resume,
        },
        select: { id: true },
      });
      await tx.auditEvent.createMany({
        data: [
          {
            batchId,
            stage: "ingestion",
            outcome: "succeeded",
            workerId: deps.workerId,
            details: { event: "listing_split", documentCount: parent.documentCount, continuedIn: child.id, limit: deps.maxDocumentsPerBatch },
          },
          {
            batchId: child.id,
            stage: "ingestion",
            outcome: "started",
            workerId: deps.workerId,
            details: { event: "batch_created", parentBatchId: batchId, bucket: parent.bucket, prefixes: parent.prefixes },
          },
        ],
      });
      return child.id;
    });
    if (!childId) return false;
    log.info({ continuedIn: childId, limit: deps.maxDocumentsPerBatch }, "batch reached its size bound; listing continues in a follow-up batch");
    await settleBatch(deps.prisma, batchId);
    deps.continueIn(childId);
    return true;
  }
  const quota = admission.quota;
  const err =
    admission.cutBy === "quota" && quota
      ? new ListingError(
          "quota_exceeded",
          `the key's quota of ${quota.limit} documents per ${quota.period} is used up; listing stopped before ${objects[cutIndex]?.Key}. ` +
            `The documents listed so far are processed. The quota resets at ${quota.resetsAt.toISOString()}`,
          batchId,
        )
      : new ListingError(
          "batch_too_large",
          `the batch reached ${deps.maxDocumentsPerBatch} documents, the most one batch may have; listing stopped before ${objects[cutIndex]?.Key}. ` +
            `The documents listed so far are processed; submit with onTooLarge "split" to continue in follow-up batches`,
          batchId,
        );
  const failed = await deps.prisma.batch.updateMany({ where, data: { skippedCount: { increment: skipped } } });
  if (failed.count === 0) return false;
  await markFailed(deps, batchId, err, log, quota ? { resetsAt: quota.resetsAt.toISOString(), limit: quota.limit, period: quota.period } : undefined);
  return true;
}

/**
 * Listing is over: the batch moves on to `processing`, then straight to `completed` when
 * nothing is left to do (no PDFs, or every document already finished while we listed).
 * `settleBatch` is the same conditional update the last finishing document runs, so the
 * two may race freely.
 */
export async function finishListing(deps: ListingDeps, batchId: string, log: Logger, stats: { pages: number; ms: number }): Promise<void> {
  const batch = await deps.prisma.$transaction(async (tx) => {
    const updated = await tx.batch.updateMany({
      where: { id: batchId, state: "listing" },
      data: { state: "processing", listedAt: new Date() },
    });
    if (updated.count === 0) return undefined;
    const b = await tx.batch.findUniqueOrThrow({ where: { id: batchId }, select: { documentCount: true, skippedCount: true } });
    await tx.auditEvent.create({
      data: {
        batchId,
        stage: "ingestion",
        outcome: "succeeded",
        workerId: deps.workerId,
        details: { event: "listing_finished", documentCount: b.documentCount, skippedCount: b.skippedCount },
      },
    });
    return b;
  });
  if (!batch) return;
  const completed = await settleBatch(deps.prisma, batchId);
  log.info(
    {
      state: completed ? "completed" : "processing",
      documents: batch.documentCount,
      skipped: batch.skippedCount,
      pagesThisRun: stats.pages,
      ms: stats.ms,
    },
    "listing finished",
  );
}

export async function markFailed(deps: ListingDeps, batchId: string, err: ListingError, log: Logger, details?: object): Promise<void> {
  // A caller's limit (quota, batch size) is their business, not an operator's alarm.
  const callerLimit = err.code === "quota_exceeded" || err.code === "batch_too_large";
  log[callerLimit ? "warn" : "error"]({ err, code: err.code }, "listing failed permanently");
  try {
    await deps.prisma.$transaction([
      deps.prisma.batch.updateMany({
        where: { id: batchId, state: "listing" },
        data: { state: "failed", completedAt: new Date(), failureCode: err.code, failureReason: err.message },
      }),
      deps.prisma.auditEvent.create({
        data: {
          batchId,
          stage: "ingestion",
          outcome: "failed",
          workerId: deps.workerId,
          errorCode: err.code,
          errorMessage: err.message,
          ...(details && { details }),
        },
      }),
    ]);
  } catch (e) {
    log.error({ err: coerceError(e) }, "could not record the listing failure; the batch resumes on the next start");
  }
}

/** What a listing needs to know about its batch, loaded once per run. */
export interface ListingContext {
  batchId: string;
  bucket: string;
  prefixes: string[];
  /** Where the first page of the saved prefix starts when there is no token (a follow-up batch). */
  startAfter: string | null;
  onTooLarge: "reject" | "split";
  /** The submitting key and its plan, whose quota the documents are charged to. */
  key: Pick<CallerKey, "id" | "plan"> | undefined;
}

export interface Admission extends InsertedPage {
  /** What limited the room when a key was refused. */
  cutBy: "batch_limit" | "quota";
  quota: QuotaStatus | undefined;
}
