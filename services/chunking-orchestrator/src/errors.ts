import { PdfError } from "@docpipe/pdf";
import { PermanentError, TransientError, coerceError } from "@docpipe/queue";

/** Reasons a person can act on, by failure code; the detail of the error follows them. */
const reasons: Record<string, string> = {
  source_missing: "The source object no longer exists in S3",
  page_count_mismatch: "The file does not hold the pages its message names",
  not_pdf: "The file is not a PDF (it does not start with %PDF-)",
  encrypted: "The PDF is encrypted; supply a copy without a password",
  corrupt: "The PDF is damaged beyond repair (or has no pages) and cannot be split",
  file_too_large: "The PDF is 2 GiB or larger, more than the PDF engine (mupdf WASM) can address",
  too_many_pages: "The PDF has more pages than the configured MAX_PAGES",
  document_missing: "The document row does not exist; the message does not belong to a known batch",
};

export function failureReason(error: PermanentError): string {
  const known = reasons[error.code];
  return known ? `${known} (${error.message})` : error.message;
}

/** Normalises anything a stage throws into the permanent/transient split the worker acts on. */
export function toStageError(e: unknown): PermanentError | TransientError {
  // One code for a vanished source, whether HeadObject or GetObject noticed.
  if (e instanceof PermanentError && e.code === "s3_not_found") {
    return new PermanentError("source_missing", e.message, { cause: e });
  }
  if (e instanceof PermanentError || e instanceof TransientError) return e;
  if (e instanceof PdfError) {
    return e.permanent
      ? new PermanentError(e.code, e.message, { cause: e })
      : new TransientError(e.code, e.message, { cause: e });
  }
  const err = coerceError(e);
  return new TransientError("unexpected", err.message, { cause: err });
}
