-- test/bench/storage.sql - stored size of every model: the spvec bytes of its
-- dsl.parameters rows, and its share of the total size (heap + TOAST +
-- indexes) of dsl.parameters and dsl.seen_items, apportioned by the bytes of
-- its rows (pg_column_size of the whole row).
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
VACUUM ANALYZE dsl.parameters;
VACUUM ANALYZE dsl.seen_items;
WITH p AS (
    SELECT model_id, count(*) AS param_rows, sum(pg_column_size(vec)) AS vec_bytes,
           sum(pg_column_size(p.*)) AS row_bytes,
           count(*) FILTER (WHERE part IN ('user', 'item')) AS serving_rows,
           sum(pg_column_size(vec)) FILTER (WHERE part IN ('user', 'item')) AS serving_vec_bytes
    FROM dsl.parameters p GROUP BY model_id),
s AS (
    SELECT model_id, count(*) AS seen_rows, sum(pg_column_size(s.*)) AS row_bytes
    FROM dsl.seen_items s GROUP BY model_id),
tot AS (
    SELECT (SELECT sum(row_bytes) FROM p) AS p_row_bytes,
           (SELECT sum(row_bytes) FROM s) AS s_row_bytes,
           pg_total_relation_size('dsl.parameters') AS p_bytes,
           pg_total_relation_size('dsl.seen_items') AS s_bytes)
SELECT m.name, p.param_rows, p.vec_bytes, p.serving_rows, p.serving_vec_bytes,
       round(tot.p_bytes * p.row_bytes / NULLIF(tot.p_row_bytes, 0))::bigint AS param_table_share,
       round(tot.s_bytes * coalesce(s.row_bytes, 0) / NULLIF(tot.s_row_bytes, 0))::bigint AS seen_table_share
FROM dsl.models m
JOIN p USING (model_id)
LEFT JOIN s USING (model_id)
CROSS JOIN tot
ORDER BY m.name;
