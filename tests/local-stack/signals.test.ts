import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { isAlive as isRunning, start } from "@docpipe/local-stack";
import { describe, expect, onTestFinished, test } from "vitest";
import { waitFor } from "../fixtures/wait.js";

const HOLD_STACK = path.join(import.meta.dirname, "support/hold-stack.ts");

interface Held {
  dataDir: string;
  postgresPid: number;
  watchdogPid: number;
}

/** Starts hold-stack.ts in a process group of its own (as a terminal runs `pnpm docpipe run`) and reads where its stack runs. */
async function holdStack(name?: string): Promise<{ pid: number; held: Held }> {
  const child = spawn(process.execPath, ["--conditions=@docpipe/source", "--import", "tsx", HOLD_STACK, ...(name ? [name] : [])], {
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  return { pid: child.pid!, held: JSON.parse(line) as Held };
}

// No fixture here: the stack lives in a child process, as under `pnpm start`.
describe("a process holding a stack", () => {
  // SIGTERM and SIGHUP take the same path; one signal keeps the suite short.
  for (const signal of ["SIGINT"] as const) {
    test(`stops Postgres, removes its data and ends on ${signal}`, async () => {
      const child = spawn(process.execPath, ["--conditions=@docpipe/source", "--import", "tsx", path.join(import.meta.dirname, "support/hold-stack.ts")], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      try {
        const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
        const { dataDir, postgresPid } = JSON.parse(line) as { dataDir: string; postgresPid: number };
        expect(isRunning(postgresPid)).toBe(true);

        const exited = once(child, "exit");
        child.kill(signal);
        const [code, exitSignal] = (await exited) as [number | null, NodeJS.Signals | null];

        // Nothing else handled the signal, so the process ended by it, as it would without a stack.
        expect({ code, exitSignal }).toEqual({ code: null, exitSignal: signal });
        expect(isRunning(postgresPid)).toBe(false);
        expect(existsSync(dataDir)).toBe(false);
      } finally {
        child.kill("SIGKILL");
      }
    });
  }
});

describe("a named stack whose whole process group is SIGKILLed", () => {
  const named = () => {
    const name = `sigkill-${randomBytes(3).toString("hex")}`;
    onTestFinished(async () => {
      const { LOCAL_DIR } = await import("@docpipe/local-stack");
      await rm(path.join(LOCAL_DIR, name), { recursive: true, force: true });
    });
    return name;
  };

  test("leaves no Postgres running, and the next start finds the data", { timeout: 120_000 }, async () => {
    const name = named();
    const { pid, held } = await holdStack(name);
    expect(isRunning(held.postgresPid)).toBe(true);

    process.kill(-pid, "SIGKILL");
    // Postgres is in a session of its own, out of reach of the group kill: its watchdog stops it.
    await waitFor("the orphaned Postgres to stop", async () => (isRunning(held.postgresPid) ? undefined : true), 30_000);
    await waitFor("the watchdog to end", async () => (isRunning(held.watchdogPid) ? undefined : true), 5_000);

    const stack = await start({ name, ephemeral: false });
    try {
      expect(await stack.prisma.$queryRawUnsafe(`SELECT note FROM kept`)).toEqual([{ note: "written before the kill" }]);
    } finally {
      await stack.stop();
    }
  });

  test("a Postgres that outlived its watchdog too is stopped by the next start of the stack", { timeout: 120_000 }, async () => {
    const name = named();
    const { pid, held } = await holdStack(name);
    process.kill(held.watchdogPid, "SIGKILL");
    process.kill(-pid, "SIGKILL");
    await waitFor("the holder to die", async () => (isRunning(pid) ? undefined : true), 10_000);
    expect(isRunning(held.postgresPid)).toBe(true);

    const stack = await start({ name, ephemeral: false });
    try {
      expect(isRunning(held.postgresPid)).toBe(false);
      expect(await stack.prisma.$queryRawUnsafe(`SELECT note FROM kept`)).toEqual([{ note: "written before the kill" }]);
    } finally {
      await stack.stop();
    }
  });
});
