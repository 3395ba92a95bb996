// A pool of recyclable worker threads: the main half (WorkerPool) and the worker half (serveTasks).
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { parentPort, Worker, type Transferable } from "node:worker_threads";

/** What a worker answers to a task: `recycle` asks the pool to replace the worker once the task is done. */
export type TaskReply<Res> =
  | { id: number; ok: true; recycle: boolean; value: Res }
  | { id: number; ok: false; recycle: boolean; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string | undefined;
  stack?: string | undefined;
}

type WorkerMessage<Res> = TaskReply<Res> | { log: { level: "warning" | "error"; message: string } };

export interface WorkerPoolOptions<Req> {
  /** The worker's entry, as built (`.js`); from TypeScript source the `.ts` next to it runs. */
  entry: URL;
  /** Worker threads. @defaultValue os.availableParallelism() */
  size?: number | undefined;
  /** Time allowed per task; the worker running a task that overruns is replaced. */
  timeoutMs: number;
  /** Tasks waiting for a worker beyond this are refused at once. @defaultValue Infinity */
  maxQueue?: number | undefined;
  /** Given to every worker as `workerData`. */
  workerData?: unknown;
  /** Receives the workers' log lines; when set, workers are asked to forward them. */
  onLog?: ((level: "warning" | "error", message: string) => void) | undefined;
  /** The error a task rejects with when it overruns its time. */
  timeoutError: (req: Req, timeoutMs: number) => Error;
  /** The error a task rejects with when its worker dies under it. */
  crashError: (req: Req, cause: Error) => Error;
  /** Turns a worker's serialised error back into an Error. */
  rebuildError: (e: SerializedError, req: Req) => Error;
}

interface Task<Req, Res> {
  id: number;
  req: Req;
  timeoutMs: number;
  transfer?: readonly Transferable[];
  resolve: (r: Res) => void;
  reject: (e: Error) => void;
}

interface Slot<Req, Res> {
  worker: Worker;
  task?: Task<Req, Res> | undefined;
  timer?: NodeJS.Timeout | undefined;
  /** Held by a session: tasks come only from its holder. */
  held: boolean;
  /** A task asked for the worker to go; a held worker goes when its session ends. */
  spent: boolean;
}

type Waiter<Req, Res> = { task: Task<Req, Res> } | { session: (slot: Slot<Req, Res>) => void; reject: (e: Error) => void };

/** One worker held by one caller for a sequence of tasks (a document kept open between them). */
export interface PoolSession<Req, Res> {
  run(req: Req, opts?: { timeoutMs?: number | undefined }): Promise<Res>;
  /** Gives the worker back (or replaces it, if a task said it is spent). Idempotent. */
  release(): void;
}

