import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { isPdfKey } from "@docpipe/api-contract";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, fullJitterBackoff, isTransient, TransientError, type Logger, type QueueProducer } from "@docpipe/queue";
import { setTimeout as delay } from "node:timers/promises";
import { BatchOptions } from "./batch-options.js";
import { COUNT_LANES, CountedPages, type ListedPage } from "./counted-pages.js";
import { ListingError } from "./errors.js";
import { admitPage, finishListing, isDirectoryMarker, markFailed, sendPage, type ListingContext, type ListingDeps } from "./listing-page.js";

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


/** S3 errors after which listing this bucket can never succeed. */
const PERMANENT_S3_ERRORS = new Set([
  "NoSuchBucket",
  "AccessDenied",
  "AllAccessDisabled",
  "InvalidBucketName",
  "PermanentRedirect",
  "InvalidAccessKeyId",
]);
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
  private readonly pageDeps: ListingDeps;
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
    this.pageDeps = {
      prisma: this.prisma,
      producer: this.producer,
      workerId: this.workerId,
      maxDocumentsPerBatch: this.maxDocumentsPerBatch,
      hooks: this.hooks,
      continueIn: (batchId) => this.start(batchId),
    };
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
          await markFailed(this.pageDeps, batchId, err, log);
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
    const counted = new CountedPages();
    if (ctx.onTooLarge === "reject" && batch.documentCount === 0 && pos.prefixIndex === 0 && pos.token === null) {
      // All or nothing: count first, so a batch over the bound queues nothing at all.
      const count = await this.countPdfs(ctx, this.maxDocumentsPerBatch + 1, counted);
      if (count > this.maxDocumentsPerBatch) {
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

    // Three pages in the air: the next one is fetched while this one's rows are admitted and
    // the previous one's messages go out (sendPage). Rows may run one page ahead of messages;
    // the saved position never passes a page whose messages are not all sent.
    let prefetched: Promise<ListedPage> | undefined;
    let sending: Promise<"moved" | "lost" | "stopped"> | undefined;
    const previousSent = async (): Promise<boolean> => {
      const outcome = await sending;
      sending = undefined;
      if (outcome === "lost") log.warn({ position: pos }, "another process moved this listing on; leaving it to that process");
      return outcome !== "lost";
    };
    try {
      while (pos.prefixIndex < prefixes.length) {
        if (this.stopping) {
          if (!(await previousSent())) return;
          log.info({ prefixIndex: pos.prefixIndex, pages: progress.pages }, "listing paused by shutdown; resumes on the next start");
          return;
        }
        const out = await (prefetched ?? this.fetchPage(counted, ctx, pos.prefixIndex, pos.token, this.startAfterFor(ctx, pos)));
        prefetched = undefined;
        let next: ListingPosition;
        if (out.IsTruncated) {
          if (!out.NextContinuationToken) throw new TransientError("s3_listing", "truncated listing without a continuation token");
          next = { prefixIndex: pos.prefixIndex, token: out.NextContinuationToken };
        } else {
          next = { prefixIndex: pos.prefixIndex + 1, token: null };
        }
        if (next.prefixIndex < prefixes.length && !this.stopping) {
          prefetched = this.fetchPage(counted, ctx, next.prefixIndex, next.token, null);
          prefetched.catch(() => undefined); // awaited (or dropped) on the next turn
        }
        const admitted = await admitPage(this.pageDeps, ctx, out.Contents ?? [], pos, ++progress.pages);
        if (!(await previousSent())) return;
        sending = sendPage(this.pageDeps, ctx, admitted, pos, next, log);
        sending.catch(() => undefined); // awaited on the next turn, or below
        if (admitted.admission.firstRefused !== undefined) {
          // The page hit a limit: the listing ends with it (or continues in a follow-up batch).
          await previousSent();
          return;
        }
        pos = next;
      }
      if (!(await previousSent())) return;
    } finally {
      // Whatever stops the listing (a crash, a stop, a failure), a page whose rows are in goes
      // on to send its messages and move the position, as a single page always has.
      await sending?.catch(() => undefined);
    }
    await finishListing(this.pageDeps, batchId, log, { pages: progress.pages, ms: Date.now() - started });
  }

  /** A follow-up batch starts its first prefix after its parent's last key; every other page starts at its token. */
  private startAfterFor(ctx: ListingContext, pos: ListingPosition): string | null {
    return pos.token === null ? ctx.startAfter : null;
  }

  /** A page of the listing: the one the count kept, or a ListObjectsV2. */
  private fetchPage(counted: CountedPages, ctx: ListingContext, prefixIndex: number, token: string | null, startAfter: string | null): Promise<ListedPage> {
    const kept = counted.take(prefixIndex, token, startAfter);
    return kept ? Promise.resolve(kept) : this.listPage(ctx.batchId, ctx.bucket, ctx.prefixes[prefixIndex]!, token, startAfter);
  }

  /**
   * PDFs under the batch's prefixes, counting stops at `stopAt`. One ListObjectsV2 per page (the
   * listing's own pages, so `counted` keeps them for the listing that follows), nothing written.
   */
  private async countPdfs(ctx: ListingContext, stopAt: number, counted: CountedPages): Promise<number> {
    let count = 0;
    let nextPrefix = 0;
    let failed = false;
    const done = () => count >= stopAt || this.stopping || failed;
    // Prefixes are counted a few at a time: a prefix's pages follow one another (each needs the
    // previous page's token), but the prefixes are independent, and counting is read-only.
    const lane = async (): Promise<void> => {
      while (nextPrefix < ctx.prefixes.length && !done()) {
        const i = nextPrefix++;
        let token: string | null = null;
        do {
          const startAfter = token === null && i === 0 ? ctx.startAfter : null;
          const out: ListedPage = await this.listPage(ctx.batchId, ctx.bucket, ctx.prefixes[i]!, token, startAfter);
          counted.keep(i, token, startAfter, out);
          for (const o of out.Contents ?? []) if (o.Key && isPdfKey(o.Key) && !isDirectoryMarker(o.Key)) count++;
          token = out.IsTruncated ? (out.NextContinuationToken ?? null) : null;
        } while (token && !done());
      }
    };
    const lanes = Array.from({ length: Math.min(COUNT_LANES, ctx.prefixes.length) }, () =>
      lane().catch((e: unknown) => {
        failed = true; // the other lanes stop after their page in hand
        throw e;
      }),
    );
    await Promise.all(lanes);
    return count;
  }

  private async listPage(
    batchId: string,
    bucket: string,
    prefix: string,
    token: string | null,
    startAfter: string | null,
  ): Promise<ListedPage> {
    try {
      return await this.s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          MaxKeys: this.pageSize,
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
}
