import { ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client, type _Object } from "@aws-sdk/client-s3";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, fullJitterBackoff, settleBatch, TransientError, type IngestMessage, type Logger, type QueueProducer } from "@docpipe/queue";
import { setTimeout as delay } from "node:timers/promises";
import { ListingError } from "./errors.js";
import { insertPage, type InsertedPage } from "./insert-page.js";
import { chargeDocuments, quotaStatus, type CallerKey, type QuotaStatus } from "@docpipe/api-keys";
import { BatchOptions } from "./batch-options.js";
import { isPdfKey } from "@docpipe/api-contract";

/** Where a batch's listing stands: the prefix being listed and the continuation token of the next page to list. */
export interface ListingPosition {
  prefixIndex: number;
  token: string | null;
}

/** What a test hook learns about one page of a listing. */
export interface PageEvent {
  batchId: string;
  /** 1-based count of pages handled by this run of the listing (a resumed run starts again at 1). */
  page: number;
  position: ListingPosition;
  /** PDFs on the page, how many of them were new rows, and non-PDF keys skipped. */
  pdfs: number;
  inserted: number;
  skipped: number;
}

/**
 * Points in a page's life where tests may interrupt the listing. Whatever a hook throws is
 * treated like a crash at that point: the listing of that batch stops where it is and
 * resumes from the saved position on the next start.
 */
export interface ListerHooks {
  /** Rows and audit records are committed; no message is sent yet. */
  afterInsert?: (e: PageEvent) => void | Promise<void>;
  /** Messages are sent; the listing position has not moved past the page yet. */
  afterSend?: (e: PageEvent) => void | Promise<void>;
  /** The position has moved past the page. */
  afterPage?: (e: PageEvent) => void | Promise<void>;
}

export interface BatchListerOptions {
  prisma: PrismaClient;
  s3: S3Client;
  /** Producer for the ingest queue. */
  producer: Pick<QueueProducer<"ingest">, "send">;
  logger: Logger;
  /** Written as `workerId` on audit records. */
  workerId: string;
  /** Keys per ListObjectsV2 page (its MaxKeys); also the size of one insert and one round of sends. @defaultValue `1000` */
  pageSize?: number;
  /** Batches listed at the same time; more wait their turn. @defaultValue `2` */
  maxConcurrentBatches?: number;
  /**
   * Most documents one batch may hold. A listing that passes it fails the batch
   * (`onTooLarge: "reject"`, counted before anything is queued) or continues in a follow-up
   * batch (`"split"`). @defaultValue `1000000`
   */
  maxDocumentsPerBatch?: number;
  /** Ceiling of the backoff between retries of a listing after a transient failure, in ms. @defaultValue `30000` */
  maxRetryDelayMs?: number;
  hooks?: ListerHooks;
}

/** Zero-byte "folder" objects the S3 console creates. */
const isDirectoryMarker = (key: string): boolean => key.endsWith("/");

/** S3 errors after which listing this bucket can never succeed. */
const PERMANENT_S3_ERRORS = new Set([
  "NoSuchBucket",
  "AccessDenied",
  "AllAccessDisabled",
  "InvalidBucketName",
  "PermanentRedirect",
  "InvalidAccessKeyId",
]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);
/** Prisma: cannot reach / lost the database, pool timeout, transaction conflict or expiry. */
const TRANSIENT_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2028", "P2034"]);

/** True for failures a retry may fix: network, throttling, 5xx, database unreachable or busy. */
export function isTransient(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (cur instanceof TransientError) return true;
    if (typeof cur !== "object") return false;
    const err = cur as {
      name?: string;
      code?: unknown;
      $retryable?: unknown;
      $metadata?: { httpStatusCode?: number };
    };
    if (err.name === "PrismaClientInitializationError") return true;
    if (typeof err.code === "string" && (NETWORK_CODES.has(err.code) || TRANSIENT_PRISMA_CODES.has(err.code))) return true;
    if (err.$retryable) return true;
    const status = err.$metadata?.httpStatusCode;
    if (status !== undefined && (status >= 500 || status === 429)) return true;
    if (err.name === "TimeoutError" || err.name === "SlowDown" || err.name === "ThrottlingException") return true;
  }
  return false;
}

/**
 * Lists the prefixes of each batch page by page and turns every PDF into a Document row, its
 * first audit record and an ingest message. Memory stays constant: one page in hand and the
 * next one being fetched.
 *
 * The saved position only moves past a page once its messages are sent, so a crash at any
 * point loses nothing: the resumed run lists that page again, inserts nothing new (the rows
 * are unique per batch, bucket and key) and re-sends the page's documents that are still
 * `queued`. Duplicate messages are harmless, every stage being idempotent; a lost one would
 * leave a document behind.
 */
