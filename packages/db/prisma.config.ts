import path from "node:path";
import { defineConfig } from "prisma/config";
import { MigrationAdapterFactory } from "./src/migration-adapter.js";

// The schema and migrations: the repository's prisma/, or the copy the migrate deployable ships
// (services/migrate sets DOCPIPE_PRISMA_DIR through migrate()'s `prismaDir`).
const prismaDir = process.env.DOCPIPE_PRISMA_DIR ?? path.resolve(import.meta.dirname, "../../prisma");

// `prisma generate` never connects, but the config needs a URL to build the adapter; the
// default is the local stack's database as `pnpm start` runs it.
process.env.DATABASE_URL ??= "postgresql://postgres:postgres@127.0.0.1:5432/docpipe";

// The JavaScript schema engine through the pg adapter: Prisma's native engines would be
// downloaded at install time, which many build machines (and ours) cannot do. The adapter
// needs four workarounds to migrate; see MigrationAdapterFactory.
export default defineConfig({
  engine: "js",
  experimental: { adapter: true },
  schema: path.join(prismaDir, "schema.prisma"),
  migrations: { path: path.join(prismaDir, "migrations") },
  adapter: async () => new MigrationAdapterFactory(process.env.DATABASE_URL ?? ""),
});
