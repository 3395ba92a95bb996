/** A small client for the ingestion API, used by every CLI command. */

export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown };
}

import type { BatchReport, RetryResult } from "@docpipe/ingestion";

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

export interface BatchStatus {
  batchId: string;
  label: string | null;
  state: "listing" | "processing" | "completed" | "failed";
  documentCount: number;
  skippedCount: number;
  documents: Record<string, number>;
  pages?: { expected: number; split: number; rendered: number; done: number; failed: number };
  stalled?: { since: string; stage: string; documents?: number; lastStage?: string | null } | null;
}

/** The answer of `POST /batches/:id/retry-failed`: the retry's counts, with a note when some will fail again. */
export type RetryFailedResult = RetryResult & { note?: string };

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey?: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers: {
        ...(body !== undefined && { "content-type": "application/json" }),
        ...(this.apiKey && { "x-api-key": this.apiKey }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const json: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const err = (json as Partial<ApiErrorBody> | undefined)?.error;
      throw new ApiError(res.status, err?.code ?? "http_error", err?.message ?? `${method} ${path}: HTTP ${res.status}`, err?.details);
    }
    return json as T;
  }

  submit(body: { bucket: string; prefixes: string[]; label?: string; skipAlreadyProcessed?: boolean }): Promise<{ batchId: string; state: string }> {
    return this.call("POST", "/batches", body);
  }

  status(batchId: string): Promise<BatchStatus> {
    return this.call("GET", `/batches/${encodeURIComponent(batchId)}`);
  }

  retryFailed(batchId: string): Promise<RetryFailedResult> {
    return this.call("POST", `/batches/${encodeURIComponent(batchId)}/retry-failed`);
  }

  report(batchId: string, perDocument = false): Promise<BatchReport> {
    return this.call("GET", `/batches/${encodeURIComponent(batchId)}/report?documents=${perDocument}`);
  }
}

export type { BatchReport } from "@docpipe/ingestion";
