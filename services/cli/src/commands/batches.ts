import type { Command } from "commander";
import { apiClient, EXIT, repeatable, usageError, type RegisterCommand } from "../context.js";
import { formatReport, formatRetry } from "../report-table.js";
import { watchBatch } from "../watch.js";
import { printableJson } from "../printable.js";

// The commands that talk to a running ingestion API ($DOCPIPE_API_URL, key in $DOCPIPE_API_KEY).

export const registerSubmit: RegisterCommand = (program, ctx) => {
  program
    .command("submit")
    .summary("submit a batch of S3 prefixes to a running ingestion API")
    .description("Submit a batch to the ingestion API at $DOCPIPE_API_URL (key in $DOCPIPE_API_KEY); prints its id.")
    .requiredOption("--bucket <bucket>", "the bucket holding the PDFs")
    .option("--prefix <prefix>", "a key prefix to list; repeat for more (\"\" is the whole bucket)", repeatable, [] as string[])
    .option("--label <label>", "the batch's label")
    .option("--skip-already-processed", "a PDF whose content was done in an earlier batch ends done without being processed again")
    .option("--watch", "then show progress until the batch is done")
    .option("--idempotency-key <key>", "the same key again (within 24 hours) answers the batch it first made instead of making another")
    .action(async (opts: { bucket: string; prefix: string[]; label?: string; skipAlreadyProcessed?: boolean; watch?: boolean; idempotencyKey?: string }, command: Command) => {
      if (opts.prefix.length === 0) usageError(command, "submit needs at least one --prefix");
      const api = apiClient(ctx);
      const { batchId } = await api.submit({
        bucket: opts.bucket,
        prefixes: opts.prefix,
        ...(opts.label !== undefined && { label: opts.label }),
        ...(opts.skipAlreadyProcessed && { skipAlreadyProcessed: true }),
      }, { ...(opts.idempotencyKey !== undefined && { idempotencyKey: opts.idempotencyKey }) });
      ctx.stdout.write(`${batchId}\n`);
      if (opts.watch) await watchBatch(api, batchId, { out: ctx.stdout });
    });
};

export const registerStatus: RegisterCommand = (program, ctx) => {
  program
    .command("status")
    .summary("live progress of a batch per stage until it is done")
    .description(
      "Show a batch's progress per stage until it is done, or until it stalls (no progress for the API's " +
        "STALL_AFTER_SECONDS): then it stops waiting. Exit 0 when it completed, 1 when it did not, 4 when it is stalled.",
    )
    .argument("<batch-id>")
    .action(async (batchId: string) => {
      const status = await watchBatch(apiClient(ctx), batchId, { out: ctx.stdout, stopWhenStalled: true });
      if (status.state === "completed") return;
      if (status.stalled && status.state !== "failed") {
        ctx.stderr.write(
          `batch ${batchId} is stalled: nothing has happened to it since ${status.stalled.since} (at stage ${status.stalled.stage}); ` +
            `a local run killed mid-batch is finished by docpipe resume, and on AWS the reconciler re-sends what was lost\n`,
        );
        ctx.exitCode = EXIT.stalled;
      } else ctx.exitCode = EXIT.failed;
    });
};

export const registerReport: RegisterCommand = (program, ctx) => {
  program
    .command("report")
    .summary("a batch's report")
    .description("Documents and pages processed, failures by reason, features, stage percentiles, throughput.")
    .argument("<batch-id>")
    .option("--json", "the report as JSON")
    .action(async (batchId: string, opts: { json?: boolean }) => {
      const report = await apiClient(ctx).report(batchId);
      ctx.stdout.write(`${opts.json ? printableJson(report) : formatReport(report)}\n`);
    });
};

export const registerRetryFailed: RegisterCommand = (program, ctx) => {
  program
    .command("retry-failed")
    .summary("re-run a batch's failed documents")
    .description(
      "Re-run the batch's failed documents (only their failed pages where that is enough), recorded as retries " +
        "in the audit trail; prints what was re-sent per failure code.",
    )
    .argument("<batch-id>")
    .option("--json", "the answer as JSON")
    .action(async (batchId: string, opts: { json?: boolean }) => {
      const result = await apiClient(ctx).retryFailed(batchId);
      ctx.stdout.write(`${opts.json ? printableJson(result) : formatRetry(result)}\n`);
    });
};
