import { Command, CommanderError } from "commander";
import { Writable } from "node:stream";
import { commands } from "./commands/index.js";
import { EXIT, type CliContext } from "./context.js";
import { printableLines } from "./printable.js";

const MORE_HELP = `
Exit status: ${EXIT.ok} done (a batch that completed, even with failed documents), ${EXIT.failed} not done (the batch did not
complete, or the command failed), ${EXIT.usage} usage error (unknown command or option, missing argument),
${EXIT.strictFailures} run --strict and some documents failed, ${EXIT.stalled} status found the batch stalled.

Environment: DOCPIPE_API_URL (default http://127.0.0.1:8080) and DOCPIPE_API_KEY for the API commands,
DATABASE_URL for keys, plans and usage (else the local stack), LOG_LEVEL for the log file (default info).
docpipe <command> --help shows a command's options.`;

/** The program with every command; its output goes to the context's streams, and it throws instead of exiting. */
export function createProgram(ctx: CliContext): Command {
  const program = new Command("docpipe")
    .description("docpipe turns folders and S3 prefixes of PDFs into one PNG per page, scored by a model, with an audit trail.")
    .exitOverride()
    // commander's messages quote the arguments as typed: escaped like everything else we print.
    .configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(printableLines(s)) })
    .showHelpAfterError("(docpipe --help lists the commands; docpipe <command> --help their options)")
    .addHelpText("after", MORE_HELP);
  for (const register of commands) register(program, ctx);
  return program;
}

/**
 * Runs one command line (without `node` and the script) and resolves with its exit status.
 * Usage errors are printed and resolve to 2; any other failure rejects, for the caller to print.
 */
export async function execute(argv: readonly string[], io: Partial<Omit<CliContext, "exitCode">> = {}): Promise<number> {
  const ctx: CliContext = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.env.INIT_CWD ?? process.cwd(),
    exitCode: EXIT.ok,
  };
  try {
    await createProgram(ctx).parseAsync([...argv], { from: "user" });
    return ctx.exitCode;
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // Help or version asked for; anything else commander (or usageError) has already printed.
    return e.code === "commander.helpDisplayed" || e.code === "commander.version" ? EXIT.ok : EXIT.usage;
  }
}

/** A stream that hands each line written to it to `line`. */
function lineStream(line: (l: string) => void): NodeJS.WriteStream {
  let pending = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const parts = (pending + chunk.toString("utf8")).split("\n");
      pending = parts.pop()!;
      for (const p of parts) line(p);
      cb();
    },
  });
  return Object.assign(stream, { isTTY: false }) as unknown as NodeJS.WriteStream;
}

/**
 * `docpipe keys|plans|usage ...` in this process, each line of its output handed to `out`:
 * resolves with the exit status, rejects with the message a person would see on a usage error.
 */
export async function adminCommand(command: "keys" | "plans" | "usage", argv: string[], out: (line: string) => void): Promise<number> {
  const errors: string[] = [];
  const code = await execute([command, ...argv], { stdout: lineStream(out), stderr: lineStream((l) => errors.push(l)) });
  if (code === EXIT.usage) throw new Error(errors.join("\n"));
  return code;
}
