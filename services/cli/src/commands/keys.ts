import { createApiKey, disableApiKey, listApiKeys, rotateApiKey } from "@docpipe/api-keys";
import type { Command } from "commander";
import type { LogOptions } from "../command-log.js";
import { anyNumber, repeatable, type RegisterCommand } from "../context.js";
import { withDatabase, withDatabaseOptions } from "../database.js";
import { formatTable } from "../table.js";
import { printable, printableJson } from "../printable.js";

// `docpipe keys ...`: API keys straight on the database (the functions the ingestion API uses),
// so an operator needs no key to make the first one.

interface CreateOptions extends LogOptions {
  name: string;
  owner: string;
  plan: string;
  bucket: string[];
  prefix: string[];
  json?: boolean;
}

export const registerKeys: RegisterCommand = (program, ctx) => {
  const keys = program.command("keys").summary("create, list, disable and rotate API keys").description("Manage the ingestion API's keys.");
  const print = (text: string): void => void ctx.stdout.write(`${text}\n`);

  withDatabaseOptions(
    keys
      .command("create")
      .description("Create an API key; prints the key once (only its SHA-256 is stored).")
      .requiredOption("--name <name>", "what the key is for")
      .requiredOption("--owner <owner>", "who owns it: keys of one owner see each other's batches")
      .requiredOption("--plan <plan>", "its usage plan (docpipe plans list)")
      .option("--bucket <bucket>", "a bucket it may submit; repeat for more; * allows any bucket", repeatable, [] as string[])
      .option("--prefix <prefix>", "a prefix it may submit; repeat for more; none allows any prefix", repeatable, [] as string[])
      .option("--json", "the created key as JSON"),
  ).action(async (opts: CreateOptions, command: Command) => {
    const k = await withDatabase(ctx, command, opts, (p) =>
      createApiKey(p, { name: opts.name, owner: opts.owner, plan: opts.plan, buckets: opts.bucket, prefixes: opts.prefix }),
    );
    if (opts.json) return print(printableJson(k));
    print(k.key);
    ctx.stderr.write(`key ${k.prefix} (id ${k.id}) for ${printable(k.owner)}, plan ${printable(k.plan)}. It is shown only now: store it.\n`);
  });

  withDatabaseOptions(
    keys.command("list").description("Every key: prefix, name, owner, plan, allow-list, enabled, last use.").option("--json", "as JSON"),
  ).action(async (opts: LogOptions & { json?: boolean }, command: Command) => {
    const all = await withDatabase(ctx, command, opts, listApiKeys);
    if (opts.json) return print(printableJson(all));
    const rows = all.map((k) => [
      k.id,
      k.prefix + (k.previousPrefix ? ` (+${k.previousPrefix} until ${k.previousExpiresAt!.toISOString()})` : ""),
      k.name,
      k.owner,
      k.plan,
      k.allowedBuckets.join(","),
      k.allowedPrefixes.join(",") || "*",
      k.enabled ? "yes" : "no",
      k.lastUsedAt?.toISOString() ?? "never",
    ]);
    print(formatTable(["id", "prefix", "name", "owner", "plan", "buckets", "prefixes", "enabled", "last used"], rows, { left: [1, 2, 3, 4, 5, 6, 7, 8] }));
  });

  withDatabaseOptions(
    keys.command("disable").description("Refuse the key from now on (403 api_key_disabled); its batches keep running.").argument("<id-or-prefix>"),
  ).action(async (target: string, opts: LogOptions, command: Command) => {
    const k = await withDatabase(ctx, command, opts, (p) => disableApiKey(p, target));
    print(`disabled ${k.prefix} (${k.id})`);
  });

  withDatabaseOptions(
    keys
      .command("rotate")
      .description("A new secret for the same key (same plan, quota and batches); the old one keeps working for --grace seconds.")
      .argument("<id-or-prefix>")
      .option("--grace <seconds>", "how long the old secret keeps working (default 86400; 0 = at once)", anyNumber("--grace"))
      .option("--json", "the new key as JSON"),
  ).action(async (target: string, opts: LogOptions & { grace?: number; json?: boolean }, command: Command) => {
    const k = await withDatabase(ctx, command, opts, (p) => rotateApiKey(p, target, opts.grace === undefined ? {} : { graceSeconds: opts.grace }));
    if (opts.json) return print(printableJson(k));
    print(k.key);
    ctx.stderr.write(`new secret for ${k.prefix} (id ${k.id}); the old ${k.previousPrefix} works until ${k.previousExpiresAt.toISOString()}\n`);
  });
};
