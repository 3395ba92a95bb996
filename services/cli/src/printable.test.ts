import { describe, expect, it } from "vitest";
import type { BatchReport, BatchStatus } from "./api.js";
import { progressLines } from "./progress.js";
import { printable, printableJson, printableLines } from "./printable.js";
import { formatReport } from "./report-table.js";
import { formatTable } from "./table.js";

/** Anything a terminal acts on: C0/C1 controls (ESC, CSI), DEL, separators and bidirectional controls. */
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const ACTED_ON = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const hostile = "scans \u001b[2J\u001b]0;pwned\u0007 \u009b31m \u202egnp.exe\nline two\tx\ud800";

const report = (over: Partial<BatchReport> = {}): BatchReport => ({
  batchId: "6f1c1a52-3f0e-4a8e-9a43-0b7b1d1f2c3a",
  label: hostile,
  state: "completed",
  documents: { total: 1, done: 0, failed: 1, inProgress: 0, skippedNonPdf: 0, skippedDuplicates: 0 },
  pages: { total: 1, rendered: 0, withResults: 0, failed: 1, degraded: 0 },
  failures: [{ code: `corrupt${hostile}`, reason: `page 1: ${hostile}`, documents: 1 }],
  degraded: [],
  features: [{ feature: hostile, pages: 1, documentsWith: 1, documentsWithout: 0 }],
  stages: [{ stage: hostile, attempts: 1, failures: 1, p50Ms: 1, p90Ms: 1, p99Ms: 1 }],
  throughput: { elapsedSeconds: 1, pagesPerMinute: 0, documentsPerMinute: 60 },
  stalled: { since: "2026-11-30T00:00:00.000Z", stage: hostile, documents: 1, lastStage: null },
  ...over,
});

describe("the CLI escapes what came from a user or a file", () => {
  it("writes control, separator and bidirectional characters as escapes, and nothing else differently", () => {
    expect(printable("\u001b[2J")).toBe("\\x1b[2J");
    expect(printable("a\u202eb\u009bc\u007f\n")).toBe("a\\u202eb\\x9bc\\x7f\\n");
    expect(printable("\ud800 and 𝕏 é ✓")).toBe("\\ud800 and 𝕏 é ✓");
    expect(printableLines("one \u001b\ntwo")).toBe("one \\x1b\ntwo");
    const json = printableJson({ label: hostile });
    expect(json).not.toMatch(ACTED_ON);
    expect(JSON.parse(json)).toEqual({ label: hostile }); // the same data
  });

  it("docpipe report: the label, failure reasons, features, stages and the stall are printed escaped", () => {
    const text = formatReport(report());
    expect(text).not.toMatch(ACTED_ON);
    expect(text).toContain("(scans \\x1b[2J\\x1b]0;pwned\\x07 \\x9b31m \\u202egnp.exe\\nline two\\tx\\ud800)");
    expect(text).toContain("page 1: scans \\x1b[2J");
  });

  it("progress lines and every table cell", () => {
    const status = { batchId: "b", label: hostile, state: "processing", documentCount: 1, skippedCount: 0, documents: {}, stalled: { since: hostile, stage: hostile } };
    for (const line of progressLines(status as unknown as BatchStatus)) expect(line).not.toMatch(ACTED_ON);
    expect(formatTable(["name", "owner"], [[hostile, hostile]])).not.toMatch(ACTED_ON);
  });
});
