// Builds the batch of `pnpm bench:scale` in Postgres with generate_series: the rows the pipeline
// writes for SCALE_PAGES pages, in minutes. The audit records, results and page facts are copied
// from the real run on the samples (same workers, details and sizes), so the storage per page
// measured here is what the code writes.
import pg from "pg";

/** Share of documents per size class, by page count (per 1000 documents). */
const SIZES = `CASE
  WHEN d.ord % 1000 < 400 THEN 1
  WHEN d.ord % 1000 < 750 THEN 2 + (d.ord * 7) % 9
  WHEN d.ord % 1000 < 950 THEN 11 + (d.ord * 13) % 90
  WHEN d.ord % 1000 < 999 THEN 101 + (d.ord * 31) % 900
  ELSE 1001 + (d.ord * 17) % 9000 END`;
/** Mean pages per document of {@link SIZES}, to size the series. */
const MEAN_PAGES = 46;

export interface BuildOptions {
  databaseUrl: string;
  pages: number;
  /** The samples batch whose rows serve as templates. */
  templateBatchId: string;
  /** Owner of the batch, so the API key of the bench can read it. */
  owner: string;
  bucket: string;
  /** Documents per statement: the unit of progress. @defaultValue 5000 */
  slice?: number;
  log?: (line: string) => void;
}

export interface BuiltBatch {
  batchId: string;
  pages: number;
  documents: number;
  auditEvents: number;
  seconds: number;
}

/** An SQS-message-id-shaped string (36 characters, as the real ones are), cheaper than gen_random_uuid(). */
const messageId = (n: string) => `overlay('00000000-0000-4000-8000-000000000000' placing lpad(to_hex(${n}), 12, '0') from 25)`;

/** Connections loading slices at once. */
const LOADERS = 2;

/** A connection for bulk loading: no triggers and no foreign-key checks (counters are recounted at the end), room to sort. */
async function bulkSession(databaseUrl: string): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  await db.query(`SET session_replication_role = replica; SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 2;
                  SET work_mem = '256MB'; SET temp_buffers = '256MB'`);
  return db;
}

/** Tables the batch fills; their secondary indexes are dropped while loading and built afterwards. */
const BULK_TABLES = ["Document", "Chunk", "Page", "InferenceResult", "AuditEvent"];

