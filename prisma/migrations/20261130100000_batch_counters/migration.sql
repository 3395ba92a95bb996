-- Per-batch counters kept as work happens, so status, progress and report read a few hundred
-- counter rows instead of aggregating millions of pages and audit events.
--
-- Triggers keep them, in the same statement (so the same transaction) as the change they count:
-- a rolled-back or killed transaction counts nothing, a conditional UPDATE that changes nothing
-- (a duplicate delivery) counts nothing, and every code path that changes a state is counted
-- alike. Statement-level triggers with transition tables: one aggregate per statement, whatever
-- its row count. Each connection adds to its own shard (backend pid modulo 64), so workers do not
-- queue on one hot row; counter rows are locked in (batchId, name) order within a statement.

-- CreateTable
CREATE TABLE "BatchCounter" (
    "batchId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "shard" SMALLINT NOT NULL,
    "value" BIGINT NOT NULL,

    CONSTRAINT "BatchCounter_pkey" PRIMARY KEY ("batchId","name","shard")
);

-- CreateTable
CREATE TABLE "StageTiming" (
    "batchId" UUID NOT NULL,
    "stage" TEXT NOT NULL,
    "durationMs" INTEGER NOT NULL,
    "shard" SMALLINT NOT NULL,
    "attempts" BIGINT NOT NULL,
    "failures" BIGINT NOT NULL,

    CONSTRAINT "StageTiming_pkey" PRIMARY KEY ("batchId","stage","durationMs","shard")
);

-- AddForeignKey
ALTER TABLE "BatchCounter" ADD CONSTRAINT "BatchCounter_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Batch"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "StageTiming" ADD CONSTRAINT "StageTiming_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Batch"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Counter rows are updated in place over and over: leave room on each page for the new
-- version (HOT updates, no index writes) and vacuum them often.
ALTER TABLE "BatchCounter" SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01);
ALTER TABLE "StageTiming" SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01);

