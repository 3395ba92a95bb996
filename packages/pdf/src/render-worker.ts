// Entry point of a RenderPool worker thread: loads mupdf once, then renders one page per message.
import { statSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import * as mupdf from "mupdf";
import { isWasmAbort, PdfError } from "./errors.js";
import { errorText, mupdfFailedOpens, openPdf, setMupdfLog } from "./open.js";
import { pdfiumHeapBytes } from "./pdfium.js";
import { renderPageWith, type RenderOptions, type RenderResult } from "./render.js";

export interface RenderRequest {
  id: number;
  path: string;
  pageIndex: number;
  opts: RenderOptions;
  /** Exit after this page when the engines' WASM heaps together have grown past this many bytes. */
  recycleAboveBytes: number;
}

export type RenderReply =
  | ({ id: number; ok: true; recycle: boolean } & RenderResult)
  | { id: number; ok: false; recycle: boolean; error: { name: string; message: string; code?: string; stack?: string } };

// Rendering several pages of one file in a row should not reopen it each time; the identity
// check notices a file replaced at the same path (a reused temp name).
let cached: { key: string; path: string; doc: mupdf.PDFDocument } | undefined;

function documentFor(path: string): mupdf.PDFDocument {
  const st = statSync(path);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  if (cached && cached.path === path && cached.key === key) return cached.doc;
  cached?.doc.destroy();
  cached = undefined;
  const doc = openPdf(path);
  cached = { key, path, doc };
  return doc;
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

/** Whether this worker should make way for a fresh one: its heap grew past the bound, or mupdf failed to open too many files. */
function spent(req: RenderRequest): boolean {
  return heapBytes() > req.recycleAboveBytes || mupdfFailedOpens() >= FAILED_OPENS_BEFORE_RECYCLE;
}

async function handle(req: RenderRequest): Promise<RenderReply> {
  try {
    const r = await renderPageWith(() => documentFor(req.path), req.path, req.pageIndex, req.opts);
    return { id: req.id, ok: true, recycle: spent(req), ...r };
  } catch (e) {
    // A document that failed once is not worth keeping open.
    cached?.doc.destroy();
    cached = undefined;
    const err = e instanceof Error ? e : new Error(errorText(e));
    if (isWasmAbort(e)) {
      // mupdf aborted (e.g. out of WASM memory) and cannot be used again: report, then exit so
      // the pool starts a fresh worker.
      setImmediate(() => process.exit(1));
      return {
        id: req.id,
        ok: false,
        recycle: true,
        error: { name: "PdfError", message: `mupdf aborted: ${err.message}`, code: "worker_crashed" },
      };
    }
    return {
      id: req.id,
      ok: false,
      recycle: spent(req),
      error: { name: err.name, message: err.message, code: e instanceof PdfError ? e.code : undefined, stack: err.stack },
    };
  }
}

const port = parentPort;
if (!port) throw new Error("render-worker must run in a worker thread");
port.on("message", (msg: RenderRequest | { close: true } | { forwardLog: boolean }) => {
  if ("forwardLog" in msg) {
    setMupdfLog(msg.forwardLog ? (level, message) => port.postMessage({ log: { level, message } }) : "silent");
    return;
  }
  if ("close" in msg) {
    cached?.doc.destroy();
    cached = undefined;
    port.close();
    return;
  }
  void handle(msg).then((reply) => {
    if (reply.ok) port.postMessage(reply, [reply.png.buffer as ArrayBuffer]);
    else port.postMessage(reply);
  });
});
