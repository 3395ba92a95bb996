import { PdfError, isPdfErrorCode } from "./errors.js";
import { pathOf, type InspectOptions, type MupdfLog, type PdfInfo, type PdfSource } from "./open.js";
import type { PdfTask, PdfTaskResult, PdfWorkerData } from "./pdf-worker.js";
import { DEFAULT_DPI, type RenderOptions, type RenderResult } from "./render.js";
import { splitPiecesWith, type SplitOptions, type SplitPiece, type SplitSource } from "./split.js";
import { WorkerPool, type SerializedError } from "./worker-pool.js";

export interface PdfPoolOptions {
  /** Worker threads. @defaultValue os.availableParallelism() */
  size?: number;
  /** Time allowed per page; the worker rendering a page that overruns is replaced. @defaultValue 60_000 */
  timeoutMs?: number;
  /**
   * Time allowed to open and check a document (inspect, or the start of a split) and to write
   * one chunk of it; the worker that overruns is replaced. @defaultValue 300_000
   */
  documentTimeoutMs?: number;
  /** Tasks waiting for a worker beyond this are refused at once. @defaultValue Infinity */
  maxQueue?: number;
  /** Receives every mupdf warning and error of the workers (each page's also come back as its `warnings`). @defaultValue dropped */
  onMupdfLog?: MupdfLog;
  /**
   * A worker whose WASM heaps (mupdf's and pdfium's) have grown past this many bytes after a
   * task is replaced by a fresh one: a WASM heap never shrinks, so one hostile page would
   * otherwise pin its peak for the worker's life. @defaultValue 512 MiB
   */
  recycleAboveBytes?: number;
}

export const DEFAULT_RECYCLE_ABOVE_BYTES = 512 * 2 ** 20;

export interface PoolRenderOptions extends RenderOptions {
  /** Overrides the pool's timeoutMs for this page. */
  timeoutMs?: number;
}

/**
 * Renders, inspects and splits PDFs in worker threads, each holding its own mupdf (and pdfium),
 * so the caller's event loop stays free. A task that throws rejects only itself; one that
 * overruns its time limit (PdfError "timeout") or kills its worker (PdfError "worker_crashed")
 * gets that worker replaced, and the pool carries on. A worker is also replaced after a task
 * that grew its heaps past `recycleAboveBytes`, or once its mupdf has failed to open 32 files
 * (mupdf.js 1.28's heap does not survive some hundreds: see mupdfFailedOpens).
 */
export class PdfPool {
  private readonly workers: WorkerPool<PdfTask, PdfTaskResult>;
  private readonly documentTimeoutMs: number;
  private renders = 0;

  constructor(opts: PdfPoolOptions = {}) {
    const workerData: PdfWorkerData = { recycleAboveBytes: opts.recycleAboveBytes ?? DEFAULT_RECYCLE_ABOVE_BYTES };
    this.documentTimeoutMs = opts.documentTimeoutMs ?? 300_000;
    this.workers = new WorkerPool<PdfTask, PdfTaskResult>({
      entry: new URL("./pdf-worker.js", import.meta.url),
      size: opts.size,
      timeoutMs: opts.timeoutMs ?? 60_000,
      maxQueue: opts.maxQueue,
      workerData,
      onLog: opts.onMupdfLog,
      timeoutError: (task, ms) => new PdfError("timeout", `${doing(task)} took longer than ${ms} ms`, { path: taskPath(task) }),
      crashError: (task, cause) =>
        new PdfError("worker_crashed", `pdf worker died ${during(task)}: ${cause.message}`, { path: taskPath(task), cause }),
      rebuildError,
    });
  }

  get size(): number {
    return this.workers.size;
  }

