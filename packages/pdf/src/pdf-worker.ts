// Entry point of a PdfPool worker thread: loads mupdf once, then renders, inspects and splits one task at a time.
import { statSync } from "node:fs";
import { workerData } from "node:worker_threads";
import * as mupdf from "mupdf";
import { isWasmAbort, PdfError } from "./errors.js";
import { errorText, inspectPdf, mupdfFailedOpens, openPdf, setMupdfLog, type InspectOptions, type PdfInfo, type PdfSource } from "./open.js";
import { pdfiumHeapBytes } from "./pdfium.js";
import { renderPage, renderPageWith, type RenderOptions, type RenderResult } from "./render.js";
import { openSplitSource, type SplitSource } from "./split.js";
import { serveTasks, type Handled } from "./worker-pool.js";

export type PdfTask =
  /** A path, or the file's bytes (moved here from the caller's thread, not copied). */
  | { op: "render"; source: PdfSource; pageIndex: number; opts: RenderOptions }
  | { op: "inspect"; path: string; opts: InspectOptions }
  /** Opens path to be split and keeps it open for the split-piece tasks of the same session. */
  | { op: "split-open"; path: string; maxPages: number | undefined }
  /** Pages first..last of the document open for splitting, as a new PDF's bytes (moved back, not copied). */
  | { op: "split-piece"; path: string; first: number; last: number }
  | { op: "split-close"; path: string };

export type PdfTaskResult = RenderResult | PdfInfo | { total: number } | Uint8Array | null;

export interface PdfWorkerData {
  /** Exit after a task when the engines' WASM heaps together have grown past this many bytes. */
  recycleAboveBytes: number;
}

const { recycleAboveBytes } = workerData as PdfWorkerData;

// Rendering several pages of one file in a row should not reopen it each time; the identity
// check notices a file replaced at the same path (a reused temp name).
let cached: { key: string; path: string; doc: mupdf.PDFDocument } | undefined;

function documentFor(path: string): mupdf.PDFDocument {
  const st = statSync(path);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  if (cached && cached.path === path && cached.key === key) return cached.doc;
  forgetCached();
  const doc = openPdf(path);
  cached = { key, path, doc };
  return doc;
}

function forgetCached(): void {
  cached?.doc.destroy();
  cached = undefined;
}

// The document being split by the session that holds this worker.
let splitting: SplitSource | undefined;

async function closeSplit(): Promise<void> {
  const s = splitting;
  splitting = undefined;
  await s?.destroy();
}

/**
 * Bytes held by this thread's WASM heaps. A heap never shrinks: a page that needed 900 MB keeps
 * the worker at 900 MB until the worker goes, hence the recycling.
 */
function heapBytes(): number {
  const probe = new mupdf.Buffer();
  try {
    return probe.asUint8Array().buffer.byteLength + pdfiumHeapBytes();
  } finally {
    probe.destroy();
  }
}

// A few hundred failed opens corrupt mupdf.js's heap (see mupdfFailedOpens); a worker goes long before.
const FAILED_OPENS_BEFORE_RECYCLE = 32;

async function handle(task: PdfTask): Promise<Handled<PdfTaskResult>> {
  switch (task.op) {
    case "render":
      try {
        const { source } = task;
        // Bytes are a page that came in memory: opened for this task alone, nothing to cache.
        const r =
          typeof source === "string"
            ? await renderPageWith(() => documentFor(source), source, task.pageIndex, task.opts)
            : await renderPage(source, task.pageIndex, task.opts);
        return { value: r, transfer: [r.png.buffer as ArrayBuffer] };
      } catch (e) {
        // A document that failed once is not worth keeping open.
        forgetCached();
        throw e;
      }
    case "inspect":
      return { value: await inspectPdf(task.path, task.opts) };
    case "split-open":
      await closeSplit();
      splitting = await openSplitSource(task.path, task.maxPages);
      return { value: { total: splitting.total } };
    case "split-piece": {
      if (!splitting) throw new Error(`no document open to split (${task.path})`);
      const bytes = await splitting.piece(task.first, task.last);
      return { value: bytes, transfer: [bytes.buffer as ArrayBuffer] };
    }
    case "split-close":
      await closeSplit();
      return { value: null };
  }
}

serveTasks<PdfTask, PdfTaskResult>({
  handle,
  spent: () => heapBytes() > recycleAboveBytes || mupdfFailedOpens() >= FAILED_OPENS_BEFORE_RECYCLE,
  // mupdf aborted (e.g. out of WASM memory) and cannot be used again.
  fatal: (e) => (isWasmAbort(e) ? new PdfError("worker_crashed", `mupdf aborted: ${errorText(e)}`) : undefined),
  forwardLog: (forward) => setMupdfLog(forward ?? "silent"),
});
