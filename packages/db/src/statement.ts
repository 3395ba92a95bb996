import type pg from "pg";
import type { Prisma, PrismaClient } from "./generated/client.js";

/**
 * The statements every page makes (a stage's claim, its lookup, its outcome) skip Prisma: each
 * call of `$queryRaw` still serialises the statement and compiles a plan for it in Prisma's
 * WebAssembly query compiler (a profile of the page converter: a fifth of its main thread). They
 * run on the pg pool under the client instead, as named prepared statements, so Postgres parses
 * and plans each one once per connection rather than once per page.
 */

/** The pg pool under each client that `createPrisma` made. */
const pools = new WeakMap<object, pg.Pool>();

/** Prepared statements' names, by text. Bounded: a statement whose text varies should not fill every connection's cache. */
const names = new Map<string, string>();
const MAX_NAMED = 200;

/** Lets {@link queryRows} reach `client`'s pool. */
export function attachPool(client: PrismaClient, pool: pg.Pool): void {
  pools.set(client, pool);
}

/**
 * Runs one statement built with `Prisma.sql` and returns its rows. On a client from `createPrisma`
 * it goes straight to the client's pg pool as a prepared statement; in a transaction (or on a
 * client made otherwise, or after `$disconnect`) through `$queryRaw`, with the same result.
 *
 * Rows are as pg reads them, which for the types a statement here should return (int4, text,
 * bool, uuid, json and their arrays) is what `$queryRaw` returns too: cast anything else (int8,
 * numeric, timestamps) in the SQL. Errors are pg's (a `DatabaseError` with Postgres's `code`) on
 * the direct path and Prisma's otherwise; `isForeignKeyViolation` and `isTransient` know both.
 */
export async function queryRows<R>(db: PrismaClient | Prisma.TransactionClient, statement: Prisma.Sql): Promise<R[]> {
  const pool = pools.get(db);
  if (!pool || pool.ending || pool.ended) return db.$queryRaw<R[]>(statement);
  const text = statement.text;
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED) {
    name = `docpipe_${names.size + 1}`;
    names.set(text, name);
  }
  const result = await pool.query({ text, values: statement.values, ...(name !== undefined && { name }) });
  return result.rows as R[];
}
