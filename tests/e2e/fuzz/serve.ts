import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { execute } from "@docpipe/cli";
import { findRunningStack, LOCAL_DIR, REPO_ROOT } from "@docpipe/local-stack";
import { docpipeNodeArgs } from "../../fixtures/docpipe-command.js";

export interface Served {
  url: string;
  port: number;
  /** The served stack's environment (S3 endpoint, buckets, database), from its state file. */
  env: Record<string, string>;
  /** Runs a docpipe command line against the served stack (`--stack` added) and returns its stdout. */
  docpipe(...argv: string[]): Promise<string>;
  /** SIGTERM, as a person's Ctrl-C or an orchestrator would; resolves with the exit code once it has exited. */
  stop(): Promise<number | null>;
}

/**
 * `docpipe serve --stack <name> --port 0` in a child process, exactly as a person starts it
 * (`pnpm docpipe serve` runs the same main.ts); resolves once it prints its URL.
 */
export async function startServe(stackName: string, timeoutMs = 180_000): Promise<Served> {
  const { INIT_CWD: _, DATABASE_URL: __, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [...docpipeNodeArgs(), "serve", "--stack", stackName, "--port", "0"],
    { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr = (stderr + c.toString("utf8")).slice(-4000)));
  const printed: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`docpipe serve printed no URL in ${timeoutMs} ms:\n${printed.join("\n")}\n${stderr}`)), timeoutMs);
    createInterface({ input: child.stdout }).on("line", (line) => {
      printed.push(line);
      const m = /^docpipe API listening on (http:\/\/\S+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`docpipe serve exited (${code}) before printing its URL:\n${printed.join("\n")}\n${stderr}`)));
  }).catch(async (e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
  const state = await findRunningStack(stackName);
  return {
    url,
    port: Number(new URL(url).port),
    env: state?.env ?? {},
    async docpipe(...argv) {
      const out: string[] = [];
      const sink = { write: (s: string) => out.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
      const code = await execute([...argv, "--stack", stackName], { stdout: sink, stderr: sink, cwd: REPO_ROOT, env: env });
      if (code !== 0) throw new Error(`docpipe ${argv.join(" ")} exited ${code}: ${out.join("")}`);
      return out.join("");
    },
    async stop() {
      child.kill("SIGTERM");
      const code = await Promise.race([exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 60_000))]);
      if (code === "timeout") {
        child.kill("SIGKILL");
        throw new Error("docpipe serve did not stop within 60 s of SIGTERM");
      }
      await rm(path.join(LOCAL_DIR, stackName), { recursive: true, force: true });
      return code;
    },
  };
}
