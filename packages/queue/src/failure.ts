import type { PageState, PrismaClient } from "@docpipe/db";
import type { AuditWriter } from "./audit.js";
import type { Stage } from "./contracts.js";
import { failDocument, failPage } from "./documents.js";
import { coerceError, errorCode, PermanentError, TransientError } from "./errors.js";
import type { HandlerContext, PoisonInfo } from "./worker/types.js";

/**
 * Reasons a person can act on, by failure code, for every stage; the error's own message
 * follows them as the detail. A code missing here shows its message alone.
 */
const reasons: Readonly<Record<string, string>> = {
  source_missing: "The source object no longer exists in S3",
  document_missing: "The document row does not exist; the message does not belong to a known batch",
  unknown_document: "The document row does not exist; the page does not belong to a known batch",
  page_count_mismatch: "The file does not hold the pages its message names",
  not_pdf: "The file is not a PDF (it does not start with %PDF-)",
  encrypted: "The PDF is encrypted; supply a copy without a password",
  corrupt: "The PDF is damaged beyond repair (or has no pages) and cannot be split or rendered",
  corrupt_page: "The page is damaged and cannot be rendered",
  file_too_large: "The PDF is 2 GiB or larger, more than the PDF engine (mupdf WASM) can address",
  too_many_pages: "The PDF has more pages than the configured MAX_PAGES",
  page_too_large: "The page is too large to render, even scaled down to MAX_PIXELS",
  render_timeout: "Rendering the page overran RENDER_TIMEOUT_MS on every attempt",
};

/** The reason recorded on a failed document or page: what is wrong in words, then the detail. */
export function failureReason(error: { code: string; message: string }): string {
  const known = reasons[error.code];
  return known ? `${known} (${error.message})` : error.message;
}

/**
 * Normalises anything a stage throws into the permanent/transient split the worker acts on.
 * A library error that says whether a retry can help (`permanent`, as `PdfError` does) keeps
 * its code and that answer; anything unrecognised is retried.
 */
export function toStageError(e: unknown): PermanentError | TransientError {
  // One code for a vanished source, whether HeadObject or GetObject noticed.
  if (e instanceof PermanentError && e.code === "s3_not_found") {
    return new PermanentError("source_missing", e.message, { cause: e });
  }
  if (e instanceof PermanentError || e instanceof TransientError) return e;
  if (isClassifiedError(e)) {
    return e.permanent
      ? new PermanentError(e.code, e.message, { cause: e })
      : new TransientError(e.code, e.message, { cause: e });
  }
  const err = coerceError(e);
  return new TransientError("unexpected", err.message, { cause: err });
}

function isClassifiedError(e: unknown): e is Error & { code: string; permanent: boolean } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === "string" && typeof (e as { permanent?: unknown }).permanent === "boolean";
}

export interface FailureDeps {
  prisma: PrismaClient;
  audit: AuditWriter;
}

/**
 * The worker's `onDeadLetter` for a stage that works on whole documents (classify, split):
 * the message is about to move to its DLQ.
 *
 * A permanent failure (not a PDF, encrypted, corrupt, too many pages, source gone) ends the
 * document as failed with a reason a person can act on, and completes its batch when it was
 * the last open document. A message that merely ran out of retries (`retries_exhausted`)
 * does not: the failsafe drains the DLQ and may still finish the document, so only the
 * dead-lettering is recorded.
 */
export async function recordDeadLetter(
  deps: FailureDeps,
  stage: Stage,
  msg: { batchId: string; documentId: string },
  error: PermanentError,
  ctx: HandlerContext,
  details?: object,
): Promise<void> {
  const reason = failureReason(error);
  if (error.code !== "retries_exhausted") {
    await failDocument(deps.prisma, msg, { code: error.code, reason });
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
 * The worker's `onDeadLetter` for a stage that works on one page (convert, inference). On a
 * permanent failure the page fails with the reason, unless it has already moved past
 * `failFrom`; its document can then never be done, so once its other pages have finished it
 * fails as `${stage}_${code}` with `page N: reason` (see failPage).
 */
export async function recordPageDeadLetter(
  deps: FailureDeps,
  stage: Stage,
  page: { batchId: string; documentId: string; pageNumber: number },
  error: PermanentError,
  ctx: HandlerContext,
  opts: { failFrom: readonly PageState[] },
): Promise<void> {
  const reason = failureReason(error);
  await deps.audit.record({
    stage,
    outcome: "dead_lettered",
    batchId: page.batchId,
    documentId: page.documentId,
    pageNumber: page.pageNumber,
    attempt: ctx.attempt,
    messageId: ctx.messageId,
    errorCode: error.code,
    errorMessage: reason,
  });
  // No document: nothing to fail, and the audit record above is all there is to say.
  if (error.code === "unknown_document") return;
  // Out of retries is not a verdict on the page: the failsafe drains the DLQ and may still
  // finish it, as it does for whole documents (see recordDeadLetter).
  if (error.code === "retries_exhausted") return;
  await failPage(deps.prisma, page, {
    pageCode: error.code,
    pageReason: reason,
    documentCode: `${stage}_${error.code}`,
    documentReason: `page ${page.pageNumber}: ${reason}`,
    failFrom: opts.failFrom,
  });
}

/**
 * The worker's `onPoison`: a body that is not JSON or not this queue's schema. Its ids are
 * read back when the JSON has them, so the record lands on the document's trail; the body
 * itself is never stored.
 */
export async function recordPoison(audit: AuditWriter, stage: Stage, info: PoisonInfo): Promise<void> {
  await audit.record({
    stage,
    outcome: "dead_lettered",
    ...idsOf(info.body),
    attempt: info.attempt,
    messageId: info.messageId,
    errorCode: errorCode(info.error),
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
