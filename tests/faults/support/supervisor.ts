import { setTimeout as sleep } from "node:timers/promises";
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const REPO_ROOT = resolve(import.meta.dirname, "../../..");

/** One deployable as ECS would run it: its real `main.ts`, configured only through its environment. */
export interface ServiceSpec {
  /** Name in logs and events, e.g. "page-converter"; instances are `name#1`, `name#2`, ... */
  name: string;
  /** Directory under services/, e.g. "splitter" (its `src/main.ts` is run). */
  service: string;
  /** Added to the supervisor's base environment. */
  env?: Record<string, string>;
  /** Processes of this service. @defaultValue 1 */
  replicas?: number;
  /**
   * When a started process counts as ready: a pino `msg` it logs, or a probe polled until it
   * answers true. @defaultValue `{ logMessage: "worker started" }`
   */
  ready?: { logMessage: string } | { probe: () => Promise<boolean> };
}

/** A pino line, as far as the supervisor reads it. */
export interface LogLine {
  at: number;
  level?: number;
  msg?: string;
  [field: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What happened to a process after the supervisor sent it SIGTERM. */
export interface StopResult {
  instance: string;
  pid: number;
  exit: Exit;
  /** From SIGTERM to exit. */
  ms: number;
  /** Whether it exited by itself before `stopTimeoutMs` (it is SIGKILLed otherwise). */
  withinTimeout: boolean;
  /** Lines it logged between SIGTERM and exit (what it finished or released on the way out). */
  linesAfterSignal: LogLine[];
}

export interface SupervisorEvent {
  /** Milliseconds since the supervisor was created. */
  t: number;
  instance: string;
  what: "started" | "ready" | "SIGKILL" | "SIGTERM" | "exited" | "crashed";
  pid?: number;
  detail?: string;
}

interface Slot {
  id: string;
  spec: ServiceSpec;
  child?: ChildProcess;
  lines: LogLine[];
  exited?: Promise<Exit>;
  /** Set while the supervisor itself is ending the process, so its exit is not a crash. */
  expectExit: boolean;
  generation: number;
}

export interface SupervisorOptions {
  /** Environment of every process (the stack's `env`, log level, ...); `ServiceSpec.env` is added. */
  env: Record<string, string>;
  /** Each process's stdout and stderr are appended to `<logDir>/<instance>.log`. */
  logDir: string;
  /** How long a process may take between SIGTERM and exit: ECS's stopTimeout. @defaultValue 30000 */
  stopTimeoutMs?: number;
  /** How long a process may take to become ready. @defaultValue 90000 */
  readyTimeoutMs?: number;
  /** Where events are reported as they happen (e.g. console.log when debugging). */
  onEvent?: (e: SupervisorEvent) => void;
}


/**
 * Runs docpipe services as child processes, the way their containers run them (`node` on the
 * service's `main.ts`, configured by environment), so that a test can SIGKILL one at any moment
 * (no `finally`, no flush, no message released: what an OOM kill or a lost host does), restart
 * it, and SIGTERM it as ECS does on scale-in, timing how long it takes to exit.
 *
 * Every exit the supervisor did not cause is recorded as a crash; {@link crashes} lists them.
 */
export class Supervisor {
  readonly events: SupervisorEvent[] = [];
  readonly stopTimeoutMs: number;
  private readonly slots = new Map<string, Slot>();
  private readonly logs = new Map<string, WriteStream>();
  private readonly started = Date.now();
  private readonly readyTimeoutMs: number;

  constructor(private readonly opts: SupervisorOptions) {
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  }

  /** Starts every replica of each service and waits until all are ready. */
  async start(specs: ServiceSpec[]): Promise<void> {
    const ids: string[] = [];
    for (const spec of specs) {
      for (let i = 1; i <= (spec.replicas ?? 1); i++) {
        const id = `${spec.name}#${i}`;
        if (this.slots.has(id)) throw new Error(`${id} is already supervised`);
        this.slots.set(id, { id, spec, lines: [], expectExit: false, generation: 0 });
        ids.push(id);
      }
    }
    await Promise.all(ids.map((id) => this.launch(id)));
  }

  /** Instance ids (`name#n`), optionally of one service. */
  instances(service?: string): string[] {
    return [...this.slots.values()].filter((s) => service === undefined || s.spec.name === service).map((s) => s.id);
  }

  /** Whether the instance has a live process. */
  isRunning(id: string): boolean {
    const child = this.slot(id).child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  pid(id: string): number | undefined {
    return this.slot(id).child?.pid;
  }

  /** Lines the current process of an instance has logged so far. */
  lines(id: string): readonly LogLine[] {
    return this.slot(id).lines;
  }

  /** Exits nobody asked for. */
  crashes(): SupervisorEvent[] {
    return this.events.filter((e) => e.what === "crashed");
  }

  /** SIGKILLs the instance's process and waits until it is gone. */
  async kill(id: string, detail?: string): Promise<void> {
    const slot = this.slot(id);
    const child = slot.child;
    if (!child || !this.isRunning(id)) return;
    slot.expectExit = true;
    this.record(id, "SIGKILL", child.pid, detail);
    child.kill("SIGKILL");
    await slot.exited;
  }

  /** Starts a new process for an instance whose process has ended, and waits until it is ready. */
  async restart(id: string): Promise<void> {
    if (this.isRunning(id)) throw new Error(`${id} is still running`);
    await this.launch(id);
  }

  /**
   * SIGTERMs the instance and waits for it to exit; SIGKILLs it after `stopTimeoutMs` (and says
   * so in the result) so that a hung process cannot hang the test.
   */
  async stop(id: string): Promise<StopResult> {
    const slot = this.slot(id);
    const child = slot.child;
    if (!child?.pid || !this.isRunning(id)) throw new Error(`${id} is not running`);
    slot.expectExit = true;
    const from = slot.lines.length;
    const sentAt = Date.now();
    this.record(id, "SIGTERM", child.pid);
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), this.stopTimeoutMs)));
    const first = await Promise.race([slot.exited!, timedOut]);
    clearTimeout(timer);
    let exit: Exit;
    if (first === "timeout") {
      child.kill("SIGKILL");
      exit = await slot.exited!;
    } else {
      exit = first;
    }
    return {
      instance: id,
      pid: child.pid,
      exit,
      ms: Date.now() - sentAt,
      withinTimeout: first !== "timeout",
      linesAfterSignal: slot.lines.slice(from),
    };
  }

  /** SIGTERMs every running process at once, as ECS does when a service is scaled in or redeployed. */
  async stopAll(): Promise<StopResult[]> {
    return Promise.all(this.instances().filter((id) => this.isRunning(id)).map((id) => this.stop(id)));
  }

  /** Last resort for `finally`: SIGKILLs whatever still runs and closes the log files. */
  async dispose(): Promise<void> {
    await Promise.all(this.instances().map((id) => this.kill(id, "dispose")));
    await Promise.all([...this.logs.values()].map((s) => new Promise<void>((r) => s.end(r))));
  }

  /** Path of an instance's log file. */
  logFile(id: string): string {
    return join(this.opts.logDir, `${id.replace("#", "-")}.log`);
  }

  private slot(id: string): Slot {
    const slot = this.slots.get(id);
    if (!slot) throw new Error(`no instance ${id}; have ${this.instances().join(", ")}`);
    return slot;
  }

  private record(instance: string, what: SupervisorEvent["what"], pid?: number, detail?: string): void {
    const e: SupervisorEvent = {
      t: Date.now() - this.started,
      instance,
      what,
      ...(pid !== undefined && { pid }),
      ...(detail !== undefined && { detail }),
    };
    this.events.push(e);
    this.opts.onEvent?.(e);
  }

  private log(id: string): WriteStream {
    let stream = this.logs.get(id);
    if (!stream) {
      stream = createWriteStream(this.logFile(id), { flags: "a" });
      this.logs.set(id, stream);
    }
    return stream;
  }

  private async launch(id: string): Promise<void> {
    const slot = this.slot(id);
    const { spec } = slot;
    slot.generation++;
    slot.lines = [];
    slot.expectExit = false;
    const main = join(REPO_ROOT, "services", spec.service, "src/main.ts");
    const child = spawn(process.execPath, ["--conditions=@docpipe/source", "--import", "tsx", main], {
      cwd: REPO_ROOT,
      // Only what the supervisor passes: a service must not depend on the test runner's environment.
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...this.opts.env, ...spec.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    slot.child = child;
    const log = this.log(id);
    log.write(`--- ${id} generation ${slot.generation} pid ${child.pid} at ${new Date().toISOString()}\n`);
    const lines = slot.lines;
    let readyLine: (() => void) | undefined;
    const wanted = spec.ready ?? { logMessage: "worker started" };
    createInterface({ input: child.stdout! }).on("line", (text) => {
      log.write(text + "\n");
      let line: LogLine;
      try {
        line = { ...(JSON.parse(text) as object), at: Date.now() };
      } catch {
        line = { at: Date.now(), msg: text };
      }
      lines.push(line);
      if ("logMessage" in wanted && line.msg === wanted.logMessage) readyLine?.();
    });
    createInterface({ input: child.stderr! }).on("line", (text) => {
      log.write(`[stderr] ${text}\n`);
    });
    slot.exited = new Promise<Exit>((resolveExit) => {
      child.once("exit", (code, signal) => {
        const exit = { code, signal };
        if (slot.child === child) {
          if (slot.expectExit) this.record(id, "exited", child.pid, JSON.stringify(exit));
          else this.record(id, "crashed", child.pid, `${JSON.stringify(exit)}; see ${this.logFile(id)}`);
        }
        resolveExit(exit);
      });
    });
    this.record(id, "started", child.pid);

    const deadline = Date.now() + this.readyTimeoutMs;
    const exitedEarly = slot.exited.then((e) => {
      throw new Error(`${id} exited before it was ready (${JSON.stringify(e)}); see ${this.logFile(id)}`);
    });
    exitedEarly.catch(() => undefined);
    let ready: Promise<void>;
    if ("logMessage" in wanted) {
      ready = new Promise<void>((r) => (readyLine = r));
      if (lines.some((l) => l.msg === wanted.logMessage)) readyLine?.();
    } else {
      ready = (async () => {
        while (!(await wanted.probe().catch(() => false))) {
          if (!this.isRunning(id)) return;
          await sleep(100);
        }
      })();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${id} not ready within ${this.readyTimeoutMs} ms; see ${this.logFile(id)}`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      await Promise.race([ready, exitedEarly, timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.record(id, "ready", child.pid);
  }
}
