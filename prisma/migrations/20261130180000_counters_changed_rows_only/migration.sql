-- The Page trigger, which runs its counting body for about two statements per page (a page
-- rendered, a page done) and for each split, in fewer steps: one statement takes the net change
-- of the counted columns from the transition tables (on UPDATE, new EXCEPT ALL old and old EXCEPT
-- ALL new: the rows that only changed uncounted columns drop out, and nothing left means nothing
-- to count), the document's finished counts are updated only when a page entered or left done or
-- failed, and one statement adds the deltas. What is counted is unchanged.

-- The counted columns of a page.
CREATE TYPE docpipe_counted_page AS ("documentId" uuid, state "PageState", imaged boolean, degraded boolean, "degradedReason" text);

CREATE OR REPLACE FUNCTION docpipe_count_pages() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n docpipe_counted_page[];
  o docpipe_counted_page[];
  finishing boolean;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    SELECT
      ARRAY(SELECT ROW(x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason")::docpipe_counted_page FROM new_pages x
            EXCEPT ALL SELECT ROW(x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason")::docpipe_counted_page FROM old_pages x),
      ARRAY(SELECT ROW(x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason")::docpipe_counted_page FROM old_pages x
            EXCEPT ALL SELECT ROW(x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason")::docpipe_counted_page FROM new_pages x)
    INTO n, o;
  ELSIF TG_OP = 'INSERT' THEN
    n := ARRAY(SELECT ROW(x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason")::docpipe_counted_page FROM new_pages x);
    o := '{}';
  ELSE
    n := '{}';
    o := ARRAY(SELECT ROW(x."documentId", x.state, x."imageKey" IS NOT NULL, x.degraded, x."degradedReason")::docpipe_counted_page FROM old_pages x);
  END IF;
  IF cardinality(n) = 0 AND cardinality(o) = 0 THEN RETURN NULL; END IF;

  SELECT EXISTS (SELECT 1 FROM unnest(n || o) p WHERE p.state IN ('done', 'failed')) INTO finishing;
  IF finishing THEN
    -- The document rows before the counters: the order every statement locks in (page, document, counters).
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

  -- Pages: per state, rows (pages split so far), pages with a PNG, and degraded pages (in all and per kind of damage).
  PERFORM docpipe_add_counts(array_agg(t."batchId"), array_agg(t.name), array_agg(t.delta))
  FROM (
    SELECT d."batchId", x.name, sum(x.delta * c.sign) AS delta
    FROM (
      SELECT p.*, 1 AS sign FROM unnest(n) p
      UNION ALL
      SELECT p.*, -1 FROM unnest(o) p
    ) c
    -- A page whose document is gone (deleted with its batch) has nothing left to count.
    JOIN "Document" d ON d.id = c."documentId"
    CROSS JOIN LATERAL (VALUES
      ('pages.' || c.state::text, 1),
      ('pages.rows', 1),
      ('pages.imaged', CASE WHEN c.imaged THEN 1 ELSE 0 END),
      ('pages.degraded', CASE WHEN c.degraded THEN 1 ELSE 0 END),
      ('pages.degraded:' || coalesce(c."degradedReason", 'unknown'), CASE WHEN c.degraded THEN 1 ELSE 0 END)
    ) AS x(name, delta)
    GROUP BY d."batchId", x.name
  ) t
  WHERE t.delta <> 0
  HAVING count(*) > 0;
  RETURN NULL;
END
$$;

-- Finished stage attempts: as in `batch_counters`, but an insert of records none of which is a
-- finished attempt (a `started` record: about half of a page's audit records) returns at once.
CREATE OR REPLACE FUNCTION docpipe_count_stage_timings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    -- Most inserts are `started` records, which count nothing: no INSERT to run for them.
    IF NOT EXISTS (SELECT 1 FROM new_events e WHERE e."batchId" IS NOT NULL AND e.outcome IN ('succeeded', 'failed', 'dead_lettered')) THEN
      RETURN NULL;
    END IF;
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