// Built dist/ runs the .js worker. From TypeScript source (vitest, tsx) the worker is the .ts
// file, and Node does not apply loader hooks given to a worker through execArgv ("--import tsx"
// fails with ERR_UNKNOWN_FILE_EXTENSION), so a small bootstrap asks tsx's API to import it. A
// worker that imports another workspace (the reference model's imports this file) resolves it
// to source too, as vitest does for the test itself: vitest sets the condition in its own
// resolver, not in Node's, which is all a worker has.
function startWorker(entry: URL, data: unknown): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(entry, { workerData: data });
  const ts = entry.href.replace(/\.js$/, ".ts");
  const tsxApi = pathToFileURL(
    join(dirname(createRequire(import.meta.url).resolve("tsx/package.json")), "dist/esm/api/index.mjs"),
  ).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((api) => api.tsImport(${JSON.stringify(ts)}, ${JSON.stringify(ts)}));`;
  const execArgv = process.execArgv.some((a) => a.includes("@docpipe/source")) ? undefined : [...process.execArgv, "--conditions=@docpipe/source"];
  return new Worker(boot, { eval: true, workerData: data, ...(execArgv && { execArgv }) });
}

/**
 * Runs tasks in worker threads. A task that throws rejects only itself; one that overruns its
 * time limit or kills its worker gets that worker replaced, and the pool carries on. A worker
 * that answers a task with `recycle` (its heap grew too much, its engine saw too many failed
 * opens) is replaced by a fresh one after that task, so no task is lost.
 */
export class WorkerPool<Req, Res> {
  readonly size: number;
  private readonly opts: WorkerPoolOptions<Req>;
  private readonly maxQueue: number;
  private readonly slots = new Set<Slot<Req, Res>>();
  private readonly idle: Slot<Req, Res>[] = [];
  private readonly queue: Waiter<Req, Res>[] = [];
  private nextId = 1;
  private closed = false;
  private recycledWorkers = 0;

  constructor(opts: WorkerPoolOptions<Req>) {
    this.opts = opts;
    this.size = Math.max(1, opts.size ?? availableParallelism());
    this.maxQueue = opts.maxQueue ?? Infinity;
    for (let i = 0; i < this.size; i++) this.spawn();
  }

  /** Runs req on the next free worker. */
  run(req: Req, opts: { timeoutMs?: number | undefined; transfer?: readonly Transferable[] } = {}): Promise<Res> {
    if (this.closed) return Promise.reject(new Error("the worker pool is closed"));
    if (this.queue.length >= this.maxQueue) return Promise.reject(new Error(`the worker pool's queue is full (${this.maxQueue} tasks waiting)`));
    return new Promise<Res>((resolve, reject) => {
      const task: Task<Req, Res> = { id: this.nextId++, req, timeoutMs: opts.timeoutMs ?? this.opts.timeoutMs, resolve, reject };
      if (opts.transfer) task.transfer = opts.transfer;
      this.queue.push({ task });
      this.dispatch();
    });
  }

  /**
   * Waits for a free worker and holds it until release(). Tasks of the session run on that
   * worker only. The holder must not wait on other tasks of this pool meanwhile (it could
   * hold the last worker they need).
   */
  session(): Promise<PoolSession<Req, Res>> {
    if (this.closed) return Promise.reject(new Error("the worker pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({
        reject,
        session: (slot) => {
          let released = false;
          resolve({
            run: (req, o = {}) => {
              if (released) return Promise.reject(new Error("the session was released"));
              if (!this.slots.has(slot)) return Promise.reject(this.opts.crashError(req, new Error("the session's worker is gone")));
              return new Promise<Res>((res, rej) => {
                this.post(slot, { id: this.nextId++, req, timeoutMs: o.timeoutMs ?? this.opts.timeoutMs, resolve: res, reject: rej });
              });
            },
            release: () => {
              if (released) return;
              released = true;
              slot.held = false;
              if (!this.slots.has(slot)) return;
              if (slot.spent) this.recycle(slot);
              else this.makeIdle(slot);
            },
          });
        },
      });
      this.dispatch();
    });
  }

  /** Workers replaced because a task said they were spent. */
  get recycled(): number {
    return this.recycledWorkers;
  }

  /** Tasks and sessions waiting for a worker. */
  get pending(): number {
    return this.queue.length;
  }

  /** Rejects what is still waiting, lets running tasks finish, then stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.queue.splice(0)) {
      const err = new Error("the worker pool closed before the task ran");
      if ("task" in w) w.task.reject(err);
      else w.reject(err);
    }
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
    const worker = startWorker(this.opts.entry, this.opts.workerData);
    const slot: Slot<Req, Res> = { worker, held: false, spent: false };
    // An idle worker must not keep the process alive on its own.
    worker.unref();
    worker.on("message", (msg: WorkerMessage<Res>) => {
      if ("log" in msg) this.opts.onLog?.(msg.log.level, msg.log.message);
      else this.onReply(slot, msg);
    });
    if (this.opts.onLog) worker.postMessage({ forwardLog: true });
    worker.on("error", (err) => this.onExit(slot, err));
    worker.on("exit", (code) => this.onExit(slot, new Error(`worker exited with code ${code}`)));
    this.slots.add(slot);
    this.idle.push(slot);
  }

  private dispatch(): void {
    while (!this.closed && this.idle.length > 0 && this.queue.length > 0) {
      const slot = this.idle.pop()!;
      const waiter = this.queue.shift()!;
      if ("task" in waiter) {
        this.post(slot, waiter.task);
      } else {
        slot.held = true;
        waiter.session(slot);
      }
    }
  }

  private post(slot: Slot<Req, Res>, task: Task<Req, Res>): void {
    slot.task = task;
    slot.worker.ref();
    slot.timer = setTimeout(() => this.onTimeout(slot), task.timeoutMs);
    slot.worker.postMessage({ id: task.id, task: task.req }, task.transfer ?? []);
  }

  private finish(slot: Slot<Req, Res>): Task<Req, Res> | undefined {
    const task = slot.task;
    clearTimeout(slot.timer);
    slot.task = undefined;
    slot.timer = undefined;
    slot.worker.unref();
    return task;
  }

  private onReply(slot: Slot<Req, Res>, reply: TaskReply<Res>): void {
    if (slot.task?.id !== reply.id) return;
    const task = this.finish(slot)!;
    if (reply.ok) task.resolve(reply.value);
    else task.reject(this.opts.rebuildError(reply.error, task.req));
    if (reply.recycle) slot.spent = true;
    if (slot.held) return;
    if (slot.spent) this.recycle(slot);
    else this.makeIdle(slot);
  }

  private makeIdle(slot: Slot<Req, Res>): void {
    if (this.closed) return;
    this.idle.push(slot);
    this.dispatch();
  }

  private recycle(slot: Slot<Req, Res>): void {
    this.recycledWorkers++;
    this.replace(slot);
  }

  private onTimeout(slot: Slot<Req, Res>): void {
    const task = this.finish(slot);
    if (!task) return;
    task.reject(this.opts.timeoutError(task.req, task.timeoutMs));
    this.replace(slot);
  }

  private onExit(slot: Slot<Req, Res>, err: Error): void {
    if (!this.slots.has(slot)) return;
    const task = this.finish(slot);
    task?.reject(this.opts.crashError(task.req, err));
    this.replace(slot);
  }

  private replace(slot: Slot<Req, Res>): void {
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

/** What a worker's handler returns: the value, and buffers to move rather than copy. */
export interface Handled<Res> {
  value: Res;
  transfer?: Transferable[];
}

