import { listPlans, upsertPlan, type QuotaPeriod } from "@docpipe/api-keys";
import { Option, type Command } from "commander";
import type { LogOptions } from "../command-log.js";
import { anyNumber, type RegisterCommand } from "../context.js";
import { withDatabase, withDatabaseOptions } from "../database.js";
import { formatTable } from "../table.js";
import { printable } from "../printable.js";

interface SetOptions extends LogOptions {
  name: string;
  rate: number;
  burst: number;
  quota?: number;
  quotaPages?: number;
  period: QuotaPeriod;
}

export const registerPlans: RegisterCommand = (program, ctx) => {
  const plans = program.command("plans").summary("list and set usage plans").description("Usage plans: requests per second, burst, documents and pages per day or month.");
  const print = (text: string): void => void ctx.stdout.write(`${text}\n`);

  withDatabaseOptions(plans.command("list", { isDefault: true }).description("Every usage plan (the default).")).action(async (opts: LogOptions, command: Command) => {
    const all = await withDatabase(ctx, command, opts, listPlans);
    print(
      formatTable(
        ["name", "rate/s", "burst", "quota", "page quota", "period"],
        all.map((p) => [p.name, p.ratePerSecond, p.burst, p.quotaDocuments ?? "none", p.quotaPages ?? "none", p.quotaPeriod]),
      ),
    );
  });

  withDatabaseOptions(
    plans
      .command("set")
      .description("Create a usage plan, or change the plan of that name (its keys pick the change up on their next request).")
      .requiredOption("--name <name>", "the plan's name")
      .requiredOption("--rate <per-second>", "steady requests per second", anyNumber("--rate"))
      .requiredOption("--burst <requests>", "requests at once after a quiet spell", anyNumber("--burst"))
      .option("--quota <documents>", "documents per period (default: no quota)", anyNumber("--quota"))
      .option("--quota-pages <pages>", "pages per period, charged once per document when its page count is known (default: no quota)", anyNumber("--quota-pages"))
      .addOption(new Option("--period <period>", "the quota's period").choices(["day", "month"]).default("day")),
  ).action(async (opts: SetOptions, command: Command) => {
    const plan = await withDatabase(ctx, command, opts, (p) =>
      upsertPlan(p, { name: opts.name, ratePerSecond: opts.rate, burst: opts.burst, quotaDocuments: opts.quota ?? null, quotaPages: opts.quotaPages ?? null, quotaPeriod: opts.period }),
    );
    print(
      `plan ${printable(plan.name)}: ${plan.ratePerSecond}/s, burst ${plan.burst}, quota ${plan.quotaDocuments ?? "none"} documents ` +
        `and ${plan.quotaPages ?? "none"} pages per ${plan.quotaPeriod}`,
    );
  });
};