export class BatchLister {
  private readonly prisma: PrismaClient;
  private readonly s3: S3Client;
  private readonly producer: Pick<QueueProducer<"ingest">, "send">;
  private readonly logger: Logger;
  private readonly workerId: string;
  private readonly pageSize: number;
  private readonly maxConcurrent: number;
  private readonly maxRetryDelayMs: number;
  private readonly maxDocumentsPerBatch: number;
  private readonly hooks: ListerHooks;
  private readonly abort = new AbortController();
  /** Batches being listed by this process, and their promise. */
  private readonly running = new Map<string, Promise<void>>();
  /** Batches waiting for a free slot, in arrival order. */
  private readonly waiting: string[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(opts: BatchListerOptions) {
    this.prisma = opts.prisma;
    this.s3 = opts.s3;
    this.producer = opts.producer;
    this.logger = opts.logger.child({ component: "lister" });
    this.workerId = opts.workerId;
    this.pageSize = Math.max(1, Math.min(1000, opts.pageSize ?? 1000));
    this.maxConcurrent = Math.max(1, opts.maxConcurrentBatches ?? 2);
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 30_000;
    this.maxDocumentsPerBatch = Math.max(1, opts.maxDocumentsPerBatch ?? 1_000_000);
    this.hooks = opts.hooks ?? {};
  }

  get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  /** Batch ids being listed or waiting to be, by this process. */
  get active(): string[] {
    return [...this.running.keys(), ...this.waiting];
  }

  /** Starts listing a batch in the background (no-op if this process already lists it or is stopping). */
  start(batchId: string): void {
    if (this.stopping || this.running.has(batchId) || this.waiting.includes(batchId)) return;
    this.waiting.push(batchId);
    this.pump();
  }

  /** Starts every batch left in state `listing`, e.g. by a process that died. Returns their ids. */
  async resumeAll(): Promise<string[]> {
    const batches = await this.prisma.batch.findMany({
      where: { state: "listing" },
      select: { id: true },
      orderBy: { createdAt: "asc" },
    });
    for (const b of batches) this.start(b.id);
    if (batches.length > 0) this.logger.info({ count: batches.length }, "resuming listings");
    return batches.map((b) => b.id);
  }

  /** Resolves when nothing is being listed or waiting (for tests and benchmarks). */
  async idle(): Promise<void> {
    if (this.running.size === 0 && this.waiting.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops taking pages: each listing finishes the page it is handling (rows, messages and
   * position), then stops. Batches stay in state `listing` and resume on the next start.
   */
  async stop(): Promise<void> {
    this.abort.abort(new Error("lister stopping"));
    this.waiting.length = 0;
    await Promise.allSettled([...this.running.values()]);
  }

  private pump(): void {
    while (!this.stopping && this.running.size < this.maxConcurrent && this.waiting.length > 0) {
      const batchId = this.waiting.shift()!;
      const p = this.run(batchId).finally(() => {
        this.running.delete(batchId);
        this.pump();
        if (this.running.size === 0 && this.waiting.length === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      });
      this.running.set(batchId, p);
    }
  }

  /** Lists a batch to the end, retrying transient failures from the saved position; never throws. */
  private async run(batchId: string): Promise<void> {
    const log = this.logger.child({ batchId });
    for (let attempt = 1; !this.stopping; attempt++) {
      const progress = { pages: 0 };
      try {
        await this.listFromSavedPosition(batchId, log, progress);
        return;
      } catch (e) {
        const err = coerceError(e);
        if (this.stopping) {
          log.info({ err }, "listing paused by shutdown; resumes on the next start");
          return;
        }
        if (err instanceof ListingError) {
          await this.markFailed(batchId, err, log);
          return;
        }
        if (!isTransient(err)) {
          log.error({ err }, "listing interrupted; it resumes from its saved position when the service restarts");
          return;
        }
        if (progress.pages > 0) attempt = 1;
        const ms = Math.round(fullJitterBackoff(attempt, { base: 250, cap: this.maxRetryDelayMs }));
        log.warn({ err, attempt, retryInMs: ms }, "listing failed transiently; retrying from the saved position");
        try {
          await delay(ms, undefined, { signal: this.abort.signal });
        } catch {
          return; // stopping
        }
      }
    }
  }

  private async listFromSavedPosition(batchId: string, log: Logger, progress: { pages: number }): Promise<void> {
    const batch = await this.prisma.batch.findUnique({
      where: { id: batchId },
      include: { apiKey: { include: { plan: true } } },
    });
    if (!batch || batch.state !== "listing") return;
    const { bucket, prefixes } = batch;
    const parsedOptions = BatchOptions.safeParse(batch.options);
    const ctx: ListingContext = {
      batchId,
      bucket,
      prefixes,
      startAfter: batch.listingStartAfter,
      onTooLarge: parsedOptions.success ? parsedOptions.data.onTooLarge : "reject",
      key: batch.apiKey
        ? { id: batch.apiKey.id, plan: { ...batch.apiKey.plan } }
        : undefined,
    };
    let pos: ListingPosition = { prefixIndex: batch.listingPrefix, token: batch.listingToken };
    if (ctx.onTooLarge === "reject" && batch.documentCount === 0 && pos.prefixIndex === 0 && pos.token === null) {
      // All or nothing: count first, so a batch over the bound queues nothing at all.
      const counted = await this.countPdfs(ctx, this.maxDocumentsPerBatch + 1);
      if (counted > this.maxDocumentsPerBatch) {
        throw new ListingError(
          "batch_too_large",
          `the prefixes hold more than ${this.maxDocumentsPerBatch} PDFs, the most one batch may have; nothing was queued. ` +
            `Submit smaller prefixes, or submit again with onTooLarge "split" to continue in follow-up batches`,
          batchId,
        );
      }
    }
    const started = Date.now();
    if (pos.prefixIndex > 0 || pos.token) {
      log.info({ prefixIndex: pos.prefixIndex, midPrefix: pos.token !== null }, "resuming listing from saved position");
    }

    // One page ahead is fetched while the current one is written and sent.
    let prefetched: Promise<ListObjectsV2CommandOutput> | undefined;
    while (pos.prefixIndex < prefixes.length) {
      if (this.stopping) {
        log.info({ prefixIndex: pos.prefixIndex, pages: progress.pages }, "listing paused by shutdown; resumes on the next start");
        return;
      }
      const out = await (prefetched ?? this.listPage(batchId, bucket, prefixes[pos.prefixIndex]!, pos.token, this.startAfterFor(ctx, pos)));
      prefetched = undefined;
      let next: ListingPosition;
      if (out.IsTruncated) {
        if (!out.NextContinuationToken) throw new TransientError("s3_listing", "truncated listing without a continuation token");
        next = { prefixIndex: pos.prefixIndex, token: out.NextContinuationToken };
      } else {
        next = { prefixIndex: pos.prefixIndex + 1, token: null };
      }
      if (next.prefixIndex < prefixes.length && !this.stopping) {
        prefetched = this.listPage(batchId, bucket, prefixes[next.prefixIndex]!, next.token, null);
        prefetched.catch(() => undefined); // awaited (or dropped) on the next turn
      }
      const outcome = await this.handlePage(ctx, out.Contents ?? [], pos, next, ++progress.pages, log);
      if (outcome === "lost") {
        log.warn({ position: pos }, "another process moved this listing on; leaving it to that process");
        return;
      }
      if (outcome === "stopped") return;
      pos = next;
    }
    await this.finish(batchId, log, { pages: progress.pages, ms: Date.now() - started });
  }

  /** A follow-up batch starts its first prefix after its parent's last key; every other page starts at its token. */
  private startAfterFor(ctx: ListingContext, pos: ListingPosition): string | null {
    return pos.token === null ? ctx.startAfter : null;
  }

  /** PDFs under the batch's prefixes, counting stops at `stopAt`. One ListObjectsV2 per 1000 keys, nothing written. */
  private async countPdfs(ctx: ListingContext, stopAt: number): Promise<number> {
    let count = 0;
    for (let i = 0; i < ctx.prefixes.length; i++) {
      let token: string | null = null;
      do {
        const out: ListObjectsV2CommandOutput = await this.listPage(ctx.batchId, ctx.bucket, ctx.prefixes[i]!, token, i === 0 ? ctx.startAfter : null, 1000);
        for (const o of out.Contents ?? []) if (o.Key && isPdfKey(o.Key) && !isDirectoryMarker(o.Key)) count++;
        if (count >= stopAt || this.stopping) return count;
        token = out.IsTruncated ? (out.NextContinuationToken ?? null) : null;
      } while (token);
    }
    return count;
  }

  private async listPage(
    batchId: string,
    bucket: string,
    prefix: string,
    token: string | null,
    startAfter: string | null,
    maxKeys = this.pageSize,
  ): Promise<ListObjectsV2CommandOutput> {
    try {
      return await this.s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          MaxKeys: maxKeys,
          ...(token ? { ContinuationToken: token } : {}),
          ...(!token && startAfter ? { StartAfter: startAfter } : {}),
        }),
        { abortSignal: this.abort.signal },
      );
    } catch (e) {
      const err = coerceError(e);
      if (PERMANENT_S3_ERRORS.has(err.name)) {
        throw new ListingError(
          err.name === "NoSuchBucket" ? "bucket_not_found" : err.name === "AccessDenied" ? "bucket_forbidden" : "bucket_unlistable",
          `cannot list s3://${bucket}/${prefix}: ${err.name}`,
          batchId,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Admits a page's new PDFs within the room left (the batch's bound, the key's quota): rows,
   * audit records and the quota charge in one transaction that holds the batch row and the
   * key's quota row, so two processes never admit past either limit.
   */
  private async admit(ctx: ListingContext, objects: { key: string; size: number | undefined }[]): Promise<Admission> {
    return this.prisma.$transaction(
      async (tx) => {
        const [b] = await tx.$queryRaw<{ documentCount: number }[]>`
          SELECT "documentCount" FROM "Batch" WHERE "id" = ${ctx.batchId}::uuid FOR UPDATE`;
        let room = this.maxDocumentsPerBatch - (b?.documentCount ?? 0);
        let cutBy: Admission["cutBy"] = "batch_limit";
        let quota: QuotaStatus | undefined;
        if (ctx.key) {
          quota = await quotaStatus(tx, ctx.key, { lock: ctx.key.plan.quotaDocuments !== null });
          if (quota.remaining !== null && quota.remaining < room) {
            room = quota.remaining;
            cutBy = "quota";
          }
        }
        const page = await insertPage(tx, { batchId: ctx.batchId, bucket: ctx.bucket, workerId: this.workerId, objects, room });
        if (ctx.key && quota) await chargeDocuments(tx, ctx.key.id, quota.periodStart, page.inserted.length);
        return { ...page, cutBy, quota };
      },
      { maxWait: 10_000, timeout: 60_000 },
    );
  }

  /**
   * One page: rows and audit records admitted in one transaction, then messages, then the
   * position (with the skipped count) moved on with a compare-and-set. Returns "lost" when the
   * saved position was not where this run left it (another process is listing the batch), and
   * "stopped" when the page hit the batch's bound or the key's quota and the listing ended there.
   */
  private async handlePage(
    ctx: ListingContext,
    objects: _Object[],
    pos: ListingPosition,
    next: ListingPosition,
    page: number,
    log: Logger,
  ): Promise<"moved" | "lost" | "stopped"> {
    const { batchId, bucket } = ctx;
    const t0 = performance.now();
    const sizes = new Map<string, number | undefined>();
    for (const o of objects) {
      if (!o.Key || isDirectoryMarker(o.Key)) continue;
      if (isPdfKey(o.Key)) sizes.set(o.Key, o.Size);
    }
    const keys = [...sizes.keys()];

    const admission = await this.admit(
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
    const event: PageEvent = { batchId, page, position: pos, pdfs: keys.length, inserted: inserted.length, skipped };
    await this.hooks.afterInsert?.(event);

    // Rows that already existed come from a run that died mid-page: their messages may never
    // have gone out, so the ones nobody has picked up yet are sent again.
    let toSend: { id: string; key: string }[] = inserted;
    if (inserted.length < admittedKeys.length) {
      const fresh = new Set(inserted.map((r) => r.key));
      const earlier = await this.prisma.document.findMany({
        where: { batchId, bucket, key: { in: admittedKeys.filter((k) => !fresh.has(k)) }, state: "queued" },
        select: { id: true, key: true },
      });
      toSend = [...inserted, ...earlier];
    }
    const messages: IngestMessage[] = toSend.map((d) => {
      const size = sizes.get(d.key);
      return { version: 1, batchId, documentId: d.id, bucket, key: d.key, ...(size !== undefined ? { size } : {}) };
    });
    const t1 = performance.now();
    await this.producer.send(messages);
    const sendMs = performance.now() - t1;
    await this.hooks.afterSend?.(event);

    if (firstRefused !== undefined) {
      return (await this.stopAt(ctx, admission, objects, cutIndex, pos, skipped, log)) ? "stopped" : "lost";
    }

    const moved = await this.prisma.batch.updateMany({
      where: { id: batchId, state: "listing", listingPrefix: pos.prefixIndex, listingToken: pos.token },
      data: { listingPrefix: next.prefixIndex, listingToken: next.token, listingStartAfter: null, skippedCount: { increment: skipped } },
    });
    log.debug(
      {
        page,
        pdfs: keys.length,
        inserted: inserted.length,
        sent: messages.length,
        skipped,
        insertMs: Math.round(insertMs),
        sendMs: Math.round(sendMs),
        totalMs: Math.round(performance.now() - t0),
      },
      "page listed",
    );
    if (moved.count === 0) return "lost";
    await this.hooks.afterPage?.(event);
    return "moved";
  }

  /**
   * The page hit the batch's bound or the key's quota at `objects[cutIndex]`. With
   * `onTooLarge: "split"` and the batch bound, the rest of the listing moves to a follow-up
   * batch (same key, owner, prefixes and options; `parentBatchId` = this one) that starts at
   * that key, and this batch goes on to `processing`; otherwise this batch fails with
   * `batch_too_large` or `quota_exceeded`, its admitted documents going on through the
   * pipeline. One transaction with a compare-and-set on the position, like a page.
   */
  private async stopAt(
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
      const childId = await this.prisma.$transaction(async (tx) => {
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
              workerId: this.workerId,
              details: { event: "listing_split", documentCount: parent.documentCount, continuedIn: child.id, limit: this.maxDocumentsPerBatch },
            },
            {
              batchId: child.id,
              stage: "ingestion",
              outcome: "started",
              workerId: this.workerId,
              details: { event: "batch_created", parentBatchId: batchId, bucket: parent.bucket, prefixes: parent.prefixes },
            },
          ],
        });
        return child.id;
      });
      if (!childId) return false;
      log.info({ continuedIn: childId, limit: this.maxDocumentsPerBatch }, "batch reached its size bound; listing continues in a follow-up batch");
      await settleBatch(this.prisma, batchId);
      this.start(childId);
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
            `the batch reached ${this.maxDocumentsPerBatch} documents, the most one batch may have; listing stopped before ${objects[cutIndex]?.Key}. ` +
              `The documents listed so far are processed; submit with onTooLarge "split" to continue in follow-up batches`,
            batchId,
          );
    const failed = await this.prisma.batch.updateMany({ where, data: { skippedCount: { increment: skipped } } });
    if (failed.count === 0) return false;
    await this.markFailed(batchId, err, log, quota ? { resetsAt: quota.resetsAt.toISOString(), limit: quota.limit, period: quota.period } : undefined);
    return true;
  }

  /**
   * Listing is over: the batch moves on to `processing`, then straight to `completed` when
   * nothing is left to do (no PDFs, or every document already finished while we listed).
   * `settleBatch` is the same conditional update the last finishing document runs, so the
   * two may race freely.
   */
  private async finish(batchId: string, log: Logger, stats: { pages: number; ms: number }): Promise<void> {
    const batch = await this.prisma.$transaction(async (tx) => {
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
          workerId: this.workerId,
          details: { event: "listing_finished", documentCount: b.documentCount, skippedCount: b.skippedCount },
        },
      });
      return b;
    });
    if (!batch) return;
    const completed = await settleBatch(this.prisma, batchId);
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

  private async markFailed(batchId: string, err: ListingError, log: Logger, details?: object): Promise<void> {
    // A caller's limit (quota, batch size) is their business, not an operator's alarm.
    const callerLimit = err.code === "quota_exceeded" || err.code === "batch_too_large";
    log[callerLimit ? "warn" : "error"]({ err, code: err.code }, "listing failed permanently");
    try {
      await this.prisma.$transaction([
        this.prisma.batch.updateMany({
          where: { id: batchId, state: "listing" },
          data: { state: "failed", completedAt: new Date(), failureCode: err.code, failureReason: err.message },
        }),
        this.prisma.auditEvent.create({
          data: {
            batchId,
            stage: "ingestion",
            outcome: "failed",
            workerId: this.workerId,
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
}

/** What a listing needs to know about its batch, loaded once per run. */
interface ListingContext {
  batchId: string;
  bucket: string;
  prefixes: string[];
  /** Where the first page of the saved prefix starts when there is no token (a follow-up batch). */
  startAfter: string | null;
  onTooLarge: "reject" | "split";
  /** The submitting key and its plan, whose quota the documents are charged to. */
  key: Pick<CallerKey, "id" | "plan"> | undefined;
}

interface Admission extends InsertedPage {
  /** What limited the room when a key was refused. */
  cutBy: "batch_limit" | "quota";
  quota: QuotaStatus | undefined;
}
