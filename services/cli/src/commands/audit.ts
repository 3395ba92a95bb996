import { findRunningStack } from "@docpipe/local-stack";
import { createS3Client } from "@docpipe/queue";
import type { Command } from "commander";
import { AuditExportError, exportBatchAudit } from "../audit-export.js";
import type { LogOptions } from "../command-log.js";
import { usageError, type RegisterCommand } from "../context.js";
import { withDatabase, withDatabaseOptions } from "../database.js";
import { printable } from "../printable.js";

export const registerAudit: RegisterCommand = (program, ctx) => {
  const audit = program.command("audit").summary("the audit trail of finished batches: export it to S3, and prune it from Postgres");
  withDatabaseOptions(
    audit
      .command("export")
      .summary("export a finished batch's audit records to S3 as gzipped JSON lines, and with --prune delete them")
      .description(
        "Writes the audit records of <batch-id> (completed or failed) to s3://bucket/prefix/<batch-id>/audit-from-<first id>.jsonl.gz, " +
          "one record per line, then reads the object back and counts its records. With --prune, and only once the counts match, it " +
          "deletes exactly those records from Postgres, in one transaction. Safe to run again: a re-run rewrites the same object " +
          "until the prune has happened, and after it exports only records written since, if any. The batch's status and report " +
          "are unchanged (they read counters kept apart). Reaches S3 through AWS_REGION and AWS_ENDPOINT_URL_S3 (or the local stack's).",
      )
      .argument("<batch-id>", "a finished batch")
      .requiredOption("--to <s3-url>", "where to write, e.g. s3://my-archive/docpipe/audit/")
      .option("--prune", "delete the exported records from Postgres once the object is verified"),
  ).action(async (batchId: string, opts: LogOptions & { to: string; prune?: boolean }, command: Command) => {
    // The local stack's S3 when its database is the one used (no DATABASE_URL), as the services would reach it.
    const stackEnv = ctx.env.DATABASE_URL ? {} : ((await findRunningStack(opts.stack))?.env ?? {});
    const env: Record<string, string | undefined> = { ...stackEnv, ...ctx.env };
    const s3 = createS3Client({
      region: env.AWS_REGION ?? "us-east-1",
      forcePathStyle: env.S3_FORCE_PATH_STYLE === "true",
      ...(env.AWS_ENDPOINT_URL_S3 && { endpoint: env.AWS_ENDPOINT_URL_S3 }),
      // From the environment when it has them (the local stack's); otherwise the SDK's usual chain.
      ...(env.AWS_ACCESS_KEY_ID &&
        env.AWS_SECRET_ACCESS_KEY && { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } }),
    });
    try {
      const r = await withDatabase(ctx, command, opts, (prisma) => exportBatchAudit({ prisma, s3, batchId, to: opts.to, prune: opts.prune === true }));
      if (r.exported === 0) ctx.stdout.write(`batch ${printable(batchId)}: no audit records left to export\n`);
      else {
        ctx.stdout.write(`exported ${r.exported} audit records (${r.bytes} bytes) to ${printable(r.object ?? "")}\n`);
        ctx.stdout.write(opts.prune ? `pruned ${r.pruned} audit records from Postgres\n` : "nothing pruned (add --prune to delete them from Postgres)\n");
      }
    } catch (e) {
      if (e instanceof AuditExportError) usageError(command, e.message);
      throw e;
    } finally {
      s3.destroy();
    }
  });
};
