import { openStudio } from "@docpipe/local-stack";
import { withCommandLog, withLogOptions, type LogOptions } from "../command-log.js";
import type { RegisterCommand } from "../context.js";

export const registerStudio: RegisterCommand = (program, ctx) => {
  withLogOptions(
    program
      .command("studio")
      .summary("Prisma Studio on the local database (same as pnpm studio)")
      .description("Prisma Studio on the local stack's database: batches, documents, pages, results and the audit trail. Ctrl-C stops it."),
  ).action(async (opts: LogOptions) => {
    await withCommandLog(ctx, "studio", opts, async (log) => {
      ctx.stdout.write("Prisma Studio on http://localhost:5555 (Ctrl-C stops it)\n");
      await openStudio({ name: opts.stack, logger: log.logger });
    });
  });
};
