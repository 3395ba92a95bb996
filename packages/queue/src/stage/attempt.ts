import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { queryRows, type Prisma, type PrismaClient } from "@docpipe/db";
import { AuditWriter } from "../audit.js";
import type { Stage } from "../contracts.js";
import { PermanentError, TransientError } from "../errors.js";
import { toStageError } from "../failure.js";
import { silentLogger, type Logger } from "../logger.js";
import { noMetrics, type Metrics } from "../metrics.js";
import type { HandlerContext } from "../worker/types.js";
import { StageTrail, type StageUnit, type TrailAttempt, type TrailOutcome, type UnitStatement } from "./trail.js";

/** What `lookup` returns for a unit an earlier delivery finished: the attempt records it and does nothing. */
export class AlreadyDone {
  constructor(
    /** Why it counts as done (a state, a reason); recorded. */
    readonly details: object | undefined,
    /** Look for the stage's `succeeded` record, and write it (marked `recordedLate`) when the attempt that did the work died before it. */
    readonly checkRecorded: boolean,
  ) {}
}

/** See {@link AlreadyDone}. */
export function alreadyDone(details?: object, opts: { checkRecorded?: boolean } = {}): AlreadyDone {
  return new AlreadyDone(details, opts.checkRecorded ?? false);
}

/** How the work of an attempt ended, when it did not throw. */
export interface StageResult {
  /** `skipped`: nothing to do after all (a duplicate of content done before); `failed`: the work ended the unit as failed itself. @defaultValue "succeeded" */
  outcome?: "succeeded" | "skipped" | "failed";
  /** Facts for the outcome record: counts, sizes, keys; never a payload. */
  details?: object;
  /** With `failed`: the code and the reason a person reads. */
  error?: { code: string; message: string };
}

declare const committed: unique symbol;
/** Proof that the work stored its outcome with {@link StageScope.commit}; return it from `work`. */
export interface Committed {
  readonly [committed]: true;
}
const COMMITTED = Object.freeze({}) as Committed;

/** What the work of one attempt gets besides the message. */
export interface StageScope {
  /** The handler's logger, with the unit's page range bound when it has one. */
  readonly log: Logger;
  /** Aborted when the worker gives the message back; pass it to long waits. */
  readonly signal: AbortSignal;
  /** SQS ApproximateReceiveCount of the message. */
  readonly attempt: number;
  /** A temporary directory for this attempt, made on first call and removed, with all in it, before the outcome is recorded. */
  dir(): Promise<string>;
  /** Between pieces of a long job: throws (transient `interrupted`) once the worker is stopping, so the message goes back at once. */
  throwIfStopping(): void;
  /**
   * The worker's metrics. The lifecycle counts `Pages` itself (a page unit, a page range, each
   * committed page of a breakdown); a stage adds what only it knows, e.g. `DegradedPages`.
   */
  readonly metrics: Metrics;
  /**
   * Ends the attempt: runs `write` (the unit's last writes) and stores the outcome in the same
   * transaction, so a crash cannot leave the work done without its record, or the reverse.
   * `write` may answer `{ outcome: "skipped" }` when it finds the work already done.
   */
  commit(details: object, write: (tx: Prisma.TransactionClient) => Promise<StageResult | void>): Promise<Committed>;
  /**
   * Ends the attempt as {@link commit} does, in one statement: the unit's writes are parts of it,
   * and the outcome record its last. The cheap way for the stages every page goes through. The
   * row is what the statement returns: `outcome` and the columns of `unit.returning`.
   */
  commitStatement<R extends object = object>(details: object, unit: UnitStatement): Promise<{ committed: Committed; row: R & { outcome: string } }>;
  /** One page finished inside an attempt on a larger unit (the failsafe's breakdown); `write` commits with its record. */
  commitPage(pageNumber: number, outcome: TrailOutcome, write?: (tx: Prisma.TransactionClient) => Promise<void>): Promise<void>;
}

export interface StageAttempt<T> {
  stage: Stage;
  unit: StageUnit;
  /** The worker's context of the message being handled. */
  ctx: HandlerContext;
  /** Facts on every record of the attempt (the failsafe's queue and dead-letter cause). */
  details?: object;
  /** Why this delivery exists, on the records before the work (the failsafe: the dead letter's error). */
  cause?: { errorCode: string; errorMessage: string };
  /**
   * Reads the unit before anything is written: {@link alreadyDone} when an earlier delivery
   * finished it, or whatever `work` needs. Throwing fails the attempt like `work` does.
   */
  lookup?: () => Promise<T | AlreadyDone>;
  /**
   * When the claim finds the unit done, record it as a `lookup` answering {@link alreadyDone} with
   * `checkRecorded` would: for a stage whose claim is its only look at the unit (the converter:
   * no statement of its own per page). @defaultValue false
   */
  checkRecordedWhenDone?: boolean;
  /** The stage's own work. Throw to fail the attempt: permanent errors dead-letter, others retry. */
  work: (scope: StageScope, found: T) => Promise<StageResult | Committed>;
  /**
   * Record a permanent failure as `failed` before the worker dead-letters it. Page stages leave
   * the record to their `onDeadLetter` (one `dead_lettered` record says it). @defaultValue true
   */
  recordPermanentFailure?: boolean;
}

