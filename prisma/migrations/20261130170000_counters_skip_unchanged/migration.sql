-- The counter triggers are statement-level, so they fire on every UPDATE of Page and Document,
-- also on the many that change no counted column: a stage's claim, release or renewal (lease
-- columns only), the empty INSERT half of an upsert that updated, a conditional UPDATE that
-- matched nothing, a document's finished-page counts. Each used to aggregate both transition
-- tables and run the counting query all the same, and the Page trigger's update of the document
-- fired the Document trigger in turn; by pg_stat_user_functions, about 8 Document and 5 Page
-- trigger runs per page. Now each trigger first asks whether anything it counts changed: the
-- multiset of counted columns is the same before and after (then every delta is zero), or no row
-- changed at all. Only then does it aggregate and count, exactly as before.

-- Pages: as in `document_pages_finished`, after the early exit; the document's finished counts
-- are updated only when a page entered or left done or failed.
CREATE OR REPLACE FUNCTION docpipe_count_pages() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n "Page"[] := '{}';
  o "Page"[] := '{}';
  b uuid[];
  k text[];
  v bigint[];
BEGIN
  IF TG_OP = 'UPDATE' THEN
    -- Every count below is a function of these columns: the same multiset before and after counts nothing.
    IF NOT EXISTS (
      SELECT x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason" FROM new_pages x
      EXCEPT ALL
      SELECT x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason" FROM old_pages x
    ) THEN
      RETURN NULL;
    END IF;
  ELSIF TG_OP = 'INSERT' THEN
    IF NOT EXISTS (SELECT 1 FROM new_pages) THEN RETURN NULL; END IF;
  ELSE
    IF NOT EXISTS (SELECT 1 FROM old_pages) THEN RETURN NULL; END IF;
  END IF;
  IF TG_OP <> 'DELETE' THEN SELECT coalesce(array_agg(x), '{}') INTO n FROM new_pages x; END IF;
  IF TG_OP <> 'INSERT' THEN SELECT coalesce(array_agg(x), '{}') INTO o FROM old_pages x; END IF;
  IF EXISTS (SELECT 1 FROM unnest(n) p WHERE p.state IN ('done', 'failed')) OR EXISTS (SELECT 1 FROM unnest(o) p WHERE p.state IN ('done', 'failed')) THEN
    WITH
      changed AS (
        SELECT p."documentId", p.state, 1 AS sign FROM unnest(n) p
        UNION ALL
        SELECT p."documentId", p.state, -1 FROM unnest(o) p
      ),
      finished AS (
        SELECT c."documentId", sum(c.sign) AS finished, coalesce(sum(c.sign) FILTER (WHERE c.state = 'failed'), 0) AS failed
        FROM changed c WHERE c.state IN ('done', 'failed')
        GROUP BY c."documentId" HAVING sum(c.sign) <> 0 OR coalesce(sum(c.sign) FILTER (WHERE c.state = 'failed'), 0) <> 0
      )
    UPDATE "Document" d SET "pagesFinished" = d."pagesFinished" + f.finished, "pagesFailed" = d."pagesFailed" + f.failed
    FROM finished f WHERE d.id = f."documentId";
  END IF;
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

-- Documents: as in `batch_counters`, after the early exit. The feature and damage counts change
-- only with a document's state, which is among the compared columns.
CREATE OR REPLACE FUNCTION docpipe_count_documents() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n "Document"[] := '{}';
  o "Document"[] := '{}';
  b uuid[];
  k text[];
  v bigint[];
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NOT EXISTS (
      SELECT x.id, x."batchId", x.state, x."pageCount", x."duplicateOfId" FROM new_documents x
      EXCEPT ALL
      SELECT x.id, x."batchId", x.state, x."pageCount", x."duplicateOfId" FROM old_documents x
    ) THEN
      RETURN NULL;
    END IF;
  ELSIF TG_OP = 'INSERT' THEN
    IF NOT EXISTS (SELECT 1 FROM new_documents) THEN RETURN NULL; END IF;
  ELSE
    IF NOT EXISTS (SELECT 1 FROM old_documents) THEN RETURN NULL; END IF;
  END IF;
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
