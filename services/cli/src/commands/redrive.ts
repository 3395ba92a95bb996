import type { Command } from "commander";
import { usageError, type RegisterCommand } from "../context.js";
import { redriveCommand, RedriveUsageError } from "../redrive.js";
import { printable } from "../printable.js";

export const registerRedrive: RegisterCommand = (program, ctx) => {
  program
    .command("redrive")
    .summary("move a dead-letter queue's messages back to its queue")
    .description(
      "Move the messages of <queue>'s dead-letter queue back to <queue> (or to --to), e.g. docpipe redrive single-page; " +
        "prints how many moved. docpipe redrive parked --to converted-image empties the parked queue. " +
        "Reaches SQS through AWS_REGION, AWS_ENDPOINT_URL_SQS and QUEUE_PREFIX.",
    )
    .argument("<queue>", "the queue whose dead letters to move (or parked)")
    .option("--to <queue>", "where to move them (default: <queue> itself)")
    .action(async (queue: string, opts: { to?: string }, command: Command) => {
      try {
        const r = await redriveCommand(queue, opts.to, ctx.env);
        ctx.stdout.write(`moved ${r.moved} messages from ${printable(r.sourceUrl)} to ${printable(r.destinationUrl)}\n`);
      } catch (e) {
        if (e instanceof RedriveUsageError) usageError(command, e.message);
        throw e;
      }
    });
};
