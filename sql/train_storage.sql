-- Models are rows: replace, rollback, failures, ids, NULLs and duplicates
CREATE TABLE ts (user_id bigint, item_id integer);
-- sparse, negative and huge ids; a duplicate pair; NULLs
INSERT INTO ts VALUES
    (-9223372036854775808, 7), (-9223372036854775808, 9), (-9223372036854775808, 9),
    (0, 7), (0, -1), (42, 2147483647), (42, 9), (9223372036854775807, -1),
    (NULL, 7), (5, NULL);

-- NOTICEs report skipped NULL rows and duplicates (per-epoch notices, which
-- show timings, are switched off with dsl_rec.progress)
SET dsl_rec.progress = off;
SELECT count(*) FROM dsl.train('ts', 'ts', dim => 4, density => 0.5, epochs => 1, seed => 7);
SET client_min_messages = warning;

SELECT n_users, n_items, n_interactions, source, user_col, item_col FROM dsl.models WHERE name = 'ts';
-- the id mapping is stored: one row per user and item with the original ids
SELECT part, array_agg(entity_id ORDER BY entity_id)
FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'ts'
GROUP BY part ORDER BY part;
SELECT user_id, items FROM dsl.seen_items JOIN dsl.models USING (model_id)
WHERE name = 'ts' ORDER BY user_id;

-- an existing name needs replace => true
SELECT * FROM dsl.train('ts', 'ts', dim => 4, epochs => 1);
SELECT * FROM dsl.train('ts', 'ts', dim => 4, epochs => 1, replace => NULL);
CREATE TEMP TABLE before AS
SELECT m.model_id, p.part, p.entity_id, p.vec::text AS vec
FROM dsl.models m JOIN dsl.parameters p USING (model_id) WHERE m.name = 'ts';

-- a rolled-back retrain leaves the previous model untouched
BEGIN;
SELECT count(*) FROM dsl.train('ts', 'ts', dim => 4, epochs => 2, seed => 8, replace => true);
SELECT model_id = (SELECT DISTINCT model_id FROM before) AS same_id FROM dsl.models WHERE name = 'ts';
ROLLBACK;
SELECT (SELECT count(*) FROM (SELECT model_id, part, entity_id, vec::text FROM dsl.parameters
                              JOIN dsl.models USING (model_id) WHERE name = 'ts'
                              EXCEPT SELECT * FROM before) d) AS changed_rows,
       (SELECT model_id FROM dsl.models WHERE name = 'ts') = (SELECT DISTINCT model_id FROM before) AS same_id;

-- a failing retrain (divergence) stores nothing and keeps the previous model
SELECT count(*) FROM dsl.train('ts', 'ts', dim => 4, epochs => 3, lr => 1e30, replace => true);
SELECT (SELECT model_id FROM dsl.models WHERE name = 'ts') = (SELECT DISTINCT model_id FROM before) AS same_id;

-- a successful replace swaps the model atomically: new id, new rows, old rows gone
SELECT count(*) FROM dsl.train('ts', 'ts', dim => 8, epochs => 1, seed => 9, replace => true);
SELECT model_id <> (SELECT DISTINCT model_id FROM before) AS new_id, dim FROM dsl.models WHERE name = 'ts';
SELECT count(*) AS old_rows_left FROM dsl.parameters WHERE model_id = (SELECT DISTINCT model_id FROM before);
SELECT count(*) AS old_seen_left FROM dsl.seen_items WHERE model_id = (SELECT DISTINCT model_id FROM before);
SELECT DISTINCT dsl.dims(vec) FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'ts';

-- a view, a materialized view and a partitioned table are sources too
CREATE VIEW ts_view AS SELECT user_id AS u, item_id AS i FROM ts WHERE user_id IS NOT NULL;
CREATE MATERIALIZED VIEW ts_mv AS SELECT * FROM ts;
CREATE TABLE ts_part (user_id bigint, item_id bigint) PARTITION BY RANGE (user_id);
CREATE TABLE ts_part_a PARTITION OF ts_part FOR VALUES FROM (MINVALUE) TO (10);
CREATE TABLE ts_part_b PARTITION OF ts_part FOR VALUES FROM (10) TO (MAXVALUE);
INSERT INTO ts_part SELECT * FROM ts WHERE user_id IS NOT NULL;
SELECT count(*) FROM dsl.train('ts_view', 'ts_view', user_col => 'u', item_col => 'i', dim => 4, epochs => 1);
SELECT count(*) FROM dsl.train('ts_mv', 'ts_mv', dim => 4, epochs => 1);
SELECT count(*) FROM dsl.train('ts_part', 'ts_part', dim => 4, epochs => 1);
SELECT name, n_users, n_items, n_interactions FROM dsl.models ORDER BY name;

-- a too small maintenance_work_mem is reported with the amount needed
SET maintenance_work_mem = '1MB';
CREATE TABLE ts_big AS SELECT u AS user_id, i AS item_id
FROM generate_series(1, 300) u, generate_series(1, 50) i;
SELECT count(*) FROM dsl.train('ts_big', 'ts_big', dim => 1024, density => 1, epochs => 1);
RESET maintenance_work_mem;

-- training is refused in a read-only transaction
BEGIN READ ONLY;
SELECT count(*) FROM dsl.train('ts_ro', 'ts', epochs => 1);
ROLLBACK;

SELECT dsl.drop_model(name) FROM dsl.models ORDER BY name;
