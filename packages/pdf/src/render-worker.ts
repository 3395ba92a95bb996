// Entry point of a RenderPool worker thread: loads mupdf once, then renders one page per message.
import { statSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import type * as mupdf from "mupdf";
import { isWasmAbort, PdfError } from "./errors.js";
import { errorText, openPdf, setMupdfLog } from "./open.js";
import { renderDocPage, type RenderOptions } from "./render.js";

export interface RenderRequest {
  id: number;
  path: string;
  pageIndex: number;
  opts: RenderOptions;
}

export type RenderReply =
  | { id: number; ok: true; png: Uint8Array; width: number; height: number; dpi: number }
  | { id: number; ok: false; error: { name: string; message: string; code?: string; stack?: string } };

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

function handle(req: RenderRequest): RenderReply {
  try {
    const r = renderDocPage(documentFor(req.path), req.pageIndex, req.opts);
    return { id: req.id, ok: true, ...r };
  } catch (e) {
    // A document that failed once is not worth keeping open.
    cached?.doc.destroy();
    cached = undefined;
    const err = e instanceof Error ? e : new Error(errorText(e));
    if (isWasmAbort(e)) {
      // mupdf aborted (e.g. out of WASM memory) and cannot be used again: report, then exit so
      // the pool starts a fresh worker.
      setImmediate(() => process.exit(1));
      return { id: req.id, ok: false, error: { name: "PdfError", message: `mupdf aborted: ${err.message}`, code: "worker_crashed" } };
    }
    return {
      id: req.id,
      ok: false,
      error: { name: err.name, message: err.message, code: e instanceof PdfError ? e.code : undefined, stack: err.stack },
    };
  }
}

const port = parentPort;
if (!port) throw new Error("render-worker must run in a worker thread");
port.on("message", (msg: RenderRequest | { close: true } | { forwardLog: boolean }) => {
  if ("forwardLog" in msg) {
    setMupdfLog(msg.forwardLog ? (level, message) => port.postMessage({ log: { level, message } }) : "stderr");
    return;
  }
  if ("close" in msg) {
    cached?.doc.destroy();
    cached = undefined;
    port.close();
    return;
  }
  const reply = handle(msg);
  if (reply.ok) port.postMessage(reply, [reply.png.buffer as ArrayBuffer]);
  else port.postMessage(reply);
});