export interface StageRunnerOptions {
  prisma: PrismaClient;
  /** Who does the work, in every audit record, e.g. `page-converter/1234`. */
  workerId: string;
  logger?: Logger;
  /** Parent of the attempts' temporary directories. @defaultValue os.tmpdir() */
  tmpDir?: string;
  /**
   * How long an attempt's claim on its unit holds without renewal (long attempts renew it every
   * third of it): the visibility timeout of the service's messages, so that a message that comes
   * back after its worker died finds the claim expired or its own. @defaultValue 120
   */
  leaseSeconds?: number;
}

/**
 * Runs every stage attempt of a service through one lifecycle: look the unit up (skip it when
 * an earlier delivery finished it), record `started`, work in a temporary directory, remove
 * it, record the outcome, and on a throw record `failed` (unless the worker released the
 * message) and rethrow the error as permanent or transient for the worker.
 *
 * Every audit record of an attempt goes through {@link StageTrail}; the lifecycle and the trail
 * are where a change to either belongs, for every stage at once:
 * - the write path (fewer, batched or narrower records; counters kept with the outcome) is the
 *   trail's, and `commit` is the one transaction per unit of work;
 * - a completion record per unit (so a duplicate delivery is told by the unit, not by each
 *   stage's own look at its rows) goes with the outcome in `commit`/`finished` and is read
 *   before `lookup`; a lease per unit starts where `started` is recorded and ends with the outcome.
 *
 * It also holds the service's {@link AuditWriter}, and has the `prisma` and `audit` that the
 * dead-letter hooks take (`recordDeadLetter(stages, ...)`).
 */
export class StageRunner {
  readonly prisma: PrismaClient;
  readonly audit: AuditWriter;
  private readonly trail: StageTrail;
  private readonly tmpRoot: string;

  constructor(opts: StageRunnerOptions) {
    this.prisma = opts.prisma;
    this.audit = new AuditWriter({ prisma: opts.prisma, workerId: opts.workerId, logger: opts.logger ?? silentLogger() });
    this.trail = new StageTrail(this.audit, opts.prisma, opts.leaseSeconds ?? 120);
    this.tmpRoot = opts.tmpDir ?? tmpdir();
  }

  async run<T = undefined>(a: StageAttempt<T>): Promise<void> {
    const { ctx } = a;
    const range = a.unit.firstPage !== undefined ? { firstPage: a.unit.firstPage, lastPage: a.unit.lastPage } : undefined;
    const log = range ? ctx.logger.child(range) : ctx.logger;
    const t: TrailAttempt = {
      stage: a.stage,
      unit: a.unit,
      attempt: ctx.attempt,
      messageId: ctx.messageId,
      ...(a.details && { details: a.details }),
      ...(a.cause && { cause: a.cause }),
    };
    const scope = new Scope(this.prisma, this.trail, t, ctx, log, this.tmpRoot);
    try {
      const found = a.lookup ? await a.lookup() : (undefined as T);
      if (found instanceof AlreadyDone) {
        await this.trail.alreadyDone(t, found.details, found.checkRecorded);
        log.info({ stage: a.stage, ...found.details }, "already done by an earlier delivery; skipped");
        return;
      }
      const claim = await this.trail.started(t);
      if (!claim.won) {
        // Done by another delivery meanwhile, or being done by one now: its message carries the
        // unit on (and if that one is lost too, the reconciler re-sends it).
        const details = { claim: claim.reason, ...(claim.holder && { heldBy: claim.holder }) };
        await this.trail.alreadyDone(t, details, claim.reason === "done" && a.checkRecordedWhenDone === true);
        log.info({ stage: a.stage, ...details }, "another delivery has this unit; skipped");
        return;
      }
      const stopRenewing = this.trail.keepClaim(t, (e) => log.warn({ err: e }, "renewing the claim failed; will try again"));
      let result: StageResult | Committed;
      try {
        result = await a.work(scope, found);
      } finally {
        stopRenewing();
        // Gone before the outcome is recorded: a finished attempt leaves nothing on disk.
        await scope.removeDir();
      }
      if (result === COMMITTED) return;
      const r = result as StageResult;
      await this.trail.finished(t, {
        outcome: r.outcome ?? "succeeded",
        durationMs: scope.elapsedMs(),
        ...(r.details && { details: r.details }),
        ...(r.error && { error: r.error }),
      });
      if ((r.outcome ?? "succeeded") === "succeeded") scope.metrics.count("Pages", unitPages(a.unit));
    } catch (e) {
      const err = toStageError(e);
      const permanent = err instanceof PermanentError;
      // A message the worker gave back (stop, lost receipt) did not fail: another worker takes it.
      const released = ctx.signal.aborted && !permanent;
      log.warn({ stage: a.stage, errorCode: err.code, permanent, released }, "stage attempt failed");
      if (!released && (!permanent || a.recordPermanentFailure !== false)) {
        // The error decides the message's fate; a trail that cannot take the record must not change it.
        await this.trail.failed(t, err, scope.elapsedMs()).catch(() => undefined);
      } else {
        // The next delivery (a retry-failed, a re-sent message) must find the unit free.
        await this.trail.release(t).catch(() => undefined);
      }
      throw err;
    }
  }

