import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { PdfError, isPdfErrorCode } from "./errors.js";
import type { MupdfLog } from "./open.js";
import { DEFAULT_DPI, type RenderOptions, type RenderResult } from "./render.js";
import type { RenderReply, RenderRequest } from "./render-worker.js";

export interface RenderPoolOptions {
  /** Worker threads. @defaultValue os.availableParallelism() */
  size?: number;
  /** Time allowed per page; the worker rendering a page that overruns is replaced. @defaultValue 60_000 */
  timeoutMs?: number;
  /** Pages waiting for a worker beyond this are refused at once. @defaultValue Infinity */
  maxQueue?: number;
  /** Receives every mupdf warning and error of the workers (each page's also come back as its `warnings`). @defaultValue dropped */
  onMupdfLog?: MupdfLog;
  /**
   * A worker whose WASM heaps (mupdf's and pdfium's) have grown past this many bytes after a
   * page is replaced by a fresh one: a WASM heap never shrinks, so one hostile page would
   * otherwise pin its peak for the worker's life. @defaultValue 512 MiB
   */
  recycleAboveBytes?: number;
}

export const DEFAULT_RECYCLE_ABOVE_BYTES = 512 * 2 ** 20;

export interface PoolRenderOptions extends RenderOptions {
  /** Overrides the pool's timeoutMs for this page. */
  timeoutMs?: number;
}

