import type { Prisma, PrismaClient } from "@docpipe/db";
import type { Stage } from "./contracts.js";
import { coerceError, TransientError } from "./errors.js";
import { silentLogger, type Logger } from "./logger.js";

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

function isForeignKeyViolation(e: unknown): boolean {
  return typeof e === "object" && e !== null && "code" in e && (e as { code?: unknown }).code === "P2003";
}

/**
 * Writes one AuditEvent row per stage attempt. `record` resolves once the row is stored, so a
 * worker that awaits it before acknowledging a message never loses an audit record; `flush`
 * waits for records started without being awaited.
 */
export class AuditWriter {
  private readonly prisma: PrismaClient;
  private readonly workerId: string;
  private readonly logger: Logger;
  private readonly pending = new Set<Promise<void>>();

  constructor(opts: AuditWriterOptions) {
    this.prisma = opts.prisma;
    this.workerId = opts.workerId;
    this.logger = (opts.logger ?? silentLogger()).child({ component: "audit" });
  }

  /** Stores one record. Throws {@link TransientError} `audit_write_failed` when the database does not take it. */
  record(e: AuditRecord): Promise<void> {
    const p = this.write(e).finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
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
