// `docpipe run <folder>`: a person's folder of files, through runFolder and through the real
// command line, checked against what was written into the folder.
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, sep } from "node:path";
import { promisify } from "node:util";
import { findRunningStack, LOCAL_DIR, REPO_ROOT } from "@docpipe/local-stack";
import { generatePdf, openPdf, PAGE_SIZES, type CorpusPageSpec } from "@docpipe/pdf";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { BatchReport } from "@docpipe/cli";
import { runFolder } from "@docpipe/cli";
import { captureOut, testLogger } from "./support.js";
import { docpipeNodeArgs } from "../fixtures/docpipe-command.js";

const DPI = 60;

/** The JSON `docpipe run --report-json` writes: the report, each document with the file it came from. */
type RunReportJson = Omit<BatchReport, "perDocument"> & {
  perDocument?: (NonNullable<BatchReport["perDocument"]>[number] & { sourcePath?: string })[];
};
/**
 * Stacks of their own, never "docpipe" (a person's `pnpm start`), and per process, so two test
 * runs in one checkout cannot delete each other's: runFolder keeps a named stack's data under
 * .local/<name>, so each is removed before and after.
 */
const STACKS = { inProcess: `e2e-cli-run-${process.pid}`, child: `e2e-cli-main-${process.pid}` };

interface ExpectedDocument {
  state: "done" | "failed";
  pageCount: number | null;
  pngCount: number;
  resultCount: number;
  failureCode: string | null;
  failureReason: string | null | ReturnType<typeof expect.stringContaining>;
}

const letter = (rotate: 0 | 90 | 180 | 270, content: CorpusPageSpec["content"]): CorpusPageSpec => ({
  widthPt: PAGE_SIZES.letter[0],
  heightPt: PAGE_SIZES.letter[1],
  rotate,
  content,
});

let dir: string;
/** Per path relative to the folder, what the report must say about it. */
const truth: Record<string, ExpectedDocument> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-e2e-cli-"));
  const pdf = async (rel: string, pages: CorpusPageSpec[]) => {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    const f = await generatePdf(join(dir, rel), pages);
    const n = f.pageCount;
    truth[rel] = { state: "done", pageCount: n, pngCount: n, resultCount: n, failureCode: null, failureReason: null };
  };
  await pdf("three.pdf", [letter(0, "text"), letter(90, "blank"), letter(180, "image")]);
  await pdf("twelve.pdf", Array.from({ length: 12 }, (_, i) => letter(i % 2 ? 0 : 270, i % 3 ? "mixed" : "text")));
  await pdf("scans/März 2024/one page (copy) #2+ü.pdf", [{ widthPt: PAGE_SIZES.a4[0], heightPt: PAGE_SIZES.a4[1], rotate: 90, content: "mixed" }]);
  // Named like a PDF, is not one: a failed document with a reason, not a crash or a hang.
  await writeFile(join(dir, "scans/fake.pdf"), "Dear customer, please find attached...\n");
  truth["scans/fake.pdf"] = {
    state: "failed",
    pageCount: null,
    pngCount: 0,
    resultCount: 0,
    failureCode: "not_pdf",
    failureReason: expect.stringContaining("not a PDF"),
  };
  // Not a PDF by name: skipped and counted, never a document.
  await writeFile(join(dir, "notes.txt"), "shopping list\n");
  await Promise.all(Object.values(STACKS).map(removeStack));
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(STACKS).map(removeStack));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function removeStack(name: string): Promise<void> {
  return rm(join(LOCAL_DIR, name), { recursive: true, force: true });
}

/** The report JSON's per-document entries, keyed by path relative to `folder`, checked to carry the file's path there. */
function byRelativePath(folder: string, report: RunReportJson): Record<string, unknown> {
  const docs = report.perDocument ?? [];
  const prefix = /^runs\/[^/]+\//.exec(docs[0]?.key ?? "")?.[0];
  expect(prefix, "keys are under runs/<run>/").toBeDefined();
  return Object.fromEntries(
    docs.map((d) => {
      expect(d.key.startsWith(prefix!)).toBe(true);
      const rel = d.key.slice(prefix!.length);
      expect(d.sourcePath).toBe(join(folder, rel));
      const { state, pageCount, pngCount, resultCount, failureCode, failureReason } = d;
      return [rel, { state, pageCount, pngCount, resultCount, failureCode, failureReason }];
    }),
  );
}

