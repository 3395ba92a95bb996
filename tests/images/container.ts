// Runs a bundle the way its container does: the image's entrypoint and command, its WORKDIR as
// cwd, its ENV plus the task's environment, and nothing from the test process's environment.
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ImageRuntime } from "./build.js";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Container {
  name: string;
  /** Output so far (stdout and stderr interleaved), the last 256 KiB. */
  output(): string;
  /** Settles when the process ends. */
  exited: Promise<Exit>;
  running(): boolean;
  /** SIGTERM, as `docker stop`/ECS send it; resolves with the exit and how long it took. */
  stop(timeoutMs: number): Promise<Exit & { ms: number }>;
  /** SIGKILL if still running (cleanup after a failed test). */
  kill(): void;
}

const MAX_OUTPUT = 256 * 1024;

/**
 * A container's environment: PATH with this Node first (the image's node is on PATH), a HOME of
 * its own, the image's ENV, then the task's variables. No NODE_PATH, NODE_OPTIONS or anything
 * the test runner exported.
 */
export async function containerEnv(runtime: ImageRuntime, home: string, task: Record<string, string>): Promise<Record<string, string>> {
  await mkdir(home, { recursive: true });
  return {
    PATH: [path.dirname(process.execPath), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].join(":"),
    HOME: home,
    ...runtime.env,
    ...task,
  };
}

export function startContainer(name: string, runtime: ImageRuntime, env: Record<string, string>): Container {
  const [cmd, ...args] = runtime.command;
  const child = spawn(cmd!, args, { cwd: runtime.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (c: Buffer) => {
    out += c.toString("utf8");
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    child.on("error", (e) => {
      keep(Buffer.from(`spawn failed: ${e.message}\n`));
      done = true;
      resolve({ code: null, signal: null });
    });
    child.on("close", (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return {
    name,
    output: () => out,
    exited,
    running: () => !done,
    async stop(timeoutMs) {
      const started = Date.now();
      if (!done) child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
      const result = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (result === "timeout") {
        child.kill("SIGKILL");
        return { ...(await exited), ms: Date.now() - started };
      }
      return { ...result, ms: Date.now() - started };
    },
    kill() {
      if (!done) child.kill("SIGKILL");
    },
  };
}

/** Runs a one-shot container (the migration task) to its end. */
export async function runContainer(name: string, runtime: ImageRuntime, env: Record<string, string>, timeoutMs: number): Promise<Exit & { output: string }> {
  const c = startContainer(name, runtime, env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  const result = await Promise.race([c.exited, timeout]);
  clearTimeout(timer);
  if (result === "timeout") {
    c.kill();
    throw new Error(`${name} did not finish within ${timeoutMs} ms:\n${c.output().slice(-4000)}`);
  }
  return { ...result, output: c.output() };
}
