-- A document's finished pages (done or failed) and failed pages, kept by the Page trigger in the
-- same transaction as the pages that change: "every page finished, none failed" becomes a look at
-- one row instead of a count of the document's pages on every page (quadratic in the document's
-- size), and a statement that holds the document's row lock reads them exact. The trigger's
-- UPDATE takes that lock, so pages of one document finishing at once queue for it briefly.

-- AlterTable
ALTER TABLE "Document" ADD COLUMN "pagesFailed" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "pagesFinished" INTEGER NOT NULL DEFAULT 0;

UPDATE "Document" d SET "pagesFinished" = f.finished, "pagesFailed" = f.failed
FROM (SELECT "documentId", count(*) AS finished, count(*) FILTER (WHERE state = 'failed') AS failed
      FROM "Page" WHERE state IN ('done', 'failed') GROUP BY "documentId") f
WHERE f."documentId" = d.id;

-- Pages: per state, rows (pages split so far), pages with a PNG, degraded pages (in all and per
-- kind of damage), and each document's finished and failed pages. The document rows are updated before the
-- counters, in the order every statement locks: page, document, counters.
CREATE OR REPLACE FUNCTION docpipe_count_pages() RETURNS trigger
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
