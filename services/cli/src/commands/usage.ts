import { usageReport } from "@docpipe/api-keys";
import type { Command } from "commander";
import type { LogOptions } from "../command-log.js";
import { positiveNumber, type RegisterCommand } from "../context.js";
import { withDatabase, withDatabaseOptions } from "../database.js";
import { formatTable } from "../table.js";
import { printableJson } from "../printable.js";

export const registerUsage: RegisterCommand = (program, ctx) => {
  withDatabaseOptions(
    program
      .command("usage")
      .summary("requests, throttled requests, batches, documents and pages per key per day")
      .description("Metering of every API key per UTC day, newest first.")
      .option("--days <n>", "how many days back (default 30)", positiveNumber("--days"))
      .option("--json", "as JSON"),
  ).action(async (opts: LogOptions & { days?: number; json?: boolean }, command: Command) => {
    const rows = await withDatabase(ctx, command, opts, (p) => usageReport(p, { days: opts.days ?? 30 }));
    let text: string;
    if (opts.json) text = printableJson(rows);
    else if (rows.length === 0) text = "no usage recorded";
    else {
      text = formatTable(
        ["day", "key", "name", "owner", "plan", "requests", "throttled", "batches", "documents", "pages"],
        rows.map((r) => [r.day, r.prefix, r.name, r.owner, r.plan, r.requests, r.throttled, r.batches, r.documents, r.pages]),
        { left: [1, 2, 3, 4] },
      );
    }
    ctx.stdout.write(`${text}\n`);
  });
};
