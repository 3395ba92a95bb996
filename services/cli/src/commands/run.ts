import { isPdfKey } from "@docpipe/api-contract";
import type { Command } from "commander";
import { withCommandLog, withLogOptions, type LogOptions } from "../command-log.js";
import { EXIT, positiveNumber, resolvePath, usageError, type RegisterCommand } from "../context.js";
import { listFiles, runFolder } from "../run.js";
import { printable } from "../printable.js";

interface RunCommandOptions extends LogOptions {
  reportJson?: string;
  label?: string;
  dpi?: number;
  strict?: boolean;
}

export const registerRun: RegisterCommand = (program, ctx) => {
  withLogOptions(
    program
      .command("run")
      .summary("the whole pipeline locally on a folder of PDFs")
      .description(
        "Start the local stack and every service in this process, process every PDF under <folder> (recursively), " +
          "show progress, print the report and stop. The JSON logs go to a file under .local/<stack>/logs (its path is " +
          "printed) unless --verbose. Exit 0 when the batch completed (failed documents are listed in the report; " +
          "with --strict they make the exit status 3), 1 when it did not.",
      )
      .argument("<folder>", "the folder to process")
      .option("--report-json <file>", "also write the report as JSON, each document with its sourcePath in the folder")
      .option("--label <label>", "the batch's label (default: the folder's name)")
      .option("--dpi <n>", "resolution of the PNGs (default 150)", positiveNumber("--dpi"))
      .option("--strict", "exit 3 when the batch completed with failed documents"),
  ).action(async (folder: string, opts: RunCommandOptions, command: Command) => {
    const dir = resolvePath(ctx, folder);
    const files = await listFiles(dir).catch(() => usageError(command, `${folder} is not a folder`));
    if (!files.some(isPdfKey)) {
      ctx.stderr.write(`warning: no PDF under ${printable(folder)} (${files.length} other file${files.length === 1 ? "" : "s"}): nothing to run\n`);
      return;
    }
    const result = await withCommandLog(ctx, "run", opts, (log) =>
      runFolder({
        folder: dir,
        logger: log.logger,
        out: ctx.stdout,
        stackName: opts.stack,
        ...(opts.label !== undefined && { label: opts.label }),
        ...(opts.reportJson !== undefined && { reportJson: resolvePath(ctx, opts.reportJson) }),
        ...(opts.dpi !== undefined && { dpi: opts.dpi }),
      }),
    );
    if (!result.completed) ctx.exitCode = EXIT.failed;
    else if (opts.strict && result.report.documents.failed > 0) ctx.exitCode = EXIT.strictFailures;
  });
};