  /**
   * Renders page pageIndex (0-based) of a PDF, its path or its bytes; same result as renderPage.
   * Bytes that own their whole ArrayBuffer are moved to the worker, not copied: the caller's
   * array is empty afterwards. A page in memory costs the render no file at all.
   */
  async render(source: PdfSource, pageIndex: number, opts: PoolRenderOptions = {}): Promise<RenderResult> {
    const { timeoutMs, ...renderOpts } = opts;
    this.renders++;
    const task: PdfTask = { op: "render", source, pageIndex, opts: { dpi: DEFAULT_DPI, ...renderOpts } };
    const owned = typeof source !== "string" && source.buffer instanceof ArrayBuffer && source.byteOffset === 0 && source.byteLength === source.buffer.byteLength;
    const transfer = owned ? [source.buffer as ArrayBuffer] : undefined;
    return (await this.workers.run(task, { timeoutMs, transfer })) as RenderResult;
  }

  /** inspectPdf in a worker: same result, same errors. */
  async inspect(path: string, opts: InspectOptions = {}): Promise<PdfInfo> {
    return (await this.workers.run({ op: "inspect", path, opts }, { timeoutMs: this.documentTimeoutMs })) as PdfInfo;
  }

  /**
   * Splits src into chunks of at most `pagesPerChunk` pages, each yielded as its bytes, with the
   * document open in one worker for the whole split (the worker is held until the generator
   * ends): splitChunks' chunks and errors, without chunk files. The worker makes the next chunk
   * while the caller handles the current one, so two chunks may be in memory at once. Files of
   * 2 GiB or more still go through native mutool (its chunk files under opts.dir, read and removed).
   */
  splitPieces(src: string, opts: SplitOptions): AsyncGenerator<SplitPiece, void, undefined> {
    return splitPiecesWith(src, opts, (path, maxPages) => this.openSplit(path, maxPages));
  }

  private async openSplit(path: string, maxPages: number | undefined): Promise<SplitSource> {
    const session = await this.workers.session();
    const timeoutMs = this.documentTimeoutMs;
    try {
      const { total } = (await session.run({ op: "split-open", path, maxPages }, { timeoutMs })) as { total: number };
      return {
        total,
        ahead: true,
        piece: async (first, last) => (await session.run({ op: "split-piece", path, first, last }, { timeoutMs })) as Uint8Array,
        destroy: async () => {
          try {
            await session.run({ op: "split-close", path }, { timeoutMs });
          } catch {
            // A worker that cannot close the document is replaced anyway.
          } finally {
            session.release();
          }
        },
      };
    } catch (e) {
      session.release();
      throw e;
    }
  }

  /** Workers replaced because a task grew their heap past recycleAboveBytes or their mupdf failed too many opens. */
  get recycled(): number {
    return this.workers.recycled;
  }

  /** Renders asked of the pool since it was made: what a test counts to find work done twice. */
  get requested(): number {
    return this.renders;
  }

  /** Tasks waiting for a worker. */
  get pending(): number {
    return this.workers.pending;
  }

  /** Rejects tasks still waiting, lets running ones finish, then stops the workers. */
  close(): Promise<void> {
    return this.workers.close();
  }
}

/** The page converter's name for the pool. */
export { PdfPool as RenderPool, type PdfPoolOptions as RenderPoolOptions };

function doing(task: PdfTask): string {
  switch (task.op) {
    case "render":
      return `page ${task.pageIndex + 1}`;
    case "split-piece":
      return `copying pages ${task.first}-${task.last}`;
    default:
      return "opening the document";
  }
}

function during(task: PdfTask): string {
  return task.op === "render" ? `on page ${task.pageIndex + 1}` : `while ${doing(task)}`;
}

function taskPath(task: PdfTask): string | undefined {
  return task.op === "render" ? pathOf(task.source) : task.path;
}

function rebuildError(e: SerializedError, task: PdfTask): Error {
  let err: Error;
  if (e.name === "PdfError" && isPdfErrorCode(e.code)) err = new PdfError(e.code, e.message, { path: taskPath(task) });
  else if (e.name === "RangeError") err = new RangeError(e.message);
  else err = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  return err;
}
