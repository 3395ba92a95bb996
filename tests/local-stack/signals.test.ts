import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { describe, expect, test } from "vitest";

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
