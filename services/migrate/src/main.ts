// The migrate task (ECS runs it before every deployment; compose before the services): applies the
// committed migrations to DATABASE_URL with `prisma migrate deploy` and exits 0, or 1 with the reason.
import { existsSync } from "node:fs";
import path from "node:path";
import { migrate, MigrationError } from "@docpipe/db";
import { z } from "zod";

const configSchema = z.object({
  DATABASE_URL: z
    .string({ error: "DATABASE_URL is required: the postgresql:// URL of the database to migrate" })
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must start with postgres:// or postgresql://"),
});

export function loadConfig(env: Record<string, string | undefined> = process.env): z.infer<typeof configSchema> {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join("\n"));
  return parsed.data;
}

async function main(): Promise<void> {
  const config = loadConfig();
  // The build copies prisma/ (schema and migrations) next to this file; from the workspace
  // (tsx) there is no copy and @docpipe/db finds the repository's own.
  const bundled = path.join(import.meta.dirname, "prisma");
  const output = await migrate(config.DATABASE_URL, existsSync(bundled) ? { prismaDir: bundled } : {});
  process.stdout.write(output);
}

main().catch((e: unknown) => {
  if (e instanceof MigrationError) process.stderr.write(e.output);
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
