/** Why a PDF could not be handled. */
export type PdfErrorCode =
  | "not_pdf"
  | "encrypted"
  | "corrupt"
  | "corrupt_page"
  | "too_many_pages"
  | "page_too_large"
  | "file_too_large"
  | "timeout"
  | "worker_crashed";

// Retrying cannot help these: the bytes themselves are the problem.
const PERMANENT: ReadonlySet<PdfErrorCode> = new Set([
  "not_pdf",
  "encrypted",
  "corrupt",
  "corrupt_page",
  "too_many_pages",
  "page_too_large",
  "file_too_large",
]);

/**
 * A failure to inspect, split or render a PDF. `permanent` tells a caller whether a retry can
 * succeed: a timed-out page or a crashed render worker may render on another attempt (the
 * caller's attempt limit bounds that), a non-PDF never will.
 */
export class PdfError extends Error {
  override readonly name = "PdfError";
  readonly code: PdfErrorCode;
  readonly permanent: boolean;
  readonly path: string | undefined;

  constructor(code: PdfErrorCode, message: string, opts?: { cause?: unknown; path?: string }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.permanent = PERMANENT.has(code);
    this.path = opts?.path;
  }
}

export function isPdfErrorCode(value: unknown): value is PdfErrorCode {
  return (
    typeof value === "string" &&
    (PERMANENT.has(value as PdfErrorCode) || value === "timeout" || value === "worker_crashed")
  );
}

/**
 * A WebAssembly.RuntimeError: mupdf aborted (or trapped) and its instance cannot be used again.
 * Checked by name because the TypeScript libs this repo uses do not declare WebAssembly.
 */
export function isWasmAbort(e: unknown): boolean {
  return e instanceof Error && e.constructor.name === "RuntimeError";
}
