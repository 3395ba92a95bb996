import type { BatchReport, RetryFailedResponse } from "./api.js";
import { formatTable as table } from "./table.js";
import { printable } from "./printable.js";

const ms = (v: number | null) => (v === null ? "-" : `${v} ms`);

/** The batch report as a person reads it on a terminal. */
export function formatReport(r: BatchReport): string {
  const out: string[] = [];
  out.push(`Batch ${printable(r.batchId)}${r.label ? ` (${printable(r.label)})` : ""}: ${printable(r.state)}`);
  if (r.stalled) {
    out.push(`STALLED since ${printable(r.stalled.since)}: ${r.stalled.documents} documents waiting at stage ${printable(r.stalled.stage)}`);
  }
  out.push(
    table(
      ["", "count"],
      [
        ["documents", r.documents.total],
        ["  done", r.documents.done],
        ["  failed", r.documents.failed],
        ["  in progress", r.documents.inProgress],
        ["  skipped, done in an earlier batch", r.documents.skippedDuplicates],
        ["non-PDF keys skipped", r.documents.skippedNonPdf],
        ["pages", r.pages.total],
        ["  rendered to PNG", r.pages.rendered],
        ["    degraded (drawn with damage)", r.pages.degraded],
        ["  with a model result", r.pages.withResults],
        ["  failed", r.pages.failed],
      ],
    ),
  );
  if (r.degraded.length) {
    out.push("", "Degraded pages by reason (kept: no engine drew them cleanly)");
    out.push(table(["reason", "pages", "documents"], r.degraded.map((d) => [d.reason, d.pages, d.documents])));
  }
  if (r.failures.length) {
    out.push("", "Failed documents by reason");
    out.push(table(["code", "documents", "reason"], r.failures.map((f) => [f.code, f.documents, f.reason])));
  }
  if (r.features.length) {
    out.push("", "Features found by the model");
    out.push(
      table(
        ["feature", "pages", "documents with", "documents without"],
        r.features.map((f) => [f.feature, f.pages, f.documentsWith, f.documentsWithout]),
      ),
    );
  }
  if (r.stages.length) {
    out.push("", "Stages (duration per attempt)");
    out.push(
      table(
        ["stage", "attempts", "failures", "p50", "p90", "p99"],
        r.stages.map((s) => [s.stage, s.attempts, s.failures, ms(s.p50Ms), ms(s.p90Ms), ms(s.p99Ms)]),
      ),
    );
  }
  const t = r.throughput;
  out.push(
    "",
    `Throughput: ${t.pagesPerMinute.toFixed(1)} pages/min, ${t.documentsPerMinute.toFixed(1)} documents/min over ${t.elapsedSeconds.toFixed(1)} s`,
  );
  return out.join("\n");
}

/** What `docpipe retry-failed` re-sent, as a person reads it. */
export function formatRetry(r: RetryFailedResponse): string {
  const out = [
    `Batch ${printable(r.batchId)}: ${r.retried.documents} failed documents retried (${r.retried.pages} pages alone), batch now ${printable(r.state)}`,
    `  re-sent: ${r.resent.ingest} documents from the start, ${r.resent.singlePage} pages to render, ${r.resent.convertedImage} pages to score`,
  ];
  const codes = Object.entries(r.byFailureCode).sort((a, b) => b[1] - a[1]);
  if (codes.length) out.push("", table(["failure code", "documents"], codes));
  if (r.note) out.push("", printable(r.note));
  return out.join("\n");
}
