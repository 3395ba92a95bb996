import { openStudio } from "@docpipe/local-stack";
import { withCommandLog, withLogOptions, type LogOptions } from "../command-log.js";
import type { RegisterCommand } from "../context.js";

export const registerStudio: RegisterCommand = (program, ctx) => {
  withLogOptions(
    program
      .command("studio")
      .summary("Prisma Studio on $DATABASE_URL or the local database (same as pnpm studio)")
      .description(
        "Prisma Studio on $DATABASE_URL when it is set (Aurora through a tunnel: see the README), else on the local stack's database: batches, documents, pages, results and the audit trail. Ctrl-C stops it.",
      ),
  ).action(async (opts: LogOptions) => {
    await withCommandLog(ctx, "studio", opts, async (log) => {
      ctx.stdout.write("Prisma Studio on http://localhost:5555 (Ctrl-C stops it)\n");
      await openStudio({ ...(ctx.env.DATABASE_URL && { databaseUrl: ctx.env.DATABASE_URL }), name: opts.stack, logger: log.logger });
    });
  });
};