export async function buildBatch(opts: BuildOptions): Promise<BuiltBatch> {
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  const db = await bulkSession(opts.databaseUrl);
  try {
    const { rows: [batch] = [] } = await db.query<{ id: string }>(
      `INSERT INTO "Batch" (id, label, bucket, prefixes, state, "listingPrefix", "listedAt", owner, "createdAt", "updatedAt")
       VALUES (gen_random_uuid(), 'bench-scale', $1, ARRAY['bench-scale/'], 'processing', 1, now(), $2, now() - interval '2 hours', now())
       RETURNING id`,
      [opts.bucket, opts.owner],
    );
    const batchId = batch!.id;
    await templates(db, opts.templateBatchId);
    const documents = await planDocuments(db, opts.pages);
    await db.query(`UPDATE "Batch" SET "documentCount" = $2 WHERE id = $1`, [batchId, documents]);
    const indexes = await dropIndexes(db);
    log(`scale: ${documents} documents planned for ${opts.pages} pages; loading…`);

    // Slices go to LOADERS connections at once: one INSERT … SELECT runs on one core.
    const slice = opts.slice ?? 5000;
    let next = 1;
    let loaded = 0;
    await Promise.all(
      Array.from({ length: LOADERS }, async () => {
        const loader = await bulkSession(opts.databaseUrl);
        try {
          while (next <= documents) {
            const from = next;
            const to = Math.min(documents, from + slice - 1);
            next = to + 1;
            await loadSlice(loader, batchId, opts.bucket, from, to, opts.pages);
            loaded += to - from + 1;
            log(`scale: loaded ${loaded}/${documents} documents (${((loaded / documents) * 100).toFixed(0)} %) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
          }
        } finally {
          await loader.end();
        }
      }),
    );
    log(`scale: load time per statement kind: ${[...loadSeconds].map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(", ")}`);
    let t = performance.now();
    const lap = () => {
      const s = (performance.now() - t) / 1000;
      t = performance.now();
      return `${s.toFixed(0)} s`;
    };
    for (const def of indexes) await db.query(def);
    log(`scale: built ${indexes.length} indexes in ${lap()}`);
    await db.query("SET session_replication_role = origin");
    await db.query("SELECT docpipe_recount_batch($1, true)", [batchId]);
    log(`scale: counted the batch in ${lap()}`);
    for (const table of BULK_TABLES) await db.query(`VACUUM (ANALYZE) "${table}"`);
    log(`scale: vacuumed and analysed in ${lap()}`);
    const { rows: [counts] = [] } = await db.query<{ pages: string; events: string }>(
      `SELECT (SELECT sum(value) FROM "BatchCounter" WHERE "batchId" = $1 AND name = 'pages.rows')::text AS pages,
              (SELECT count(*) FROM "AuditEvent" WHERE "batchId" = $1)::text AS events`,
      [batchId],
    );
    await db.query("DROP TABLE bench_docs, bench_tpl, bench_result_tpl");
    return { batchId, pages: Number(counts?.pages ?? 0), documents, auditEvents: Number(counts?.events ?? 0), seconds: (performance.now() - t0) / 1000 };
  } finally {
    await db.end();
  }
}

/** One template row per (stage, outcome) from the samples run, and synthetic ones for outcomes it did not have. */
async function templates(db: pg.Client, batchId: string): Promise<void> {
  await db.query(
    `CREATE UNLOGGED TABLE bench_tpl AS
     SELECT DISTINCT ON (stage, outcome) stage, outcome, "workerId" AS worker, details
     FROM "AuditEvent" WHERE "batchId" = $1 AND "documentId" IS NOT NULL ORDER BY stage, outcome, id`,
    [batchId],
  );
  // Outcomes a clean run has no example of: failures, dead letters.
  await db.query(
    `INSERT INTO bench_tpl
     SELECT s.stage, o.outcome, coalesce((SELECT worker FROM bench_tpl t WHERE t.stage = s.stage LIMIT 1), 'bench/' || s.stage), NULL
     FROM (VALUES ('convert'), ('inference'), ('classify'), ('split-small'), ('split-large'), ('ingestion')) s(stage),
          (VALUES ('started'::"AuditOutcome"), ('succeeded'), ('failed'), ('dead_lettered')) o(outcome)
     WHERE NOT EXISTS (SELECT 1 FROM bench_tpl t WHERE t.stage = s.stage AND t.outcome = o.outcome)`,
  );
  await db.query(
    `CREATE UNLOGGED TABLE bench_result_tpl AS
     SELECT DISTINCT ON (r.features) r.features, r."modelName", r."modelVersion", r.output, r."latencyMs"
     FROM "InferenceResult" r JOIN "Document" d ON d.id = r."documentId" WHERE d."batchId" = $1 ORDER BY r.features`,
    [batchId],
  );
}

/**
 * The documents: sizes from {@link SIZES} until the pages add up; 0.5 % fail (one broken page),
 * 2.5 % are still being worked on (half their pages done, a quarter rendered), the rest are done.
 */
async function planDocuments(db: pg.Client, pages: number): Promise<number> {
  await db.query(
    `CREATE UNLOGGED TABLE bench_docs AS
     WITH sized AS (SELECT d.ord, ${SIZES} AS pages FROM generate_series(1, $2::bigint) AS d(ord)),
     summed AS (SELECT ord, pages, sum(pages) OVER (ORDER BY ord) AS upto FROM sized)
     SELECT ord::int, gen_random_uuid() AS id, (least(upto, $1::bigint) - (upto - pages))::int AS pages,
            (upto - pages)::bigint AS first_global,
            CASE WHEN ord % 199 = 7 THEN 'failed' WHEN ord % 40 = 3 THEN 'open' ELSE 'done' END AS fate
     FROM summed WHERE upto - pages < $1::bigint`,
    [pages, Math.ceil((pages / MEAN_PAGES) * 1.5) + 1000],
  );
  await db.query("ALTER TABLE bench_docs ADD PRIMARY KEY (ord)");
  const { rows: [r] = [] } = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM bench_docs");
  return Number(r?.n ?? 0);
}

/** Drops the secondary (non-constraint) indexes of the bulk tables and returns their definitions. */
async function dropIndexes(db: pg.Client): Promise<string[]> {
  const { rows } = await db.query<{ name: string; def: string }>(
    `SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
     FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
     WHERE t.relname = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`,
    [BULK_TABLES],
  );
  for (const r of rows) await db.query(`DROP INDEX ${r.name}`);
  return rows.map((r) => r.def);
}

/**
 * Documents `from`..`to` with their chunks, pages, results and audit trail. Page-level facts are
 * spread deterministically by a hash of the page's position in the batch: 2 % of renders are
 * retried once, 1 % take five seconds longer, 1 % are degraded.
 */
/** Seconds spent per kind of statement while loading, for the build's own profile. */
export const loadSeconds = new Map<string, number>();

async function timedQuery(db: pg.Client, what: string, sql: string, params: unknown[]): Promise<void> {
  const t = performance.now();
  await db.query(sql, params);
  loadSeconds.set(what, (loadSeconds.get(what) ?? 0) + (performance.now() - t) / 1000);
}

async function loadSlice(db: pg.Client, batchId: string, bucket: string, from: number, to: number, total: number): Promise<void> {
  const span = "interval '2 hours'";
  const at = (global: string) => `(now() - ${span} + ${span} * (${global})::float8 / ${total})`;
  const docClass = `CASE WHEN d.pages = 1 THEN 'single' WHEN d.pages <= 10 THEN 'small' ELSE 'large' END`;
  await timedQuery(db, "documents", 
    `INSERT INTO "Document" (id, "batchId", bucket, key, size, etag, "contentHash", state, class, "pageCount", "failureCode", "failureReason", "createdAt", "updatedAt", "completedAt")
     SELECT d.id, $1, $2, 'bench-scale/docs/' || lpad(d.ord::text, 8, '0') || '.pdf', 40000 + d.pages * 55000::bigint, md5(d.id::text),
            encode(sha256(d.id::text::bytea), 'hex'),
            (CASE d.fate WHEN 'done' THEN 'done' WHEN 'failed' THEN 'failed' ELSE (CASE WHEN d.ord % 2 = 0 THEN 'converting' ELSE 'inferring' END) END)::"DocumentState",
            (${docClass})::"DocumentClass", d.pages,
            CASE WHEN d.fate = 'failed' THEN 'render_failed' END,
            CASE WHEN d.fate = 'failed' THEN 'page 1: cannot be rendered: syntax error in content stream' END,
            ${at("d.first_global")}, ${at("d.first_global + d.pages")}, CASE WHEN d.fate <> 'open' THEN ${at("d.first_global + d.pages")} END
     FROM bench_docs d WHERE d.ord BETWEEN $3 AND $4`,
    [batchId, bucket, from, to],
  );
  await timedQuery(db, "chunks", 
    `INSERT INTO "Chunk" (id, "documentId", "firstPage", "lastPage", key, "createdAt")
     SELECT gen_random_uuid(), d.id, c.first, least(c.first + 9, d.pages),
            'batches/' || $1 || '/documents/' || d.id || '/chunks/' || c.first || '-' || least(c.first + 9, d.pages) || '.pdf', ${at("d.first_global")}
     FROM bench_docs d, generate_series(1, d.pages, 10) AS c(first)
     WHERE d.ord BETWEEN $2 AND $3 AND d.pages > 10`,
    [batchId, from, to],
  );
  // The slice's pages, once: their ids, states (failed documents' first page failed; open
  // documents half done, a quarter rendered) and a hash that spreads facts over them.
  await timedQuery(db, "pages", `CREATE TEMP TABLE IF NOT EXISTS slice_pages (id uuid, doc uuid, n int, state text, g bigint, h bigint)`, []);
  await timedQuery(db, "pages", "TRUNCATE slice_pages", []);
  await timedQuery(db, "pages",
    `INSERT INTO slice_pages
     SELECT gen_random_uuid(), d.id, n,
            CASE WHEN d.fate = 'failed' AND n = 1 THEN 'failed'
                 WHEN d.fate <> 'open' OR n <= d.pages / 2 THEN 'done'
                 WHEN n <= (d.pages * 3) / 4 THEN 'rendered'
                 ELSE 'pending' END,
            d.first_global + n, abs(hashint8(d.first_global + n))
     FROM bench_docs d, generate_series(1, d.pages) AS n
     WHERE d.ord BETWEEN $1 AND $2`,
    [from, to],
  );
  await timedQuery(db, "pages",
    `INSERT INTO "Page" (id, "documentId", "pageNumber", state, "pdfKey", "imageKey", width, height, dpi, "renderMs", engine, degraded, "degradedReason", warnings,
                         "failureCode", "failureReason", "createdAt", "updatedAt")
     SELECT p.id, p.doc, p.n, p.state::"PageState",
            'batches/' || $1 || '/documents/' || p.doc || '/pages/' || p.n || '.pdf',
            CASE WHEN p.state IN ('rendered', 'done') THEN 'batches/' || $1 || '/documents/' || p.doc || '/images/' || p.n || '.png' END,
            CASE WHEN p.state IN ('rendered', 'done') THEN 1275 END, CASE WHEN p.state IN ('rendered', 'done') THEN 1650 END,
            CASE WHEN p.state IN ('rendered', 'done') THEN 150 END,
            CASE WHEN p.state IN ('rendered', 'done') THEN 60 + p.h % 900 END,
            CASE WHEN p.state IN ('rendered', 'done') THEN (CASE WHEN p.h % 200 = 9 THEN 'pdfium' ELSE 'mupdf' END) END,
            p.state IN ('rendered', 'done') AND p.h % 100 = 7,
            CASE WHEN p.state IN ('rendered', 'done') AND p.h % 100 = 7 THEN (CASE WHEN p.h % 300 = 7 THEN 'jbig2' ELSE 'zlib error' END) END,
            CASE WHEN p.state IN ('rendered', 'done') AND p.h % 100 = 7 THEN ARRAY['zlib error: invalid distance too far back'] ELSE ARRAY[]::text[] END,
            CASE WHEN p.state = 'failed' THEN 'syntax_error' END,
            CASE WHEN p.state = 'failed' THEN 'page 1 cannot be rendered: syntax error in content stream' END,
            ${at("p.g")}, ${at("p.g")}
     FROM slice_pages p`,
    [batchId],
  );
  // One blank page in ten.
  await timedQuery(db, "results",
    `INSERT INTO "InferenceResult" (id, "pageId", "documentId", "pageNumber", "modelName", "modelVersion", output, features, "latencyMs", "createdAt")
     SELECT gen_random_uuid(), p.id, p.doc, p.n, t."modelName", t."modelVersion", t.output, t.features, t."latencyMs", ${at("p.g")}
     FROM slice_pages p
     JOIN bench_result_tpl t ON t.features = CASE WHEN p.h % 10 = 0 THEN ARRAY['blank'] ELSE ARRAY['ink'] END
     WHERE p.state = 'done'`,
    [],
  );
  await auditDocuments(db, batchId, from, to, at);
  await auditPages(db, batchId, at);
}

/** Per document: listed, classified, split into chunks (large) and chunks into pages (small and large). */
async function auditDocuments(db: pg.Client, batchId: string, from: number, to: number, at: (g: string) => string): Promise<void> {
  await timedQuery(db, "audit: documents", 
    `INSERT INTO "AuditEvent" ("batchId", "documentId", "pageNumber", stage, outcome, "workerId", attempt, "durationMs", "messageId", details, "createdAt")
     SELECT $1, d.id, NULL, t.stage, t.outcome, t.worker, 1, e.ms, CASE WHEN e.stage <> 'ingestion' THEN gen_random_uuid()::text END, t.details, ${at("d.first_global")}
     FROM bench_docs d
     CROSS JOIN LATERAL (VALUES
       ('ingestion', 'succeeded', NULL::int, true),
       ('classify', 'started', NULL, true),
       ('classify', 'succeeded', 40 + abs(hashint8(d.first_global)) % 300, true),
       ('split-large', 'started', NULL, d.pages > 10),
       ('split-large', 'succeeded', 200 + d.pages * 3, d.pages > 10)
     ) AS e(stage, outcome, ms, applies)
     JOIN bench_tpl t ON t.stage = e.stage AND t.outcome = e.outcome::"AuditOutcome"
     WHERE d.ord BETWEEN $2 AND $3 AND e.applies`,
    [batchId, from, to],
  );
  await timedQuery(db, "audit: chunks", 
    `INSERT INTO "AuditEvent" ("batchId", "documentId", "pageNumber", stage, outcome, "workerId", attempt, "durationMs", "messageId", details, "createdAt")
     SELECT $1, d.id, NULL, t.stage, t.outcome, t.worker, 1, e.ms, gen_random_uuid()::text,
            t.details || jsonb_build_object('firstPage', c.first, 'lastPage', least(c.first + 9, d.pages)), ${at("d.first_global + c.first")}
     FROM bench_docs d, generate_series(1, d.pages, 10) AS c(first)
     CROSS JOIN LATERAL (VALUES ('started', NULL::int), ('succeeded', 150 + abs(hashint8(d.first_global + c.first)) % 600)) AS e(outcome, ms)
     JOIN bench_tpl t ON t.stage = 'split-small' AND t.outcome = e.outcome::"AuditOutcome"
     WHERE d.ord BETWEEN $2 AND $3 AND d.pages > 1`,
    [batchId, from, to],
  );
}

/**
 * Per page: convert (retried once for 2 % of pages; four failed attempts and a dead letter for a
 * broken page) and, once rendered, inference.
 */
async function auditPages(db: pg.Client, batchId: string, at: (g: string) => string): Promise<void> {
  await timedQuery(db, "audit: pages", 
    `INSERT INTO "AuditEvent" ("batchId", "documentId", "pageNumber", stage, outcome, "workerId", attempt, "durationMs", "errorCode", "errorMessage", "messageId", details, "createdAt")
     SELECT $1, p.doc, p.n, t.stage, t.outcome, t.worker, e.attempt, e.ms, e.code, e.message, ${messageId("p.g * 8 + e.k")}, t.details, ${at("p.g")}
     FROM slice_pages p
     CROSS JOIN LATERAL (VALUES
       (0, 'convert', 'started', 1, NULL::int, NULL, NULL, p.state <> 'pending' OR p.h % 3 = 0),
       (1, 'convert', 'failed', 1, 60000, 'render_timeout', 'page timed out after 60000 ms', p.state <> 'pending' AND (p.h % 50 = 0 OR p.state = 'failed')),
       (2, 'convert', 'started', 2, NULL, NULL, NULL, p.state <> 'pending' AND (p.h % 50 = 0 OR p.state = 'failed')),
       (3, 'convert', 'succeeded', CASE WHEN p.h % 50 = 0 THEN 2 ELSE 1 END, 80 + (p.h / 7) % 1200 + CASE WHEN p.h % 100 = 1 THEN 5000 ELSE 0 END, NULL, NULL, p.state IN ('rendered', 'done')),
       (4, 'convert', 'failed', 2, 300, 'syntax_error', 'page 1 cannot be rendered: syntax error in content stream', p.state = 'failed'),
       (5, 'convert', 'dead_lettered', 2, NULL, 'syntax_error', 'page 1 cannot be rendered: syntax error in content stream', p.state = 'failed'),
       (6, 'inference', 'started', 1, NULL, NULL, NULL, p.state IN ('rendered', 'done')),
       (7, 'inference', 'succeeded', 1, 40 + (p.h / 11) % 400, NULL, NULL, p.state = 'done')
     ) AS e(k, stage, outcome, attempt, ms, code, message, applies)
     JOIN bench_tpl t ON t.stage = e.stage AND t.outcome = e.outcome::"AuditOutcome"
     WHERE e.applies`,
    [batchId],
  );
}
