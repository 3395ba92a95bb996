// `pnpm migrate`: applies prisma/migrations to $DATABASE_URL (a one-off task on AWS).
import { migrate } from "../migrate.js";

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is required: the postgresql:// URL of the database to migrate");
  await migrate(url);
  console.error("migrations applied");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