interface Task {
  req: RenderRequest;
  timeoutMs: number;
  resolve: (r: RenderResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  task?: Task;
  timer?: NodeJS.Timeout;
}

// Built dist/ runs the .js worker next to this file. From TypeScript source (vitest, tsx) the
// worker is the .ts file, and Node 20 does not apply loader hooks given to a worker through
// execArgv ("--import tsx" fails with ERR_UNKNOWN_FILE_EXTENSION), so a small bootstrap asks
// tsx's API to import it.
function startWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./render-worker.js", import.meta.url));
  const entry = new URL("./render-worker.ts", import.meta.url).href;
  const tsxApi = pathToFileURL(
    join(dirname(createRequire(import.meta.url).resolve("tsx/package.json")), "dist/esm/api/index.mjs"),
  ).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((api) => api.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}));`;
  return new Worker(boot, { eval: true });
}

/**
 * Renders pages in worker threads, each holding its own mupdf. A page that throws rejects only
 * its own render; a page that overruns its time limit (PdfError "timeout") or kills its worker
 * (PdfError "worker_crashed") gets that worker replaced, and the pool carries on.
 */
export class RenderPool {
  readonly size: number;
  private readonly timeoutMs: number;
  private readonly maxQueue: number;
  private readonly onMupdfLog: MupdfLog | undefined;
  private readonly slots = new Set<Slot>();
  private readonly idle: Slot[] = [];
  private readonly queue: Task[] = [];
  private readonly recycleAboveBytes: number;
  private nextId = 1;
  private closed = false;
  private recycledWorkers = 0;

  constructor(opts: RenderPoolOptions = {}) {
    this.size = Math.max(1, opts.size ?? availableParallelism());
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxQueue = opts.maxQueue ?? Infinity;
    this.onMupdfLog = opts.onMupdfLog;
    this.recycleAboveBytes = opts.recycleAboveBytes ?? DEFAULT_RECYCLE_ABOVE_BYTES;
    for (let i = 0; i < this.size; i++) this.spawn();
  }

  /** Renders page pageIndex (0-based) of the PDF at pdfPath; same result as renderPage. */
  render(pdfPath: string, pageIndex: number, opts: PoolRenderOptions = {}): Promise<RenderResult> {
    if (this.closed) return Promise.reject(new Error("RenderPool is closed"));
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new Error(`RenderPool queue is full (${this.maxQueue} pages waiting)`));
    }
    const { timeoutMs = this.timeoutMs, ...renderOpts } = opts;
    return new Promise<RenderResult>((resolve, reject) => {
      const req: RenderRequest = {
        id: this.nextId++,
        path: pdfPath,
        pageIndex,
        opts: { dpi: DEFAULT_DPI, ...renderOpts },
        recycleAboveBytes: this.recycleAboveBytes,
      };
      this.queue.push({ req, timeoutMs, resolve, reject });
      this.dispatch();
    });
  }

  /** Workers replaced because a page grew their heap past recycleAboveBytes. */
  get recycled(): number {
    return this.recycledWorkers;
  }

  /** Renders asked of the pool since it was made: what a test counts to find work done twice. */
  get requested(): number {
    return this.nextId - 1;
  }

  /** Pages waiting for a worker. */
  get pending(): number {
    return this.queue.length;
  }

  /** Rejects pages still waiting, lets running ones finish, then stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(new Error("RenderPool closed before the page was rendered"));
    await Promise.all(
      [...this.slots].map(async (slot) => {
        if (slot.task) await new Promise<void>((resolve) => slot.worker.once("exit", () => resolve()).once("message", () => resolve()));
        await slot.worker.terminate();
      }),
    );
    this.slots.clear();
    this.idle.length = 0;
  }

  private spawn(): void {
    const worker = startWorker();
    const slot: Slot = { worker };
    // An idle worker must not keep the process alive on its own.
    worker.unref();
    worker.on("message", (msg: RenderReply | { log: { level: "warning" | "error"; message: string } }) => {
      if ("log" in msg) this.onMupdfLog?.(msg.log.level, msg.log.message);
      else this.onReply(slot, msg);
    });
    if (this.onMupdfLog) worker.postMessage({ forwardLog: true });
    worker.on("error", (err) => this.onExit(slot, err));
    worker.on("exit", (code) => this.onExit(slot, new Error(`render worker exited with code ${code}`)));
    this.slots.add(slot);
    this.idle.push(slot);
  }

  private dispatch(): void {
    while (!this.closed && this.idle.length > 0 && this.queue.length > 0) {
      const slot = this.idle.pop()!;
      const task = this.queue.shift()!;
      slot.task = task;
      slot.worker.ref();
      slot.timer = setTimeout(() => this.onTimeout(slot), task.timeoutMs);
      slot.worker.postMessage(task.req);
    }
  }

  private finish(slot: Slot): Task | undefined {
    const task = slot.task;
    clearTimeout(slot.timer);
    slot.task = undefined;
    slot.timer = undefined;
    slot.worker.unref();
    return task;
  }

  private onReply(slot: Slot, reply: RenderReply): void {
    if (slot.task?.req.id !== reply.id) return;
    const task = this.finish(slot)!;
    if (reply.ok) {
      const { id: _id, ok: _ok, recycle: _recycle, ...result } = reply;
      task.resolve(result);
    } else {
      task.reject(rebuildError(reply.error, task.req.path));
    }
    if (reply.recycle) {
      this.recycledWorkers++;
      this.replace(slot);
    } else if (!this.closed) {
      this.idle.push(slot);
      this.dispatch();
    }
  }

  private onTimeout(slot: Slot): void {
    const task = this.finish(slot);
    if (!task) return;
    task.reject(
      new PdfError("timeout", `page ${task.req.pageIndex + 1} took longer than ${task.timeoutMs} ms`, {
        path: task.req.path,
      }),
    );
    this.replace(slot);
  }

  private onExit(slot: Slot, err: Error): void {
    if (!this.slots.has(slot)) return;
    const task = this.finish(slot);
    task?.reject(
      new PdfError("worker_crashed", `render worker died on page ${task.req.pageIndex + 1}: ${err.message}`, {
        path: task.req.path,
        cause: err,
      }),
    );
    this.replace(slot);
  }

  private replace(slot: Slot): void {
    if (!this.slots.delete(slot)) return;
    const i = this.idle.indexOf(slot);
    if (i >= 0) this.idle.splice(i, 1);
    slot.worker.removeAllListeners();
    // The old worker may be stuck inside WASM; terminate() interrupts it.
    void slot.worker.terminate();
    if (!this.closed) {
      this.spawn();
      this.dispatch();
    }
  }
}

function rebuildError(e: { name: string; message: string; code?: string; stack?: string }, path: string): Error {
  let err: Error;
  if (e.name === "PdfError" && isPdfErrorCode(e.code)) err = new PdfError(e.code, e.message, { path });
  else if (e.name === "RangeError") err = new RangeError(e.message);
  else err = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  return err;
}
