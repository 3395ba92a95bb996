import { Prisma, type PrismaClient } from "@docpipe/db";
import type { Stage } from "./contracts.js";
import { coerceError, isForeignKeyViolation, TransientError } from "./errors.js";
import { silentLogger, type Logger } from "./logger.js";
import { NOW } from "./sql.js";

export type AuditOutcome = "started" | "succeeded" | "failed" | "dead_lettered" | "replayed" | "skipped" | "reconciled";

export interface AuditRecord {
  stage: Stage;
  outcome: AuditOutcome;
  batchId?: string;
  documentId?: string;
  pageNumber?: number;
  /** SQS ApproximateReceiveCount of the message being worked on. @defaultValue `1` */
  attempt?: number;
  durationMs?: number;
  errorCode?: string;
  errorMessage?: string;
  messageId?: string;
  /** Small structured facts (counts, keys, sizes); never a payload. */
  details?: object;
}

export interface AuditWriterOptions {
  prisma: PrismaClient;
  /** Who did the work, e.g. `page-converter/ip-10-0-1-5/1234`. */
  workerId: string;
  logger?: Logger;
}

/** Error messages are for people; a stack-length blob helps nobody and bloats the table. */
const MAX_ERROR_MESSAGE = 2000;

/** Records stored by one INSERT at most. */
const MAX_GROUP = 100;

interface Queued {
  record: AuditRecord;
  resolve(): void;
  reject(e: unknown): void;
}

/**
 * Writes one AuditEvent row per record. `record` resolves once the row is stored, so a worker
 * that awaits it before acknowledging a message never loses an audit record; `flush` waits for
 * records started without being awaited.
 *
 * Records are stored by group commit: the first goes at once, and those that arrive while an
 * INSERT is in flight (a worker's other messages) go together in the next one. No record waits
 * longer than one INSERT for company, and concurrent messages cost one statement, not one each.
 */
export class AuditWriter {
  private readonly prisma: PrismaClient;
  private readonly workerId: string;
  private readonly logger: Logger;
  private readonly pending = new Set<Promise<void>>();
  private queued: Queued[] = [];
  private writing = false;

  constructor(opts: AuditWriterOptions) {
    this.prisma = opts.prisma;
    this.workerId = opts.workerId;
    this.logger = (opts.logger ?? silentLogger()).child({ component: "audit" });
  }

  /** Stores one record. Throws {@link TransientError} `audit_write_failed` when the database does not take it. */
  record(e: AuditRecord): Promise<void> {
    const p = new Promise<void>((resolve, reject) => {
      this.queued.push({ record: e, resolve, reject });
      if (!this.writing) void this.drain();
    }).finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }

