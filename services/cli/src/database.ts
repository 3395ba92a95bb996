import { KeyManagementError } from "@docpipe/api-keys";
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { findRunningStack, start } from "@docpipe/local-stack";
import type { Command } from "commander";
import { withCommandLog, withLogOptions, type LogOptions } from "./command-log.js";
import { usageError, type CliContext } from "./context.js";

/** Adds the options of a command that works on the database: the local stack to use when $DATABASE_URL is unset. */
export const withDatabaseOptions = (command: Command): Command =>
  withLogOptions(command).addHelpText(
    "after",
    "\nWorks on $DATABASE_URL, or on the running local stack (--stack), which is started for the command if it is not running.",
  );

/**
 * Runs `fn` on the database of $DATABASE_URL (as the admin task on AWS does), else of the local
 * stack: the running one, or one started for this command (its logs then go to the stack's log
 * file). A key or plan that does not exist, or a bad allow-list, is a usage error.
 */
export async function withDatabase<T>(ctx: CliContext, command: Command, opts: LogOptions, fn: (prisma: PrismaClient) => Promise<T>): Promise<T> {
  const onDatabase = async (databaseUrl: string) => {
    const prisma = createPrisma({ databaseUrl, poolMax: 2 });
    try {
      return await fn(prisma);
    } catch (e) {
      if (e instanceof KeyManagementError) usageError(command, `${e.code}: ${e.message}`);
      throw e;
    } finally {
      await prisma.$disconnect();
    }
  };
  // In the admin task, DB_* are set and the image's entrypoint turns them into DATABASE_URL. A
  // command run beside it (ECS Exec) without the entrypoint must not quietly start a local stack
  // inside the container and make a key nobody can use.
  if (!ctx.env.DATABASE_URL && ctx.env.DB_HOST) {
    usageError(command, "DB_HOST is set but DATABASE_URL is not: run the command through the image's entrypoint (docpipe-entrypoint node /app/dist/main.js ...)");
  }
  const databaseUrl = ctx.env.DATABASE_URL ?? (await findRunningStack(opts.stack))?.env?.DATABASE_URL;
  if (databaseUrl) return onDatabase(databaseUrl);
  return withCommandLog(ctx, command.name(), opts, async (log) => {
    const stack = await start({ name: opts.stack, ephemeral: false, handleSignals: false, logger: log.logger });
    try {
      return await onDatabase(stack.databaseUrl);
    } finally {
      await stack.stop();
    }
  });
}
