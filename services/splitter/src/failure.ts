import type { PrismaClient } from "@docpipe/db";
import type { AuditWriter, HandlerContext, PermanentError, PoisonInfo, Stage } from "@docpipe/queue";
import { failureReason } from "./errors.js";

/**
 * The worker's `onDeadLetter` for one stage: the message is about to move to its DLQ.
 *
 * A permanent failure (not a PDF, encrypted, corrupt, too many pages, source gone) ends the
 * document as failed with a reason a person can act on. A message that merely ran out of
 * retries (`retries_exhausted`) does not: the failsafe drains the DLQ and may still finish
 * the document, so only the dead-lettering is recorded.
 */
export async function recordDeadLetter(
  deps: { prisma: PrismaClient; audit: AuditWriter },
  stage: Stage,
  msg: { batchId: string; documentId: string },
  error: PermanentError,
  ctx: HandlerContext,
  details?: object,
): Promise<void> {
  const reason = failureReason(error);
  if (error.code !== "retries_exhausted") {
    // Never overwrite a terminal state: a late duplicate must not undo a finished document.
    await deps.prisma.document.updateMany({
      where: { id: msg.documentId, state: { notIn: ["done", "failed"] } },
      data: { state: "failed", failureCode: error.code, failureReason: reason, completedAt: new Date() },
    });
  }
  await deps.audit.record({
    stage,
    outcome: "dead_lettered",
    batchId: msg.batchId,
    documentId: msg.documentId,
    attempt: ctx.attempt,
    messageId: ctx.messageId,
    errorCode: error.code,
    errorMessage: reason,
    ...(details ? { details } : {}),
  });
}

/**
 * The worker's `onPoison`: a body that is not JSON or not this queue's schema. Its ids are
 * read back when the JSON has them, so the record lands on the document's trail; the body
 * itself is never stored.
 */
export async function recordPoison(audit: AuditWriter, stage: Stage, info: PoisonInfo): Promise<void> {
  const ids = idsOf(info.body);
  await audit.record({
    stage,
    outcome: "dead_lettered",
    ...ids,
    attempt: info.attempt,
    messageId: info.messageId,
    errorCode: info.error instanceof Error && "code" in info.error ? String(info.error.code) : "invalid_message",
    errorMessage: info.error.message,
    details: { bytes: Buffer.byteLength(info.body) },
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function idsOf(body: string): { batchId?: string; documentId?: string } {
  try {
    const v = JSON.parse(body) as Record<string, unknown> | null;
    if (typeof v !== "object" || v === null) return {};
    return {
      ...(typeof v.batchId === "string" && UUID.test(v.batchId) && { batchId: v.batchId }),
      ...(typeof v.documentId === "string" && UUID.test(v.documentId) && { documentId: v.documentId }),
    };
  } catch {
    return {};
  }
}
