/** A small client for the ingestion API, used by every CLI command; its types are the API's contract. */
import type {
  BatchAccepted,
  BatchReplayed,
  BatchReport,
  BatchStatus,
  CreateBatchRequest,
  DocumentReport,
  ErrorResponse,
  RetryFailedResponse,
} from "@docpipe/api-contract";

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey?: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers: {
        ...(body !== undefined && { "content-type": "application/json" }),
        ...(this.apiKey && { "x-api-key": this.apiKey }),
        ...headers,
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const json: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const err = (json as Partial<ErrorResponse> | undefined)?.error;
      throw new ApiError(res.status, err?.code ?? "http_error", err?.message ?? `${method} ${path}: HTTP ${res.status}`, err?.details);
    }
    return json as T;
  }

  /** With `idempotencyKey`, a retry of the same submission answers the batch the first one created. */
  submit(body: CreateBatchRequest, opts: { idempotencyKey?: string } = {}): Promise<BatchAccepted | BatchReplayed> {
    return this.call("POST", "/batches", body, opts.idempotencyKey ? { "idempotency-key": opts.idempotencyKey } : {});
  }

  status(batchId: string): Promise<BatchStatus> {
    return this.call("GET", `/batches/${encodeURIComponent(batchId)}`);
  }

  retryFailed(batchId: string): Promise<RetryFailedResponse> {
    return this.call("POST", `/batches/${encodeURIComponent(batchId)}/retry-failed`);
  }

  /**
   * The batch's report; with `documents`, one page of its per-document list (the first, or the
   * one `cursor` leads to). {@link reportWithDocuments} follows the cursor to the end.
   */
  report(batchId: string, documents: boolean | { cursor: string } = false): Promise<BatchReport> {
    const query = new URLSearchParams({ documents: String(documents !== false) });
    if (typeof documents === "object") query.set("cursor", documents.cursor);
    return this.call("GET", `/batches/${encodeURIComponent(batchId)}/report?${query}`);
  }
}

/**
 * A batch's report with every document: the first answer, then its per-document cursor
 * followed to the end (the API answers at most 1,000 documents at a time). What `run
 * --report-json` writes, and any command that writes a whole report should call.
 */
export async function reportWithDocuments(api: ApiClient, batchId: string): Promise<BatchReport & { perDocument: DocumentReport[] }> {
  const report = await api.report(batchId, true);
  const perDocument = [...(report.perDocument ?? [])];
  for (let cursor = report.perDocumentNextCursor; cursor; ) {
    const next = await api.report(batchId, { cursor });
    perDocument.push(...(next.perDocument ?? []));
    cursor = next.perDocumentNextCursor;
  }
  return { ...report, perDocument, perDocumentNextCursor: null };
}

export type { BatchReport, BatchStatus, RetryFailedResponse } from "@docpipe/api-contract";
