import { LOCAL_DIR } from "@docpipe/local-stack";
import { createLogger, type Logger } from "@docpipe/queue";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { displayPath, type CliContext } from "./context.js";
import { printable } from "./printable.js";

/** The options of a command whose logs go to a file: the local stack it uses, and --verbose. */
export interface LogOptions {
  stack: string;
  verbose?: boolean;
}

/** Adds `--stack` and `--verbose` to a command that starts the local stack or services. */
export function withLogOptions(command: Command): Command {
  return command
    .option("--stack <name>", "the local stack: its data and logs stay under .local/<name>", "docpipe")
    .option("--verbose", "show the JSON logs on stderr instead of writing them to the log file");
}

export interface CommandLog {
  logger: Logger;
  /** The file the JSON lines go to; undefined with --verbose (they go to stderr). */
  file: string | undefined;
  /** Writes what is buffered and closes the file. */
  close(): Promise<void>;
}

/**
 * The JSON logs of a command that runs services (`run`, and any command that starts the local
 * stack): written to `.local/<stack>/logs/<command>-<time>.log`, whose path is printed, so the
 * terminal stays the person's (progress and results on stdout, nothing else); with --verbose
 * they go to stderr instead. LOG_LEVEL sets the level (default info).
 */
export async function openCommandLog(ctx: CliContext, command: string, opts: LogOptions): Promise<CommandLog> {
  const level = ctx.env.LOG_LEVEL ?? "info";
  if (opts.verbose) {
    return { logger: createLogger({ service: "docpipe", level, destination: ctx.stderr }), file: undefined, close: async () => {} };
  }
  const dir = path.join(LOCAL_DIR, opts.stack, "logs");
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${command}-${new Date().toISOString().replace(/[:.]/g, "-")}.log`);
  const stream = createWriteStream(file, { flags: "a" });
  ctx.stdout.write(`logs: ${printable(displayPath(ctx, file))} (--verbose shows them here)\n`);
  return {
    logger: createLogger({ service: "docpipe", level, destination: stream }),
    file,
    close: () => new Promise<void>((resolve) => stream.end(resolve)),
  };
}

/** Runs `fn` with the command's log open, and closes it after, whatever happens. */
export async function withCommandLog<T>(ctx: CliContext, command: string, opts: LogOptions, fn: (log: CommandLog) => Promise<T>): Promise<T> {
  const log = await openCommandLog(ctx, command, opts);
  try {
    return await fn(log);
  } catch (e) {
    if (log.file) log.logger.error({ err: e }, `${command} failed`);
    throw e;
  } finally {
    await log.close();
  }
}