/** The report's counts against the truth: every page of every PDF scored, one non-PDF skipped. */
function expectTotals(report: Omit<BatchReport, "perDocument">, docs: Record<string, ExpectedDocument>, blankPages: number): void {
  const all = Object.values(docs);
  const failed = all.filter((d) => d.state === "failed");
  const totalPages = all.reduce((s, d) => s + (d.pageCount ?? 0), 0);
  expect(report).toMatchObject({
    state: "completed",
    documents: { total: all.length, done: all.length - failed.length, failed: failed.length, inProgress: 0, skippedNonPdf: 1, skippedDuplicates: 0 },
    pages: { total: totalPages, rendered: totalPages, withResults: totalPages, failed: 0 },
    failures: failed.map((d) => ({ code: d.failureCode, documents: 1, reason: d.failureReason })),
  });
  expect(report.features.find((f) => f.feature === "blank")?.pages ?? 0).toBe(blankPages);
  expect(report.features.find((f) => f.feature === "ink")?.pages ?? 0).toBe(totalPages - blankPages);
}

/**
 * What the bundled samples hold, read with mupdf rather than taken from the pipeline: pages per
 * PDF, and pages with no text at all (every generated page but a blank one carries a label).
 */
function samplesTruth(folder: string): { docs: Record<string, ExpectedDocument>; blankPages: number } {
  const docs: Record<string, ExpectedDocument> = {};
  let blankPages = 0;
  const files = readdirSync(folder, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".pdf")).sort();
  for (const rel of files) {
    const doc = openPdf(join(folder, rel));
    try {
      const n = doc.countPages();
      for (let i = 0; i < n; i++) {
        const page = doc.loadPage(i);
        try {
          const text = page.toStructuredText("");
          try {
            if (text.asText().trim() === "") blankPages++;
          } finally {
            text.destroy();
          }
        } finally {
          page.destroy();
        }
      }
      docs[rel.split(sep).join("/")] = { state: "done", pageCount: n, pngCount: n, resultCount: n, failureCode: null, failureReason: null };
    } finally {
      doc.destroy();
    }
  }
  return { docs, blankPages };
}

describe("docpipe run", () => {
  test("runFolder processes the folder, reports every document and writes the JSON", { timeout: 150_000 }, async () => {
    const reportJson = `${dir}-report.json`;
    const { out, text } = captureOut();
    try {
      const result = await runFolder({
        folder: dir,
        logger: testLogger(),
        stackName: STACKS.inProcess,
        reportJson,
        dpi: DPI,
        timeoutMs: 120_000,
        pollMs: 250,
        out,
      });
      // Completed even though one document failed: the failure is reported, not an abort.
      expect(result.completed).toBe(true);
      expectTotals(result.report, truth, 1);
      const json = JSON.parse(await readFile(reportJson, "utf8")) as RunReportJson;
      expect(json.batchId).toBe(result.batchId);
      expectTotals(json, truth, 1);
      expect(byRelativePath(dir, json)).toEqual(truth);
      expect(text()).toContain(`Batch ${result.batchId}`);
      expect(text()).toContain(`report written to ${reportJson}`);
    } finally {
      await rm(reportJson, { force: true });
    }
  });

  test("runFolder that gives up waiting says the batch did not complete, and still stops everything", { timeout: 60_000 }, async () => {
    const { out } = captureOut();
    const result = await runFolder({ folder: dir, logger: testLogger(), stackName: STACKS.inProcess, dpi: DPI, timeoutMs: 0, out });
    // The exit status of `docpipe run` is 1 for this: the batch is still in progress.
    expect(result.completed).toBe(false);
    expect(result.report.state).not.toBe("completed");
    // Stopped: nothing of the stack runs on, so its name is free again.
    await expect(findRunningStack(STACKS.inProcess)).resolves.toBeUndefined();
  });

  test("the docpipe command on the bundled samples (pnpm start's batch) exits 0 with every page scored once", { timeout: 150_000 }, async () => {
    const samples = join(REPO_ROOT, "samples");
    const expected = samplesTruth(samples);
    expect(expected.blankPages).toBeGreaterThan(0);
    const reportJson = `${dir}-cli-report.json`;
    // Relative paths are resolved against INIT_CWD (where a person typed pnpm); these are absolute anyway.
    const { INIT_CWD: _, ...env } = process.env;
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [...docpipeNodeArgs(), "run", samples,
          "--report-json", reportJson, "--stack", STACKS.child, "--dpi", String(DPI)],
        { cwd: REPO_ROOT, timeout: 140_000, env: { ...env, LOG_LEVEL: "error" }, maxBuffer: 16 * 1024 * 1024 },
      );
      // execFile rejects on a non-zero exit status, so reaching here means exit code 0.
      const json = JSON.parse(await readFile(reportJson, "utf8")) as RunReportJson;
      expectTotals(json, expected.docs, expected.blankPages);
      expect(byRelativePath(samples, json)).toEqual(expected.docs);
      expect(stdout).toContain(`Batch ${json.batchId}`);
    } finally {
      await rm(reportJson, { force: true });
    }
  });
});
