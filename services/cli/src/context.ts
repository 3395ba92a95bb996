import { InvalidArgumentError, type Command } from "commander";
import path from "node:path";
import { ApiClient } from "./api.js";

/** Exit codes of every command (listed in `docpipe --help`). */
export const EXIT = {
  /** Done: the batch completed (failed documents are listed in its report). */
  ok: 0,
  /** Not done: the batch did not complete, or the command failed. */
  failed: 1,
  /** A usage error: unknown command or option, a missing or malformed argument. */
  usage: 2,
  /** `--strict` and the completed batch has failed documents. */
  strictFailures: 3,
  /** `status`: the batch is stalled (nothing has happened to it for STALL_AFTER_SECONDS). */
  stalled: 4,
} as const;

/** What a command reads and writes besides its arguments; tests pass their own. */
export interface CliContext {
  /** The person's: progress and results, nothing else. */
  stdout: NodeJS.WriteStream;
  /** Warnings and errors (and the logs, with --verbose). */
  stderr: NodeJS.WriteStream;
  env: Record<string, string | undefined>;
  /** Where the person typed the command: paths on the command line are relative to it. */
  cwd: string;
  /** Set by a command's action; 0 unless it says otherwise. */
  exitCode: number;
}

/** Adds a command to the program: one file per command under commands/, listed in commands/index.ts. */
export type RegisterCommand = (program: Command, ctx: CliContext) => void;

/** Stops the command as a usage error (exit code 2), with the hint to its --help. */
export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, { exitCode: EXIT.usage, code: "docpipe.usage" });
  throw new Error("unreachable"); // command.error throws (exitOverride) or exits
}

export const resolvePath = (ctx: CliContext, p: string): string => path.resolve(ctx.cwd, p);

/** A path as the person can use it from where they are: relative when below their folder. */
export function displayPath(ctx: CliContext, p: string): string {
  const rel = path.relative(ctx.cwd, p);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : p;
}

/** The client of the ingestion API named by DOCPIPE_API_URL, with DOCPIPE_API_KEY. */
export const apiClient = (ctx: CliContext): ApiClient =>
  new ApiClient(ctx.env.DOCPIPE_API_URL ?? "http://127.0.0.1:8080", ctx.env.DOCPIPE_API_KEY);

/** The parser of an option that may be given more than once: `.option("--x <v>", "...", repeatable, [])`. */
export const repeatable = (value: string, previous: string[]): string[] => [...previous, value];

/** A parser for a positive number option: anything else is a usage error naming the option. */
export function positiveNumber(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!(n > 0)) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

/** A number option (0 and negative allowed where the command checks them). */
export function anyNumber(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    return n;
  };
}