  /** Resolves when every audit record started so far is stored or has failed. */
  flush(): Promise<void> {
    return this.audit.flush();
  }
}

/** Pages a unit's success finishes: one for a page, the range for a chunk, none for a whole document. */
function unitPages(unit: StageUnit): number {
  if (unit.pageNumber !== undefined) return 1;
  if (unit.firstPage !== undefined && unit.lastPage !== undefined) return unit.lastPage - unit.firstPage + 1;
  return 0;
}

class Scope implements StageScope {
  private readonly startedAt = performance.now();
  private tmp: Promise<string> | undefined;
  private done = false;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly trail: StageTrail,
    private readonly t: TrailAttempt,
    private readonly ctx: HandlerContext,
    readonly log: Logger,
    private readonly tmpRoot: string,
  ) {}

  get signal(): AbortSignal {
    return this.ctx.signal;
  }

  get attempt(): number {
    return this.ctx.attempt;
  }

  get metrics(): Metrics {
    return this.ctx.metrics ?? noMetrics;
  }

  elapsedMs(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  dir(): Promise<string> {
    this.tmp ??= mkdtemp(join(this.tmpRoot, `docpipe-${this.t.stage}-`));
    return this.tmp;
  }

  async removeDir(): Promise<void> {
    const dir = await this.tmp?.catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  }

  throwIfStopping(): void {
    if (this.ctx.signal.aborted) throw new TransientError("interrupted", "worker is stopping; message released for another worker");
  }

  async commit(details: object, write: (tx: Prisma.TransactionClient) => Promise<StageResult | void>): Promise<Committed> {
    if (this.done) throw new Error("an attempt commits its outcome once");
    this.done = true;
    const durationMs = this.elapsedMs();
    const outcome = await this.prisma.$transaction(async (tx) => {
      const r = (await write(tx)) ?? {};
      await this.trail.finished(
        this.t,
        { outcome: r.outcome ?? "succeeded", durationMs, details: { ...details, ...r.details }, ...(r.error && { error: r.error }) },
        tx,
      );
      return r.outcome ?? "succeeded";
    });
    if (outcome === "succeeded") this.metrics.count("Pages", unitPages(this.t.unit));
    return COMMITTED;
  }

  async commitStatement<R extends object = object>(details: object, unit: UnitStatement): Promise<{ committed: Committed; row: R & { outcome: string } }> {
    if (this.done) throw new Error("an attempt commits its outcome once");
    this.done = true;
    const statement = this.trail.finishedStatement(this.t, { outcome: "succeeded", durationMs: this.elapsedMs(), details }, unit);
    const [row] = await queryRows<R & { outcome: string }>(this.prisma, statement);
    if (row!.outcome === "succeeded") this.metrics.count("Pages", unitPages(this.t.unit));
    return { committed: COMMITTED, row: row! };
  }

  async commitPage(pageNumber: number, outcome: TrailOutcome, write?: (tx: Prisma.TransactionClient) => Promise<void>): Promise<void> {
    if (!write) await this.trail.part(this.t, pageNumber, outcome);
    else {
      await this.prisma.$transaction(async (tx) => {
        await write(tx);
        await this.trail.part(this.t, pageNumber, outcome, tx);
      });
    }
    if (outcome.outcome === "succeeded") this.metrics.count("Pages");
  }
}
