#!/usr/bin/env node
import { createLogger } from "@docpipe/queue";
import path from "node:path";
import { parseArgs } from "node:util";
import { ApiClient, ApiError } from "./api.js";
import { ADMIN_USAGE, adminCommand, AdminUsageError } from "./keys.js";
import { redriveCommand, RedriveUsageError } from "./redrive.js";
import { formatReport, formatRetry } from "./report-table.js";
import { runFolder, watchBatch } from "./run.js";

const USAGE = `usage: docpipe <command> [options]

commands:
  run <folder> [--report-json FILE] [--label L] [--dpi N] [--strict] [--stack NAME]
        start the local stack and every service, process every PDF under <folder>,
        print the report and stop. Exit 0 when the batch completed (failed documents are
        listed in the report; with --strict they make the exit status 3).
        --stack NAME names the local stack (its data stays under .local/NAME; default docpipe).
  submit --bucket B --prefix P [--prefix P2 ...] [--label L] [--skip-already-processed] [--watch]
        submit a batch to a running ingestion API ($DOCPIPE_API_URL). --skip-already-processed:
        a PDF whose content was done in an earlier batch ends done without being processed again.
  status <batch-id>     live progress per stage until the batch is done.
  report <batch-id> [--json]
                        documents, pages, failures by reason, features, stage timings.
  retry-failed <batch-id> [--json]
                        re-run the batch's failed documents (only their failed pages where
                        that is enough); prints what was re-sent per failure code.
  studio                Prisma Studio on the local database (same as pnpm studio).
${ADMIN_USAGE}
  redrive <queue> [--to <queue>]
                        move the messages of <queue>'s dead-letter queue back to <queue> (or to
                        --to), e.g. docpipe redrive single-page; prints how many moved.
                        docpipe redrive parked --to converted-image empties the parked queue.
                        Reaches SQS through AWS_REGION, AWS_ENDPOINT_URL_SQS and QUEUE_PREFIX.

environment: DOCPIPE_API_URL (default http://127.0.0.1:8080), DOCPIPE_API_KEY, LOG_LEVEL (default warn)`;

/** Paths on the command line are relative to where the person typed them, not to the repo root pnpm runs in. */
const fromCwd = (p: string) => path.resolve(process.env.INIT_CWD ?? process.cwd(), p);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "keys" || command === "plans" || command === "usage") return adminCommand(command, rest);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      "report-json": { type: "string" },
      label: { type: "string" },
      stack: { type: "string" },
      dpi: { type: "string" },
      strict: { type: "boolean" },
      bucket: { type: "string" },
      prefix: { type: "string", multiple: true },
      watch: { type: "boolean" },
      "skip-already-processed": { type: "boolean" },
      json: { type: "boolean" },
      to: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (!command || values.help || command === "help") {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const api = new ApiClient(process.env.DOCPIPE_API_URL ?? "http://127.0.0.1:8080", process.env.DOCPIPE_API_KEY);
  const logger = createLogger({ service: "docpipe", level: process.env.LOG_LEVEL ?? "warn" });

  switch (command) {
    case "run": {
      const folder = positionals[0];
      if (!folder) throw new UsageError("run needs a folder: docpipe run <folder>");
      const dpi = values.dpi === undefined ? undefined : Number(values.dpi);
      if (dpi !== undefined && !(dpi > 0)) throw new UsageError("--dpi must be a positive number");
      const result = await runFolder({
        folder: fromCwd(folder),
        logger,
        ...(values.label !== undefined && { label: values.label }),
        ...(values.stack !== undefined && { stackName: values.stack }),
        ...(values["report-json"] !== undefined && { reportJson: fromCwd(values["report-json"]) }),
        ...(dpi !== undefined && { dpi }),
      });
      if (!result.completed) return 1;
      return values.strict && result.report.documents.failed > 0 ? 3 : 0;
    }
    case "submit": {
      if (!values.bucket || !values.prefix?.length) throw new UsageError("submit needs --bucket and at least one --prefix");
      const { batchId } = await api.submit({
        bucket: values.bucket,
        prefixes: values.prefix,
        ...(values.label !== undefined && { label: values.label }),
        ...(values["skip-already-processed"] && { skipAlreadyProcessed: true }),
      });
      console.log(batchId);
      if (values.watch) await watchBatch(api, batchId, {});
      return 0;
    }
    case "status": {
      const id = positionals[0];
      if (!id) throw new UsageError("status needs a batch id");
      const s = await watchBatch(api, id, {});
      return s.state === "completed" ? 0 : 1;
    }
    case "report": {
      const id = positionals[0];
      if (!id) throw new UsageError("report needs a batch id");
      const report = await api.report(id);
      console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
      return 0;
    }
    case "retry-failed": {
      const id = positionals[0];
      if (!id) throw new UsageError("retry-failed needs a batch id");
      const r = await api.retryFailed(id);
      console.log(values.json ? JSON.stringify(r, null, 2) : formatRetry(r));
      return 0;
    }
    case "studio": {
      const { openStudio } = await import("@docpipe/local-stack");
      await openStudio();
      return 0;
    }
    case "redrive": {
      const queue = positionals[0];
      if (!queue) throw new UsageError("redrive needs a queue: docpipe redrive <queue> [--to <queue>]");
      try {
        const r = await redriveCommand(queue, values.to, process.env);
        console.log(`moved ${r.moved} messages from ${r.sourceUrl} to ${r.destinationUrl}`);
      } catch (e) {
        if (e instanceof RedriveUsageError) throw new UsageError(e.message);
        throw e;
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

class UsageError extends Error {
  override readonly name = "UsageError";
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) console.error(`${e.message}\n\n${USAGE}`);
    else if (e instanceof AdminUsageError) console.error(`docpipe: ${e.message}`);
    else if (e instanceof ApiError) console.error(`docpipe: ${e.code}: ${e.message}`);
    else console.error("docpipe:", e instanceof Error ? e.message : e);
    process.exit(e instanceof UsageError || e instanceof AdminUsageError ? 2 : 1);
  },
);
