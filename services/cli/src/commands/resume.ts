import type { Command } from "commander";
import { withCommandLog, withLogOptions, type LogOptions } from "../command-log.js";
import { EXIT, resolvePath, usageError, type RegisterCommand } from "../context.js";
import { missingStack, resumeStack } from "../resume.js";

interface ResumeCommandOptions extends LogOptions {
  reportJson?: string;
}

export const registerResume: RegisterCommand = (program, ctx) => {
  withLogOptions(
    program
      .command("resume")
      .summary("finish the batches a killed local run left unfinished")
      .description(
        "Start the local stack (--stack) and every service again, re-send the message of every unfinished document, " +
          "chunk and page (the queues died with the process; the database and the objects did not), show progress " +
          "until the batches end and print their reports. Every unfinished batch of the stack, or the one named. " +
          "Exit 0 when they all completed, 1 when one did not.",
      )
      .argument("[batch-id]", "only this batch")
      .option("--report-json <file>", "also write the report as JSON, as run does (an array when several batches were resumed)"),
  ).action(async (batchId: string | undefined, opts: ResumeCommandOptions, command: Command) => {
    // Before the command log: a mistyped --stack must not leave a .local/<typo>/logs behind.
    const missing = missingStack(opts.stack);
    if (missing) usageError(command, missing);
    const result = await withCommandLog(ctx, "resume", opts, (log) =>
      resumeStack({
        logger: log.logger,
        out: ctx.stdout,
        stackName: opts.stack,
        ...(batchId !== undefined && { batchId }),
        ...(opts.reportJson !== undefined && { reportJson: resolvePath(ctx, opts.reportJson) }),
      }),
    );
    if (result.batches.some((b) => !b.completed)) ctx.exitCode = EXIT.failed;
  });
};
