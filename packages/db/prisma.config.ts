import path from "node:path";
import { PrismaPg } from "@prisma/adapter-pg";
import { defineConfig } from "prisma/config";
import { CatalogAsTextClient } from "./src/pg-catalog-client.js";

const root = path.resolve(import.meta.dirname, "../..");

// `prisma generate` never connects, but without a URL it falls back to downloading a query
// engine; the default is the local stack's database.
process.env.DATABASE_URL ??= "postgresql://postgres:postgres@127.0.0.1:5432/docpipe";

// The JavaScript schema engine through the pg adapter: Prisma's native engines would be
// downloaded at install time, which many build machines (and ours) cannot do.
export default defineConfig({
  engine: "js",
  experimental: { adapter: true },
  schema: path.join(root, "prisma/schema.prisma"),
  migrations: { path: path.join(root, "prisma/migrations") },
  adapter: async () =>
    new PrismaPg({ connectionString: process.env.DATABASE_URL, Client: CatalogAsTextClient }),
});
