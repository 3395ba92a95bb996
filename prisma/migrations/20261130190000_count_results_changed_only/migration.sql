-- The InferenceResult trigger (one run per page scored) in the shape of the Page trigger
-- (`counters_changed_rows_only`): it carries only the counted columns (document, features) of the
-- rows that changed, not whole rows with the model's output, and adds the deltas in one statement.
-- What is counted is unchanged.

-- The counted columns of a result.
CREATE TYPE docpipe_counted_result AS ("documentId" uuid, features text[]);

CREATE OR REPLACE FUNCTION docpipe_count_results() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n docpipe_counted_result[];
  o docpipe_counted_result[];
BEGIN
  IF TG_OP = 'UPDATE' THEN
    SELECT
      ARRAY(SELECT ROW(x."documentId", x.features)::docpipe_counted_result FROM new_results x
            EXCEPT ALL SELECT ROW(x."documentId", x.features)::docpipe_counted_result FROM old_results x),
      ARRAY(SELECT ROW(x."documentId", x.features)::docpipe_counted_result FROM old_results x
            EXCEPT ALL SELECT ROW(x."documentId", x.features)::docpipe_counted_result FROM new_results x)
    INTO n, o;
  ELSIF TG_OP = 'INSERT' THEN
    n := ARRAY(SELECT ROW(x."documentId", x.features)::docpipe_counted_result FROM new_results x);
    o := '{}';
  ELSE
    n := '{}';
    o := ARRAY(SELECT ROW(x."documentId", x.features)::docpipe_counted_result FROM old_results x);
  END IF;
  IF cardinality(n) = 0 AND cardinality(o) = 0 THEN RETURN NULL; END IF;

  -- Results: their number and, per feature, the pages with it.
  PERFORM docpipe_add_counts(array_agg(t."batchId"), array_agg(t.name), array_agg(t.delta))
  FROM (
    SELECT d."batchId", x.name, sum(c.sign) AS delta
    FROM (
      SELECT r.*, 1 AS sign FROM unnest(n) r
      UNION ALL
      SELECT r.*, -1 FROM unnest(o) r
    ) c
    JOIN "Document" d ON d.id = c."documentId"
    CROSS JOIN LATERAL (
      SELECT 'results' AS name
      UNION ALL
      SELECT DISTINCT 'features.pages:' || f FROM unnest(c.features) f
    ) x
    GROUP BY d."batchId", x.name
  ) t
  WHERE t.delta <> 0
  HAVING count(*) > 0;
  RETURN NULL;
END
$$;
