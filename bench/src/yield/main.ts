// Yield on real-world PDFs: docpipe against `mutool draw` and `pdftoppm` on the same folder.
//   pnpm bench:yield [folder]        # default: the real-world corpus (pnpm --filter @docpipe/bench yield:gather)
// Prints documents finished and pages drawn per engine and for the union of the two references,
// then every document docpipe fails that another engine draws, with docpipe's reason. On the
// corpus the references come from its committed oracle; on another folder they run here.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { table } from "../common.ts";
import { CORPUS_FILES, ORACLE_PATH, readOracle, type OracleEntry } from "./corpus.ts";
import { ORACLE_DPI, pdfsIn, referenceRun } from "./oracle.ts";

const run = promisify(execFile);
const REPO = new URL("../../../", import.meta.url).pathname;

interface DocpipeDoc {
  sourcePath: string;
  state: string;
  pageCount: number | null;
  pngCount: number;
  degradedCount?: number;
  failureCode: string | null;
  failureReason: string | null;
}

// pnpm runs the script in bench/: a folder given on the command line is relative to where pnpm was run.
const folder = resolve(process.env.INIT_CWD ?? process.cwd(), process.argv[2] ?? CORPUS_FILES);
const files = await pdfsIn(folder);
if (files.length === 0) throw new Error(`no PDFs under ${folder} (the corpus: pnpm --filter @docpipe/bench yield:gather)`);
const scratch = await mkdtemp(join(tmpdir(), "docpipe-yield-"));
const load = () => loadavg().map((l) => l.toFixed(1)).join(" ");
console.log(`${files.length} PDFs under ${folder}; ${ORACLE_DPI} dpi; load average ${load()}`);

try {
  let references: Record<string, OracleEntry>;
  if (folder === resolve(CORPUS_FILES)) {
    references = (await readOracle()).files;
    console.log(`mutool and pdftoppm: from ${relative(REPO, ORACLE_PATH)}`);
  } else {
    references = await referenceRun(folder, files, { scratch });
  }

  const reportPath = join(scratch, "report.json");
  const started = performance.now();
  await run(
    "pnpm",
    ["docpipe", "run", folder, "--report-json", reportPath, "--dpi", String(ORACLE_DPI), "--stack", "bench-yield"],
    { cwd: REPO, maxBuffer: 256 << 20 },
  ).catch((e: { code?: number; stderr?: string }) => {
    // Exit 3 only says some documents failed; anything else is a crash.
    if (e.code !== 3) throw new Error(`docpipe run crashed (exit ${e.code}): ${e.stderr?.slice(-2000)}`);
  });
  const seconds = (performance.now() - started) / 1000;
  const report = JSON.parse(await readFile(reportPath, "utf8")) as { perDocument?: DocpipeDoc[] };
  const docpipe = new Map((report.perDocument ?? []).map((d) => [relative(folder, d.sourcePath), d]));

  const totals = { docpipe: { docs: 0, pages: 0, degraded: 0 }, mutool: { docs: 0, pages: 0 }, pdftoppm: { docs: 0, pages: 0 }, union: { docs: 0, pages: 0 } };
  const lost: string[][] = [];
  let notTerminal = 0;
  for (const file of files) {
    const d = docpipe.get(file);
    const ref = references[file];
    if (!d || (d.state !== "done" && d.state !== "failed")) notTerminal++;
    if (d?.state === "done") totals.docpipe.docs++;
    totals.docpipe.pages += d?.pngCount ?? 0;
    totals.docpipe.degraded += d?.degradedCount ?? 0;
    if (!ref) continue;
    // A reference finishes a document when it exits cleanly having drawn every page it counts.
    const finished = (t: "mutool" | "pdftoppm") => ref[t].exit === 0 && ref[t].drawn.length > 0 && ref[t].drawn.length === ref[t].pages;
    const drawn = new Set([...ref.mutool.drawn, ...ref.pdftoppm.drawn]);
    for (const t of ["mutool", "pdftoppm"] as const) {
      if (finished(t)) totals[t].docs++;
      totals[t].pages += ref[t].drawn.length;
    }
    if (finished("mutool") || finished("pdftoppm")) totals.union.docs++;
    totals.union.pages += drawn.size;
    if (drawn.size > (d?.pngCount ?? 0)) {
      lost.push([file, d?.state ?? "missing", `${d?.pngCount ?? 0}/${drawn.size}`, d?.failureCode ?? "", (d?.failureReason ?? "").slice(0, 100)]);
    }
  }
  console.log(`\ndocpipe run: ${seconds.toFixed(0)} s; documents not terminal: ${notTerminal}; load average ${load()}\n`);
  table([
    ["engine", "documents finished", "pages drawn", "pages degraded"],
    ["docpipe", totals.docpipe.docs, totals.docpipe.pages, totals.docpipe.degraded],
    ["mutool draw", totals.mutool.docs, totals.mutool.pages, ""],
    ["pdftoppm", totals.pdftoppm.docs, totals.pdftoppm.pages, ""],
    ["mutool ∪ pdftoppm", totals.union.docs, totals.union.pages, ""],
  ]);
  console.log(`\nDocuments where another engine draws more pages than docpipe (${lost.length}):`);
  if (lost.length > 0) table([["document", "docpipe state", "PNGs / union", "code", "reason"], ...lost]);
  if (notTerminal > 0) process.exitCode = 1;
} finally {
  await rm(scratch, { recursive: true, force: true });
}
