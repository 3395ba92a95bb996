import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createLogger, type Logger } from "@docpipe/queue";
import { LocalStackError } from "./errors.js";
import { findRunningStack, start, type LocalStack } from "./stack.js";

export interface StudioOptions {
  /**
   * A database to open instead of a local stack's: Aurora through a tunnel, for example
   * (`pnpm studio` passes $DATABASE_URL). No stack is looked for or started.
   */
  databaseUrl?: string;
  /** The stack whose database to open; started (and stopped after) when not running. @defaultValue "docpipe" */
  name?: string;
  /** @defaultValue 5555 */
  port?: number;
  /** @defaultValue a pino logger at level "info" */
  logger?: Logger;
  /** Stops Studio when aborted, as Ctrl-C does. */
  signal?: AbortSignal;
}

/**
 * Prisma Studio 7's CLI. Studio 6.19 (our Prisma) cannot browse data without the native
 * query engine, which cannot be downloaded here; Studio 7 talks to Postgres directly. A
 * development dependency: no image carries a Prisma CLI but the migrate task's, so Studio runs
 * from a checkout (through a tunnel to Aurora: see the README).
 */
function studioCli(): string {
  try {
    return createRequire(import.meta.url).resolve("prisma-studio-cli/build/index.js");
  } catch (e) {
    throw new LocalStackError("Prisma Studio is a development tool: run `pnpm studio` from a checkout of the repository", { cause: e });
  }
}

/**
 * Prisma Studio on `databaseUrl`, or on a local stack's `docpipe` database, to browse batches,
 * documents, pages, results and the audit trail. Uses the stack if it is running (`pnpm start`,
 * `docpipe run`), otherwise starts it for as long as Studio runs. Resolves when Studio exits (Ctrl-C).
 */
export async function openStudio(opts: StudioOptions = {}): Promise<void> {
  const cli = studioCli();
  const name = opts.name ?? "docpipe";
  const port = opts.port ?? 5555;
  const logger = opts.logger ?? createLogger({ service: "studio", level: "info" });
  let stack: LocalStack | undefined;
  let databaseUrl = opts.databaseUrl ?? (await findRunningStack(name))?.env?.DATABASE_URL;
  if (!databaseUrl) {
    logger.info({ name }, "the local stack is not running; starting it for Studio");
    stack = await start({ name, ephemeral: false, handleSignals: false, logger });
    databaseUrl = stack.databaseUrl;
  }
  let signalled = false;
  const forward = (signal: NodeJS.Signals) => {
    signalled = true;
    child.kill(signal);
  };
  const child = spawn(process.execPath, [cli, "studio", "--url", databaseUrl, "--port", String(port), "--browser", "none"], {
    stdio: "inherit",
    env: { ...process.env, CHECKPOINT_DISABLE: "1" },
  });
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const onAbort = () => forward("SIGINT");
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    logger.info({ url: `http://localhost:${port}`, ...(opts.databaseUrl ? { database: "DATABASE_URL" } : { stack: name }) }, "Prisma Studio starting");
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", (e) => reject(new LocalStackError("cannot run Prisma Studio", { cause: e })));
      child.once("exit", (exitCode) => resolve(exitCode));
    });
    // Studio ends with 130 on the Ctrl-C it was asked to stop by.
    if (code !== 0 && code !== null && !signalled) throw new LocalStackError(`Prisma Studio exited with code ${code}`);
  } finally {
    process.off("SIGINT", forward);
    process.off("SIGTERM", forward);
    opts.signal?.removeEventListener("abort", onAbort);
    await stack?.stop();
  }
}