-- Durations to three significant digits (exact below a second): percentiles within 0.5 %, and a
-- stage's timings fit in a few thousand rows however many attempts it had. NULL is -1.
CREATE FUNCTION docpipe_duration_bucket(ms integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN ms IS NULL THEN -1
    WHEN ms < 1000 THEN greatest(ms, 0)
    ELSE (round(ms / power(10, floor(log(ms)) - 2)) * power(10, floor(log(ms)) - 2))::integer
  END
$$;

-- The shard a connection adds to.
CREATE FUNCTION docpipe_counter_shard() RETURNS smallint
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT (pg_backend_pid() % 64)::smallint $$;

-- Adds deltas to a batch's counters in one upsert, rows locked in (batchId, name) order. Deltas of
-- a batch being deleted (a cascade) are dropped with it.
CREATE FUNCTION docpipe_add_counts(batch_ids uuid[], names text[], deltas bigint[]) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO "BatchCounter" AS c ("batchId", "name", "shard", "value")
  SELECT d.batch_id, d.name, docpipe_counter_shard(), sum(d.delta)
  FROM unnest(batch_ids, names, deltas) AS d(batch_id, name, delta)
  WHERE EXISTS (SELECT 1 FROM "Batch" b WHERE b.id = d.batch_id)
  GROUP BY d.batch_id, d.name
  HAVING sum(d.delta) <> 0
  ORDER BY d.batch_id, d.name
  ON CONFLICT ("batchId", "name", "shard") DO UPDATE SET "value" = c."value" + excluded."value"
$$;

-- Documents: per state, duplicates (done without pages of their own), expected pages (the sum of
-- known page counts), per feature the done documents with it (counted when a document becomes
-- done, from its results; uncounted if it ever leaves done), and per kind of damage the finished
-- (done or failed) documents with a degraded page of that kind (likewise, from its pages).
CREATE FUNCTION docpipe_count_documents() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n "Document"[] := '{}';
  o "Document"[] := '{}';
  b uuid[];
  k text[];
  v bigint[];
BEGIN
  IF TG_OP <> 'DELETE' THEN SELECT coalesce(array_agg(x), '{}') INTO n FROM new_documents x; END IF;
  IF TG_OP <> 'INSERT' THEN SELECT coalesce(array_agg(x), '{}') INTO o FROM old_documents x; END IF;
  WITH
    changed AS (
      SELECT d.id, d."batchId", d.state, d."pageCount", d."duplicateOfId", 1 AS sign FROM unnest(n) d
      UNION ALL
      SELECT d.id, d."batchId", d.state, d."pageCount", d."duplicateOfId", -1 FROM unnest(o) d
    ),
    -- +1 for a document that became done, -1 for one that stopped being done.
    done AS (
      SELECT c.id, c."batchId", sum(c.sign) AS sign FROM changed c WHERE c.state = 'done' GROUP BY c.id, c."batchId" HAVING sum(c.sign) <> 0
    ),
    -- The same for finished (done or failed).
    finished AS (
      SELECT c.id, c."batchId", sum(c.sign) AS sign FROM changed c WHERE c.state IN ('done', 'failed') GROUP BY c.id, c."batchId" HAVING sum(c.sign) <> 0
    ),
    deltas AS (
      SELECT c."batchId", x.name, x.delta * c.sign AS delta
      FROM changed c
      CROSS JOIN LATERAL (VALUES
        ('documents.' || c.state::text, 1),
        ('documents.duplicates', CASE WHEN c.state = 'done' AND c."duplicateOfId" IS NOT NULL THEN 1 ELSE 0 END),
        ('pages.expected', coalesce(c."pageCount", 0))
      ) AS x(name, delta)
      UNION ALL
      SELECT d."batchId", 'features.documents:' || f.feature, d.sign
      FROM done d
      CROSS JOIN LATERAL (SELECT DISTINCT unnest(r.features) AS feature FROM "InferenceResult" r WHERE r."documentId" = d.id) f
      UNION ALL
      SELECT d."batchId", 'documents.degraded:' || g.reason, d.sign
      FROM finished d
      CROSS JOIN LATERAL (SELECT DISTINCT coalesce(p."degradedReason", 'unknown') AS reason FROM "Page" p WHERE p."documentId" = d.id AND p.degraded) g
    )
  SELECT array_agg("batchId"), array_agg(name), array_agg(delta) INTO b, k, v FROM deltas WHERE delta <> 0;
  IF b IS NOT NULL THEN PERFORM docpipe_add_counts(b, k, v); END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER docpipe_count_documents_insert AFTER INSERT ON "Document"
  REFERENCING NEW TABLE AS new_documents FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_documents();
CREATE TRIGGER docpipe_count_documents_update AFTER UPDATE ON "Document"
  REFERENCING OLD TABLE AS old_documents NEW TABLE AS new_documents FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_documents();
CREATE TRIGGER docpipe_count_documents_delete AFTER DELETE ON "Document"
  REFERENCING OLD TABLE AS old_documents FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_documents();

-- Pages: per state, rows (pages split so far), pages with a PNG, and degraded pages (in all and per kind of damage).
CREATE FUNCTION docpipe_count_pages() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n "Page"[] := '{}';
  o "Page"[] := '{}';
  b uuid[];
  k text[];
  v bigint[];
BEGIN
  IF TG_OP <> 'DELETE' THEN SELECT coalesce(array_agg(x), '{}') INTO n FROM new_pages x; END IF;
  IF TG_OP <> 'INSERT' THEN SELECT coalesce(array_agg(x), '{}') INTO o FROM old_pages x; END IF;
  WITH
    changed AS (
      SELECT p."documentId", p.state, p."imageKey", p.degraded, p."degradedReason", 1 AS sign FROM unnest(n) p
      UNION ALL
      SELECT p."documentId", p.state, p."imageKey", p.degraded, p."degradedReason", -1 FROM unnest(o) p
    ),
    deltas AS (
      SELECT d."batchId", x.name, sum(x.delta * c.sign) AS delta
      FROM changed c
      -- A page whose document is gone (deleted with its batch) has nothing left to count.
      JOIN "Document" d ON d.id = c."documentId"
      CROSS JOIN LATERAL (VALUES
        ('pages.' || c.state::text, 1),
        ('pages.rows', 1),
        ('pages.imaged', CASE WHEN c."imageKey" IS NOT NULL THEN 1 ELSE 0 END),
        ('pages.degraded', CASE WHEN c.degraded THEN 1 ELSE 0 END),
        ('pages.degraded:' || coalesce(c."degradedReason", 'unknown'), CASE WHEN c.degraded THEN 1 ELSE 0 END)
      ) AS x(name, delta)
      GROUP BY d."batchId", x.name
    )
  SELECT array_agg("batchId"), array_agg(name), array_agg(delta) INTO b, k, v FROM deltas WHERE delta <> 0;
  IF b IS NOT NULL THEN PERFORM docpipe_add_counts(b, k, v); END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER docpipe_count_pages_insert AFTER INSERT ON "Page"
  REFERENCING NEW TABLE AS new_pages FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_pages();
CREATE TRIGGER docpipe_count_pages_update AFTER UPDATE ON "Page"
  REFERENCING OLD TABLE AS old_pages NEW TABLE AS new_pages FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_pages();
CREATE TRIGGER docpipe_count_pages_delete AFTER DELETE ON "Page"
  REFERENCING OLD TABLE AS old_pages FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_pages();

-- A deleted document's pages and results are deleted by a cascade that runs after the document
-- is gone, when their own triggers can no longer tell its batch: they are uncounted here, first.
CREATE FUNCTION docpipe_uncount_document_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  b uuid[];
  k text[];
  v bigint[];
BEGIN
  -- Deleted with its batch: the counters go with the batch.
  IF NOT EXISTS (SELECT 1 FROM "Batch" WHERE id = OLD."batchId") THEN RETURN OLD; END IF;
  WITH deltas AS (
    SELECT x.name, -sum(x.delta) AS delta
    FROM "Page" p
    CROSS JOIN LATERAL (VALUES
      ('pages.' || p.state::text, 1),
      ('pages.rows', 1),
      ('pages.imaged', CASE WHEN p."imageKey" IS NOT NULL THEN 1 ELSE 0 END),
      ('pages.degraded', CASE WHEN p.degraded THEN 1 ELSE 0 END),
      ('pages.degraded:' || coalesce(p."degradedReason", 'unknown'), CASE WHEN p.degraded THEN 1 ELSE 0 END)
    ) AS x(name, delta)
    WHERE p."documentId" = OLD.id
    GROUP BY x.name
    UNION ALL
    SELECT x.name, -count(*)
    FROM "InferenceResult" r
    CROSS JOIN LATERAL (SELECT 'results' UNION ALL SELECT DISTINCT 'features.pages:' || f FROM unnest(r.features) f) AS x(name)
    WHERE r."documentId" = OLD.id
    GROUP BY x.name
  )
  SELECT array_agg(OLD."batchId"), array_agg(name), array_agg(delta) INTO b, k, v FROM deltas WHERE delta <> 0;
  IF b IS NOT NULL THEN PERFORM docpipe_add_counts(b, k, v); END IF;
  RETURN OLD;
END
$$;

CREATE TRIGGER docpipe_uncount_document_rows BEFORE DELETE ON "Document"
  FOR EACH ROW EXECUTE FUNCTION docpipe_uncount_document_rows();

-- Results: their number and, per feature, the pages with it.
CREATE FUNCTION docpipe_count_results() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n "InferenceResult"[] := '{}';
  o "InferenceResult"[] := '{}';
  b uuid[];
  k text[];
  v bigint[];
BEGIN
  IF TG_OP <> 'DELETE' THEN SELECT coalesce(array_agg(x), '{}') INTO n FROM new_results x; END IF;
  IF TG_OP <> 'INSERT' THEN SELECT coalesce(array_agg(x), '{}') INTO o FROM old_results x; END IF;
  WITH
    changed AS (
      SELECT r."documentId", r.features, 1 AS sign FROM unnest(n) r
      UNION ALL
      SELECT r."documentId", r.features, -1 FROM unnest(o) r
    ),
    deltas AS (
      SELECT d."batchId", x.name, sum(c.sign) AS delta
      FROM changed c
      JOIN "Document" d ON d.id = c."documentId"
      CROSS JOIN LATERAL (
        SELECT 'results' AS name
        UNION ALL
        SELECT DISTINCT 'features.pages:' || f FROM unnest(c.features) f
      ) x
      GROUP BY d."batchId", x.name
    )
  SELECT array_agg("batchId"), array_agg(name), array_agg(delta) INTO b, k, v FROM deltas WHERE delta <> 0;
  IF b IS NOT NULL THEN PERFORM docpipe_add_counts(b, k, v); END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER docpipe_count_results_insert AFTER INSERT ON "InferenceResult"
  REFERENCING NEW TABLE AS new_results FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_results();
CREATE TRIGGER docpipe_count_results_update AFTER UPDATE ON "InferenceResult"
  REFERENCING OLD TABLE AS old_results NEW TABLE AS new_results FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_results();
CREATE TRIGGER docpipe_count_results_delete AFTER DELETE ON "InferenceResult"
  REFERENCING OLD TABLE AS old_results FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_results();

-- Finished stage attempts (succeeded, failed, dead-lettered) per stage and duration. Inserts and
-- updates count; deletes do not: exporting and pruning a batch's audit trail keeps its timings.
CREATE FUNCTION docpipe_count_stage_timings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "StageTiming" AS t ("batchId", "stage", "durationMs", "shard", "attempts", "failures")
    SELECT e."batchId", e.stage, docpipe_duration_bucket(e."durationMs"), docpipe_counter_shard(),
           count(*), count(*) FILTER (WHERE e.outcome IN ('failed', 'dead_lettered'))
    FROM new_events e
    WHERE e."batchId" IS NOT NULL AND e.outcome IN ('succeeded', 'failed', 'dead_lettered')
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT ("batchId", "stage", "durationMs", "shard")
    DO UPDATE SET "attempts" = t."attempts" + excluded."attempts", "failures" = t."failures" + excluded."failures";
  ELSE
    INSERT INTO "StageTiming" AS t ("batchId", "stage", "durationMs", "shard", "attempts", "failures")
    SELECT c."batchId", c.stage, docpipe_duration_bucket(c."durationMs"), docpipe_counter_shard(),
           sum(c.sign), coalesce(sum(c.sign) FILTER (WHERE c.outcome IN ('failed', 'dead_lettered')), 0)
    FROM (
      SELECT e."batchId", e.stage, e."durationMs", e.outcome, 1 AS sign FROM new_events e
      UNION ALL
      SELECT e."batchId", e.stage, e."durationMs", e.outcome, -1 FROM old_events e
    ) c
    WHERE c."batchId" IS NOT NULL AND c.outcome IN ('succeeded', 'failed', 'dead_lettered')
    GROUP BY 1, 2, 3
    HAVING sum(c.sign) <> 0 OR coalesce(sum(c.sign) FILTER (WHERE c.outcome IN ('failed', 'dead_lettered')), 0) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT ("batchId", "stage", "durationMs", "shard")
    DO UPDATE SET "attempts" = t."attempts" + excluded."attempts", "failures" = t."failures" + excluded."failures";
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER docpipe_count_stage_timings_insert AFTER INSERT ON "AuditEvent"
  REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_stage_timings();
CREATE TRIGGER docpipe_count_stage_timings_update AFTER UPDATE ON "AuditEvent"
  REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION docpipe_count_stage_timings();

-- What a batch's counters must hold, counted from its rows: a check (compare with the counters)
-- and a repair (docpipe_recount_batch).
CREATE FUNCTION docpipe_batch_counts(batch uuid) RETURNS TABLE (name text, value bigint)
LANGUAGE sql STABLE AS $$
  SELECT name, sum(value)::bigint FROM (
    SELECT 'documents.' || d.state::text AS name, count(*) AS value FROM "Document" d WHERE d."batchId" = batch GROUP BY d.state
    UNION ALL
    SELECT 'documents.duplicates', count(*) FROM "Document" d WHERE d."batchId" = batch AND d.state = 'done' AND d."duplicateOfId" IS NOT NULL
    UNION ALL
    SELECT 'pages.expected', coalesce(sum(d."pageCount"), 0) FROM "Document" d WHERE d."batchId" = batch
    UNION ALL
    SELECT 'pages.' || p.state::text, count(*) FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = batch GROUP BY p.state
    UNION ALL
    SELECT 'pages.rows', count(*) FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = batch
    UNION ALL
    SELECT 'pages.imaged', count(*) FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = batch AND p."imageKey" IS NOT NULL
    UNION ALL
    SELECT 'pages.degraded', count(*) FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = batch AND p.degraded
    UNION ALL
    SELECT 'pages.degraded:' || coalesce(p."degradedReason", 'unknown'), count(*)
    FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = batch AND p.degraded GROUP BY 1
    UNION ALL
    SELECT 'documents.degraded:' || coalesce(p."degradedReason", 'unknown'), count(DISTINCT p."documentId")
    FROM "Page" p JOIN "Document" d ON d.id = p."documentId" WHERE d."batchId" = batch AND p.degraded AND d.state IN ('done', 'failed') GROUP BY 1
    UNION ALL
    SELECT 'results', count(*) FROM "InferenceResult" r JOIN "Document" d ON d.id = r."documentId" WHERE d."batchId" = batch
    UNION ALL
    SELECT 'features.pages:' || f, count(*)
    FROM "InferenceResult" r JOIN "Document" d ON d.id = r."documentId", LATERAL (SELECT DISTINCT unnest(r.features)) AS x(f)
    WHERE d."batchId" = batch GROUP BY f
    UNION ALL
    SELECT 'features.documents:' || f, count(DISTINCT r."documentId")
    FROM "InferenceResult" r JOIN "Document" d ON d.id = r."documentId", unnest(r.features) AS f
    WHERE d."batchId" = batch AND d.state = 'done' GROUP BY f
  ) c
  GROUP BY name
  HAVING sum(value) <> 0
$$;

-- What a batch's stage timings must hold, from its audit trail (while it has not been pruned).
CREATE FUNCTION docpipe_batch_timings(batch uuid) RETURNS TABLE (stage text, "durationMs" integer, attempts bigint, failures bigint)
LANGUAGE sql STABLE AS $$
  SELECT e.stage, docpipe_duration_bucket(e."durationMs"), count(*), count(*) FILTER (WHERE e.outcome IN ('failed', 'dead_lettered'))
  FROM "AuditEvent" e
  WHERE e."batchId" = batch AND e.outcome IN ('succeeded', 'failed', 'dead_lettered')
  GROUP BY 1, 2
$$;

-- Rebuilds a batch's counters from its rows (and its timings from its audit trail, when asked).
CREATE FUNCTION docpipe_recount_batch(batch uuid, timings boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "BatchCounter" WHERE "batchId" = batch;
  INSERT INTO "BatchCounter" ("batchId", "name", "shard", "value") SELECT batch, c.name, 0, c.value FROM docpipe_batch_counts(batch) c;
  IF timings THEN
    DELETE FROM "StageTiming" WHERE "batchId" = batch;
    INSERT INTO "StageTiming" ("batchId", "stage", "durationMs", "shard", "attempts", "failures")
    SELECT batch, t.stage, t."durationMs", 0, t.attempts, t.failures FROM docpipe_batch_timings(batch) t;
  END IF;
END
$$;

-- Batches that exist already.
SELECT docpipe_recount_batch(id, true) FROM "Batch";
