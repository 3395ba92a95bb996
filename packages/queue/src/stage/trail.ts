import { Prisma, type PrismaClient } from "@docpipe/db";
import { auditInsertSql, type AuditRecord, type AuditWriter } from "../audit.js";
import type { Stage } from "../contracts.js";
import { PermanentError, type TransientError } from "../errors.js";
import { failureReason } from "../failure.js";
import { claimAndStart, claimTarget, releaseAndRecord, releaseClaim, renewClaim, type ClaimOutcome, type ClaimTarget } from "./claim.js";

/**
 * What a stage attempt works on. Its identity (stage, document, page or page range) is the
 * unit an audit record speaks of.
 */
export interface StageUnit {
  batchId: string;
  documentId: string;
  /** A page stage's page (convert, inference), or a dead letter's. */
  pageNumber?: number;
  /** A range of the document's pages (a chunk for split-small); recorded in `details`. */
  firstPage?: number;
  lastPage?: number;
  /** The S3 key the range is read from: split-small's claim makes a small document's chunk row with it. */
  key?: string;
}

/** The attempt as the trail needs it: which unit, which delivery, and what every record says. */
export interface TrailAttempt {
  stage: Stage;
  unit: StageUnit;
  attempt: number;
  messageId: string;
  /** Facts on every record of the attempt. */
  details?: object;
  /** An error code and message on the records before the work: why this delivery exists (the failsafe's dead letters). */
  cause?: { errorCode: string; errorMessage: string };
}

/** How a finished attempt ended, as the trail records it. */
export interface TrailOutcome {
  outcome: "succeeded" | "skipped" | "failed";
  durationMs?: number;
  details?: object;
  error?: { code: string; message: string };
}

/**
 * A unit's last writes as part of the one statement that also stores the attempt's outcome
 * (`StageScope.commitStatement`): a crash or a rollback cannot keep one without the other, and
 * the database sees one statement and one commit instead of a transaction of several.
 */
export interface UnitStatement {
  /** The writes: `name AS (…)` parts, comma-separated, of the statement's `WITH`. */
  with: Prisma.Sql;
  /**
   * When the writes found the work already done (say a result that exists): a boolean SQL
   * expression over the parts, which makes the outcome `skipped` with these details added.
   */
  skippedWhen?: { condition: Prisma.Sql; details: object };
  /** What else the statement returns: an SQL select list over the parts (e.g. a document's new state). */
  returning?: Prisma.Sql;
}

/**
 * The audit strategy of every stage attempt: which records an attempt writes, with which fields,
 * and through which statement. The lifecycle (`StageRunner`) decides when; this decides what
 * and how, so that a change to the write path (batched or narrower inserts, counters kept
 * with the outcome) is made here once for every stage.
 */
export class StageTrail {
  constructor(
    private readonly audit: AuditWriter,
    private readonly prisma: PrismaClient,
    /** How long a claim holds without renewal: the message's visibility timeout. */
    private readonly leaseSeconds: number,
  ) {}

  /** A delivery of a unit that an earlier one finished; see `AuditWriter.recordAlreadyDone`. */
  async alreadyDone(a: TrailAttempt, details: object | undefined, checkRecorded: boolean): Promise<void> {
    const record = { ...this.base(a), ...a.cause, ...this.detailsOf(a, details) };
    if (checkRecorded) await this.audit.recordAlreadyDone(record);
    else await this.audit.record({ ...record, outcome: "skipped" });
  }

  /**
   * Records `started`, and for the stages that claim their unit (see claim.ts) claims it in the
   * same statement. A lost claim writes nothing and says why; the attempt then does no work.
   */
  async started(a: TrailAttempt): Promise<ClaimOutcome> {
    const record: AuditRecord = { ...this.base(a), ...a.cause, outcome: "started", ...this.detailsOf(a) };
    const target = this.claimOf(a);
    if (target) return claimAndStart(this.prisma, target, a.messageId, this.leaseSeconds, this.audit.row(record));
    await this.audit.record(record);
    return { won: true };
  }

  /** Releases the claim of an attempt that ends without an outcome record of its own (dead-lettered, or given back by its worker). */
  async release(a: TrailAttempt): Promise<void> {
    const target = this.claimOf(a);
    if (target) await releaseClaim(this.prisma, target, a.messageId);
  }

