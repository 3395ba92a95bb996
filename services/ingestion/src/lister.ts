import { ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client, type _Object } from "@aws-sdk/client-s3";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, settleBatch, TransientError, type IngestMessage, type Logger, type QueueProducer } from "@docpipe/queue";
import { setTimeout as delay } from "node:timers/promises";
import { ListingError } from "./errors.js";
import { insertPage } from "./insert-page.js";

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
  /** Ceiling of the backoff between retries of a listing after a transient failure, in ms. @defaultValue `30000` */
  maxRetryDelayMs?: number;
  hooks?: ListerHooks;
}

/** A PDF, by extension; anything else is skipped and counted. */
const isPdfKey = (key: string): boolean => /\.pdf$/i.test(key);
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
        const ms = Math.round(Math.random() * Math.min(this.maxRetryDelayMs, 250 * 2 ** (attempt - 1)));
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
      select: { state: true, bucket: true, prefixes: true, listingPrefix: true, listingToken: true },
    });
    if (!batch || batch.state !== "listing") return;
    const { bucket, prefixes } = batch;
    let pos: ListingPosition = { prefixIndex: batch.listingPrefix, token: batch.listingToken };
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
      const out = await (prefetched ?? this.listPage(batchId, bucket, prefixes[pos.prefixIndex]!, pos.token));
      prefetched = undefined;
      let next: ListingPosition;
      if (out.IsTruncated) {
        if (!out.NextContinuationToken) throw new TransientError("s3_listing", "truncated listing without a continuation token");
        next = { prefixIndex: pos.prefixIndex, token: out.NextContinuationToken };
      } else {
        next = { prefixIndex: pos.prefixIndex + 1, token: null };
      }
      if (next.prefixIndex < prefixes.length && !this.stopping) {
        prefetched = this.listPage(batchId, bucket, prefixes[next.prefixIndex]!, next.token);
        prefetched.catch(() => undefined); // awaited (or dropped) on the next turn
      }
      const owner = await this.handlePage(batchId, bucket, out.Contents ?? [], pos, next, ++progress.pages, log);
      if (!owner) {
        log.warn({ position: pos }, "another process moved this listing on; leaving it to that process");
        return;
      }
      pos = next;
    }
    await this.finish(batchId, log, { pages: progress.pages, ms: Date.now() - started });
  }

  private async listPage(batchId: string, bucket: string, prefix: string, token: string | null): Promise<ListObjectsV2CommandOutput> {
    try {
      return await this.s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          MaxKeys: this.pageSize,
          ...(token ? { ContinuationToken: token } : {}),
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
   * One page: rows and audit records in one transaction, then messages, then the position
   * (with the skipped count) moved on with a compare-and-set. Returns false when the saved
   * position was not where this run left it, i.e. another process is listing the batch.
   */
  private async handlePage(
    batchId: string,
    bucket: string,
    objects: _Object[],
    pos: ListingPosition,
    next: ListingPosition,
    page: number,
    log: Logger,
  ): Promise<boolean> {
    const t0 = performance.now();
    const sizes = new Map<string, number | undefined>();
    let skipped = 0;
    for (const o of objects) {
      if (!o.Key || isDirectoryMarker(o.Key)) continue;
      if (isPdfKey(o.Key)) sizes.set(o.Key, o.Size);
      else skipped++;
    }
    const keys = [...sizes.keys()];

    const inserted = await insertPage(this.prisma, {
      batchId,
      bucket,
      workerId: this.workerId,
      objects: keys.map((key) => ({ key, size: sizes.get(key) })),
    });
    const insertMs = performance.now() - t0;
    const event: PageEvent = { batchId, page, position: pos, pdfs: keys.length, inserted: inserted.length, skipped };
    await this.hooks.afterInsert?.(event);

    // Rows that already existed come from a run that died mid-page: their messages may never
    // have gone out, so the ones nobody has picked up yet are sent again.
    let toSend: { id: string; key: string }[] = inserted;
    if (inserted.length < keys.length) {
      const fresh = new Set(inserted.map((r) => r.key));
      const earlier = await this.prisma.document.findMany({
        where: { batchId, bucket, key: { in: keys.filter((k) => !fresh.has(k)) }, state: "queued" },
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

    const moved = await this.prisma.batch.updateMany({
      where: { id: batchId, state: "listing", listingPrefix: pos.prefixIndex, listingToken: pos.token },
      data: { listingPrefix: next.prefixIndex, listingToken: next.token, skippedCount: { increment: skipped } },
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
    if (moved.count === 0) return false;
    await this.hooks.afterPage?.(event);
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

  private async markFailed(batchId: string, err: ListingError, log: Logger): Promise<void> {
    log.error({ err, code: err.code }, "listing failed permanently");
    try {
      await this.prisma.$transaction([
        this.prisma.batch.updateMany({
          where: { id: batchId, state: "listing" },
          data: { state: "failed", completedAt: new Date() },
        }),
        this.prisma.auditEvent.create({
          data: {
            batchId,
            stage: "ingestion",
            outcome: "failed",
            workerId: this.workerId,
            errorCode: err.code,
            errorMessage: err.message,
          },
        }),
      ]);
    } catch (e) {
      log.error({ err: coerceError(e) }, "could not record the listing failure; the batch resumes on the next start");
    }
  }
}
