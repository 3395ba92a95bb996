// The committed migrations, applied in order, build exactly the database prisma/schema.prisma
// describes. Migrations are often written by hand (the JS engine's `migrate dev` cannot run
// everywhere), so a column, index or default that is in one and not the other must fail here,
// not in an Aurora deploy.
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, test } from "../fixtures/index.js";

const dbPackage = path.resolve(import.meta.dirname, "../../packages/db");
const prismaCli = createRequire(path.join(dbPackage, "package.json")).resolve("prisma/build/index.js");

test("the migrations, applied in order, equal prisma/schema.prisma", { timeout: 180_000 }, async ({ databaseUrl }) => {
  // `migrate dev --create-only` against the migrated database writes the migration that would
  // bring it to the schema: an empty one when they agree. It runs on a copy, so nothing is
  // written into the repository.
  const prismaDir = await mkdtemp(path.join(tmpdir(), "docpipe-drift-"));
  try {
    await cp(path.resolve(import.meta.dirname, "../../prisma"), prismaDir, { recursive: true });
    const before = new Set(await readdir(path.join(prismaDir, "migrations")));
    // Prisma 6.19 fails with "null pointer passed to rust" while shutting its engine down after
    // --create-only (packages/db/README.md); the migration it wrote before that is complete.
    const run = spawnSync(process.execPath, [prismaCli, "migrate", "dev", "--create-only", "--name", "drift", "--config", path.join(dbPackage, "prisma.config.ts")], {
      cwd: dbPackage,
      env: { ...process.env, DATABASE_URL: databaseUrl, DOCPIPE_PRISMA_DIR: prismaDir, CHECKPOINT_DISABLE: "1", PRISMA_HIDE_UPDATE_MESSAGE: "1" },
      encoding: "utf8",
      timeout: 150_000,
    });
    const created = (await readdir(path.join(prismaDir, "migrations"))).filter((name) => !before.has(name));
    expect(created, `prisma migrate dev wrote no migration:\n${run.stdout}\n${run.stderr}`).toHaveLength(1);
    const sql = await readFile(path.join(prismaDir, "migrations", created[0] as string, "migration.sql"), "utf8");
    expect(sql.trim(), "the schema and the migrations differ by this SQL").toBe("-- This is an empty migration.");
  } finally {
    await rm(prismaDir, { recursive: true, force: true });
  }
});