  /** Keeps a claimed attempt's claim while it works past a third of the lease; call the result when it ends. */
  keepClaim(a: TrailAttempt, onError: (e: unknown) => void): () => void {
    const target = this.claimOf(a);
    if (!target) return () => undefined;
    const timer = setInterval(() => {
      renewClaim(this.prisma, target, a.messageId, this.leaseSeconds).catch(onError);
    }, (this.leaseSeconds * 1000) / 3);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The attempt's outcome, releasing its claim; with `tx`, stored in that transaction alongside the work it reports. */
  async finished(a: TrailAttempt, o: TrailOutcome, tx?: Prisma.TransactionClient): Promise<void> {
    await this.write(a, this.outcomeRecord(a, o), tx);
  }

  /**
   * The statement that runs `unit`'s writes and stores the outcome `o` with them: its first
   * column is the outcome recorded, then `unit.returning`'s. It leaves a claim on the unit to
   * expire rather than release it: the unit's writes are its completion record, which makes
   * the claim moot for its stage (a later delivery finds it done), and the next stage takes a
   * unit over from an earlier one. (A release would update the unit's row a second time in the
   * statement, which Postgres does not allow.)
   */
  finishedStatement(a: TrailAttempt, o: TrailOutcome, unit: UnitStatement): Prisma.Sql {
    const row = this.audit.row(this.outcomeRecord(a, o));
    const skipped = unit.skippedWhen;
    const json = (v: unknown) => Prisma.sql`${v === undefined ? null : JSON.stringify(v)}::jsonb`;
    const when = (then: Prisma.Sql, otherwise: Prisma.Sql) => (skipped ? Prisma.sql`CASE WHEN ${skipped.condition} THEN ${then} ELSE ${otherwise} END` : otherwise);
    const record = auditInsertSql(row, {
      outcome: when(Prisma.sql`'skipped'::"AuditOutcome"`, Prisma.sql`${row.outcome}::"AuditOutcome"`),
      details: when(json({ ...(row.details as object | undefined), ...skipped?.details }), json(row.details)),
    });
    return Prisma.sql`
      WITH ${unit.with},
      outcome_record AS (${record} RETURNING outcome::text AS outcome)
      SELECT (SELECT outcome FROM outcome_record) AS outcome${unit.returning ? Prisma.sql`, ${unit.returning}` : Prisma.empty}`;
  }

  /**
   * A failed attempt that returns its message to the queue (transient) or dead-letters it
   * (permanent, whose reason then reads as on the document).
   */
  async failed(a: TrailAttempt, err: PermanentError | TransientError, durationMs: number): Promise<void> {
    const message = err instanceof PermanentError ? failureReason(err) : err.message;
    await this.write(a, this.outcomeRecord(a, { outcome: "failed", durationMs, error: { code: err.code, message } }));
  }

  /** One page finished inside an attempt on a larger unit (the failsafe's breakdown), with its own outcome. */
  async part(a: TrailAttempt, pageNumber: number, o: TrailOutcome, tx?: Prisma.TransactionClient): Promise<void> {
    await this.write(
      undefined,
      {
        ...this.base(a),
        pageNumber,
        outcome: o.outcome,
        ...(o.durationMs !== undefined && { durationMs: o.durationMs }),
        ...(o.error && { errorCode: o.error.code, errorMessage: o.error.message }),
        ...(o.details && { details: o.details }),
      },
      tx,
    );
  }

  private outcomeRecord(a: TrailAttempt, o: TrailOutcome): AuditRecord {
    return {
      ...this.base(a),
      outcome: o.outcome,
      ...(o.durationMs !== undefined && { durationMs: o.durationMs }),
      ...(o.error && { errorCode: o.error.code, errorMessage: o.error.message }),
      ...this.detailsOf(a, o.details),
    };
  }

  /** Writes an outcome record; for an attempt that claimed its unit, the same statement releases the claim. */
  private async write(a: TrailAttempt | undefined, record: AuditRecord, tx?: Prisma.TransactionClient): Promise<void> {
    const target = a && this.claimOf(a);
    if (target) await releaseAndRecord(tx ?? this.prisma, target, a.messageId, this.audit.row(record));
    else if (tx) await tx.auditEvent.create({ data: this.audit.row(record) });
    else await this.audit.record(record);
  }

  private claimOf(a: TrailAttempt): ClaimTarget | undefined {
    return claimTarget(a.stage, a.unit);
  }

  private base(a: TrailAttempt): Omit<AuditRecord, "outcome"> {
    return {
      stage: a.stage,
      batchId: a.unit.batchId,
      documentId: a.unit.documentId,
      ...(a.unit.pageNumber !== undefined && { pageNumber: a.unit.pageNumber }),
      attempt: a.attempt,
      messageId: a.messageId,
    };
  }

  /** The unit's range, the attempt's facts and the record's own; none at all stores no `details`. */
  private detailsOf(a: TrailAttempt, more?: object): { details?: object } {
    const range = a.unit.firstPage !== undefined ? { firstPage: a.unit.firstPage, lastPage: a.unit.lastPage } : {};
    const details = { ...range, ...a.details, ...more };
    return Object.keys(details).length > 0 ? { details } : {};
  }
}
