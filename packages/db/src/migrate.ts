import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const packageDir = path.resolve(import.meta.dirname, "..");
const prismaConfig = path.join(packageDir, "prisma.config.ts");

/**
 * What the CLI prints once `migrate deploy` has committed everything. On success the Prisma 6.19
 * CLI does not exit by itself: a timer of its WebAssembly schema engine (the 10 s advisory-lock
 * timeout) keeps it alive long after the work is done. Once one of these lines is printed the
 * child is stopped instead of waited for; if a later Prisma prints something else, migrate()
 * is only slower, never wrong, because it then waits for the exit code.
 */
const SUCCESS_LINES = ["All migrations have been successfully applied.", "No pending migrations to apply."];

export class MigrationError extends Error {
  /** Combined stdout and stderr of `prisma migrate deploy`. */
  readonly output: string;
  constructor(message: string, output: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MigrationError";
    this.output = output;
  }
}

export interface MigrateOptions {
  /** Gives up (and stops the CLI) after this long. @defaultValue 120 000 */
  timeoutMs?: number;
  /** Directory with schema.prisma and migrations/. @defaultValue the repository's prisma/ */
  prismaDir?: string;
}

/**
 * Applies the committed migrations (prisma/migrations) to the database: `prisma migrate
 * deploy` as a child process, through the JavaScript schema engine (no native engine needed).
 * Safe to run concurrently: Prisma serialises it with an advisory lock. Resolves with the CLI's output.
 */
export async function migrate(databaseUrl: string, opts: MigrateOptions = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  // Resolved here, not at import: the CLI is an optional peer dependency, which the workspace (a
  // devDependency here) and the migrate deployable provide and the service images, which import
  // this package for its client only, do not.
  let prismaCli: string;
  try {
    prismaCli = require.resolve("prisma/build/index.js");
  } catch (e) {
    throw new MigrationError("the Prisma CLI is not installed here: migrations run from the workspace or the migrate image", "", { cause: e });
  }
  const child = spawn(process.execPath, [prismaCli, "migrate", "deploy", "--config", prismaConfig], {
    cwd: packageDir,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      CHECKPOINT_DISABLE: "1",
      PRISMA_HIDE_UPDATE_MESSAGE: "1",
      ...(opts.prismaDir && { DOCPIPE_PRISMA_DIR: opts.prismaDir }),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let succeeded = false;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new MigrationError(`prisma migrate deploy did not finish within ${timeoutMs} ms`, output));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (!succeeded && SUCCESS_LINES.some((line) => output.includes(line))) {
        succeeded = true;
        child.kill("SIGTERM");
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new MigrationError("cannot run the prisma CLI", output, { cause: e }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (succeeded || code === 0) resolve(output);
      else reject(new MigrationError(`prisma migrate deploy failed (${signal ?? `exit code ${code}`}): ${lastLines(output)}`, output));
    });
  });
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-5).join("\n");
}
