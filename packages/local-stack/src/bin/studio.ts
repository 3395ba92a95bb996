// `pnpm studio [stack name] [--port N]`: Prisma Studio on $DATABASE_URL when it is set (Aurora
// through a tunnel, say), else on a local stack's database.
import { parseArgs } from "node:util";
import { openStudio } from "../studio.js";

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { port: { type: "string" } }, allowPositionals: true });
  await openStudio({
    ...(process.env.DATABASE_URL && { databaseUrl: process.env.DATABASE_URL }),
    ...(positionals[0] !== undefined && { name: positionals[0] }),
    ...(values.port !== undefined && { port: Number(values.port) }),
  });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