export interface ServeOptions<Req, Res> {
  handle: (req: Req) => Promise<Handled<Res>>;
  /** Asked after every task: whether this worker should make way for a fresh one. */
  spent: () => boolean;
  /** The error to answer with when `e` leaves the worker unusable; the worker then exits. */
  fatal: (e: unknown) => Error | undefined;
  /** Starts (or stops) forwarding this thread's log lines through `forward`. */
  forwardLog: (forward: ((level: "warning" | "error", message: string) => void) | undefined) => void;
}

/** The worker half of WorkerPool: answers each task the main thread posts, one at a time. */
export function serveTasks<Req, Res>(opts: ServeOptions<Req, Res>): void {
  const port = parentPort;
  if (!port) throw new Error("serveTasks must run in a worker thread");
  port.on("message", (msg: { id: number; task: Req } | { forwardLog: boolean }) => {
    if ("forwardLog" in msg) {
      opts.forwardLog(msg.forwardLog ? (level, message) => port.postMessage({ log: { level, message } }) : undefined);
      return;
    }
    void answer(msg.id, msg.task).then(([reply, transfer]) => port.postMessage(reply, transfer));
  });
  async function answer(id: number, req: Req): Promise<[TaskReply<Res>, Transferable[]]> {
    try {
      const { value, transfer = [] } = await opts.handle(req);
      return [{ id, ok: true, recycle: opts.spent(), value }, transfer];
    } catch (e) {
      const fatal = opts.fatal(e);
      if (fatal) {
        // Report first, then exit: the pool starts a fresh worker.
        setImmediate(() => process.exit(1));
        return [{ id, ok: false, recycle: true, error: serialize(fatal) }, []];
      }
      return [{ id, ok: false, recycle: opts.spent(), error: serialize(e) }, []];
    }
  }
}

function serialize(e: unknown): SerializedError {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (e as { code?: unknown } | null)?.code;
  return { name: err.name, message: err.message, code: typeof code === "string" ? code : undefined, stack: err.stack };
}
