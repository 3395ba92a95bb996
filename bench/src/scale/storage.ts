import pg from "pg";

/** The pipeline's tables (heap, indexes and TOAST), whose size grows with pages. */
const TABLES = ["Document", "Chunk", "Page", "InferenceResult", "AuditEvent", "BatchCounter", "StageTiming", "Batch"];

export interface Storage {
  pages: number;
  total: number;
  tables: { name: string; bytes: number }[];
}

/** Bytes on disk of each pipeline table, for `pages` pages. */
export async function storagePerPage(databaseUrl: string, pages: number): Promise<Storage> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ name: string; bytes: string }>(
      `SELECT c.relname AS name, pg_total_relation_size(c.oid)::text AS bytes
       FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC`,
      [TABLES],
    );
    const tables = rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) }));
    return { pages, total: tables.reduce((s, t) => s + t.bytes, 0), tables };
  } finally {
    await db.end();
  }
}