  /** Stores what is queued, a group per INSERT, until nothing is. */
  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queued.length > 0) {
        const group = this.queued.splice(0, MAX_GROUP);
        try {
          if (group.length === 1) await this.write(group[0]!.record);
          else await this.prisma.auditEvent.createMany({ data: group.map((q) => this.row(q.record)) });
          for (const q of group) q.resolve();
        } catch (err) {
          if (group.length === 1) {
            group[0]!.reject(err);
            continue;
          }
          // One bad record (an unknown batch or document) fails the whole INSERT: each on its own.
          await Promise.all(group.map((q) => this.write(q.record).then(q.resolve, q.reject)));
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /**
   * Records a delivery that found its unit of work (a stage of a document, or of one page) already
   * done. The attempt that did the work may have died (SIGKILL, out of memory) after its last write
   * and before its `succeeded` record; then no record says the stage succeeded, so this one does,
   * marked `recordedLate`. Otherwise it records `skipped`. Returns the outcome it recorded.
   */
  async recordAlreadyDone(e: Omit<AuditRecord, "outcome">): Promise<"succeeded" | "skipped"> {
    const earlier = await this.prisma.auditEvent.findFirst({
      where: { stage: e.stage, outcome: "succeeded", documentId: e.documentId ?? null, pageNumber: e.pageNumber ?? null },
      select: { id: true },
    });
    const outcome = earlier ? "skipped" : "succeeded";
    await this.record({ ...e, outcome, details: { ...e.details, ...(!earlier && { recordedLate: true }) } });
    return outcome;
  }

  /** Resolves when every record started so far is stored or has failed. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  /**
   * The row a record becomes, for a caller that must store it in the same transaction as the
   * work it reports (so a crash cannot leave the work done and the trail without it).
   */
  row(e: AuditRecord): Prisma.AuditEventUncheckedCreateInput {
    return {
      stage: e.stage,
      outcome: e.outcome,
      workerId: this.workerId,
      attempt: e.attempt ?? 1,
      batchId: e.batchId ?? null,
      documentId: e.documentId ?? null,
      pageNumber: e.pageNumber ?? null,
      durationMs: e.durationMs === undefined ? null : Math.round(e.durationMs),
      errorCode: e.errorCode ?? null,
      errorMessage: e.errorMessage === undefined ? null : e.errorMessage.slice(0, MAX_ERROR_MESSAGE),
      messageId: e.messageId ?? null,
      ...(e.details !== undefined && { details: e.details as Prisma.InputJsonValue }),
    };
  }

  private async write(e: AuditRecord): Promise<void> {
    const data = this.row(e);
    try {
      await this.prisma.auditEvent.create({ data });
    } catch (err) {
      if (!isForeignKeyViolation(err)) throw this.failure(err, e);
      // A poison message can name a batch or document that was never created. The record is
      // still worth keeping, so the ids move into `details` instead of the foreign keys.
      try {
        await this.prisma.auditEvent.create({
          data: {
            ...data,
            batchId: null,
            documentId: null,
            details: { ...(e.details ?? {}), unknownBatchId: e.batchId, unknownDocumentId: e.documentId } as Prisma.InputJsonValue,
          },
        });
      } catch (err2) {
        throw this.failure(err2, e);
      }
    }
  }

  private failure(err: unknown, e: AuditRecord): TransientError {
    const cause = coerceError(err);
    this.logger.error({ err: cause, stage: e.stage, outcome: e.outcome, documentId: e.documentId, messageId: e.messageId }, "audit write failed");
    return new TransientError("audit_write_failed", `could not store the ${e.stage}/${e.outcome} audit record: ${cause.message}`, {
      cause,
      ...(e.documentId !== undefined && { documentId: e.documentId }),
      ...(e.messageId !== undefined && { messageId: e.messageId }),
    });
  }
}

/**
 * `INSERT INTO "AuditEvent" … SELECT … FROM <from>`: a record (`AuditWriter.row`) as a part of a
 * larger statement, written once per row of `from` (a CTE that decides whether it is written at
 * all; one row by default). `outcome` and `details` may be SQL that depends on the statement's
 * other parts.
 */
export function auditInsertSql(
  row: Prisma.AuditEventUncheckedCreateInput,
  opts: { from?: Prisma.Sql; outcome?: Prisma.Sql; details?: Prisma.Sql } = {},
): Prisma.Sql {
  const details = opts.details ?? Prisma.sql`${row.details === undefined ? null : JSON.stringify(row.details)}::jsonb`;
  return Prisma.sql`
    INSERT INTO "AuditEvent" ("batchId", "documentId", "pageNumber", "stage", "outcome", "workerId", "attempt",
                              "durationMs", "errorCode", "errorMessage", "messageId", "details", "createdAt")
    SELECT ${row.batchId ?? null}::uuid, ${row.documentId ?? null}::uuid, ${row.pageNumber ?? null}::int, ${row.stage},
           ${opts.outcome ?? Prisma.sql`${row.outcome}::"AuditOutcome"`}, ${row.workerId}, ${row.attempt ?? 1}::int, ${row.durationMs ?? null}::int,
           ${row.errorCode ?? null}, ${row.errorMessage ?? null}, ${row.messageId ?? null}, ${details}, ${NOW}
    FROM ${opts.from ?? Prisma.sql`(SELECT 1) AS one`}`;
}
