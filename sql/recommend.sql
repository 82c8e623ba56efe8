-- Serving: dsl.recommend, dsl.score, dsl.recommend_all, dsl.similar_items
-- and the per-backend model cache, on a hand-made model (no training).
--
-- Model serve_fx, dim 3.  Item embeddings:
--   100 (1, 0, 0)    101 (0, 1, 0)    102 (0.5, 0.5, 0)
--   103 (0, 0, 1)    104 (1, 0, -1)   105 (0, 0, 0)
-- User embeddings and their scores (inner products) with items 100..105:
--   10 (2, 1, 0.5)   2    1    1.5   0.5   1.5   0
--   20 (1, 1, 0)     1    1    1     0     1     0
--   30 (0, 0, -1)    0    0    0    -1     1     0
--   40 (0, 0, 0)     0    0    0     0     0     0
-- Training items: 10 {100, 103}; 20 {101}; 30 none (no row at all);
-- 40 {100, 101} plus 999, which the model does not know.
-- Popularity (training users per item): 100 -> 2, 101 -> 2, 103 -> 1, others 0.
-- Every value is a short binary fraction, so float and double scores are
-- exact and equal; equal scores are real ties.

\set VERBOSITY terse

CREATE FUNCTION serve_fixture(model text, users text[], items text[], seen text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    mid bigint;
BEGIN
    INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim,
                            density, hyperparams, n_users, n_items, n_interactions,
                            active_params, total_params, epochs, train_seconds)
    VALUES (model, 'mf', 'fixture', 'user_id', 'item_id', 3, 1, '{}',
            cardinality(users) / 2, cardinality(items) / 2, 0, 0, 0, 0, 0)
    RETURNING model_id INTO mid;
    INSERT INTO dsl.parameters (model_id, part, entity_id, vec)
    SELECT mid, 'user', users[2 * g - 1]::bigint, users[2 * g]::dsl.spvec
      FROM generate_series(1, cardinality(users) / 2) g;
    INSERT INTO dsl.parameters (model_id, part, entity_id, vec)
    SELECT mid, 'item', items[2 * g - 1]::bigint, items[2 * g]::dsl.spvec
      FROM generate_series(1, cardinality(items) / 2) g;
    INSERT INTO dsl.seen_items (model_id, user_id, items)
    SELECT mid, seen[2 * g - 1]::bigint, seen[2 * g]::bigint[]
      FROM generate_series(1, cardinality(seen) / 2) g;
    RETURN mid;
END
$$;

SELECT serve_fixture('serve_fx',
    ARRAY['10', '{1:2,2:1,3:0.5}/3', '20', '{1:1,2:1}/3',
          '30', '{3:-1}/3', '40', '{}/3'],
    ARRAY['100', '{1:1}/3', '101', '{2:1}/3', '102', '{1:0.5,2:0.5}/3',
          '103', '{3:1}/3', '104', '{1:1,3:-1}/3', '105', '{}/3'],
    ARRAY['10', '{103,100}', '20', '{101}', '40', '{100,101,999,100}']) > 0 AS created;

-- user 10, training items 100 and 103 excluded: 102 and 104 tie at 1.5
-- (lower id first), then 101 (1), 105 (0)
SELECT * FROM dsl.recommend('serve_fx', 10);
-- without exclusion, top 3: 100 (2), 102 (1.5), 104 (1.5)
SELECT * FROM dsl.recommend('serve_fx', 10, 3, false);
SELECT * FROM dsl.recommend('serve_fx', 10, k => 2, exclude_seen => false);
-- user 20 (101 seen): four-way tie at 1 minus 101, then the zeros by id
SELECT * FROM dsl.recommend('serve_fx', 20);
-- user 30 has no training row: everything, 103 (-1) last
SELECT * FROM dsl.recommend('serve_fx', 30);
-- user 40 has a zero vector: all scores 0, ids ascending, 100 and 101 seen
SELECT * FROM dsl.recommend('serve_fx', 40);

-- candidates: unknown ids (12345), NULLs and duplicates are ignored, seen
-- items still excluded (100) unless exclude_seen is false
SELECT * FROM dsl.recommend('serve_fx', 10, candidates => ARRAY[104, 100, 101, 104, NULL, 12345]);
SELECT * FROM dsl.recommend('serve_fx', 10, 10, false, ARRAY[104, 100, 101, 104, NULL, 12345]);
SELECT * FROM dsl.recommend('serve_fx', 10, 1, false, ARRAY[104, 101]);
SELECT count(*) FROM dsl.recommend('serve_fx', 10, candidates => '{}');
SELECT count(*) FROM dsl.recommend('serve_fx', 10, candidates => ARRAY[100, 103, 777]);

-- k larger than the catalogue: the whole (filtered) catalogue
SELECT * FROM dsl.recommend('serve_fx', 20, 100, false);
SELECT count(*) FROM dsl.recommend('serve_fx', 20, 2147483647);

-- unknown user: most popular training items, ties by lower id, NULL score
SELECT * FROM dsl.recommend('serve_fx', 99, 3);
SELECT * FROM dsl.recommend('serve_fx', -1);
SELECT * FROM dsl.recommend('serve_fx', 99, candidates => ARRAY[105, 103, 7777]);

-- bad arguments
SELECT * FROM dsl.recommend('serve_fx', 10, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.recommend('serve_fx', 10, -5);
SELECT * FROM dsl.recommend('no_such_model', 10);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.recommend(NULL, 10);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.recommend('serve_fx', 10, NULL);
SELECT * FROM dsl.recommend('serve_fx', 10, 5, NULL);
-- a NULL user gives no rows, as a strict function would
SELECT count(*) FROM dsl.recommend('serve_fx', NULL);

-- in a LATERAL join, one call per user
SELECT u.id AS user_id, r.item_id, r.score, r.rank, r.cold_start
  FROM (VALUES (10), (20), (99), (30)) u(id),
       LATERAL dsl.recommend('serve_fx', u.id, 2) r
 ORDER BY u.id, r.rank;

-- dsl.score: the inner product; NULL for an unknown user or item
SELECT dsl.score('serve_fx', 10, 100) AS s_10_100,
       dsl.score('serve_fx', 10, 104) AS s_10_104,
       dsl.score('serve_fx', 30, 103) AS s_30_103,
       dsl.score('serve_fx', 40, 102) AS s_40_102,
       dsl.score('serve_fx', 99, 100) IS NULL AS unknown_user,
       dsl.score('serve_fx', 10, 12345) IS NULL AS unknown_item,
       dsl.score('serve_fx', NULL, 100) IS NULL AS null_user;
SELECT dsl.score('no_such_model', 10, 100);

-- recommend, score and plain SQL over the stored rows agree: the same
-- ranking as ORDER BY <#> (ties by id) and the same scores
CREATE TEMP TABLE fx_params AS
SELECT p.part, p.entity_id, p.vec
  FROM dsl.parameters p JOIN dsl.models m USING (model_id)
 WHERE m.name = 'serve_fx';
CREATE TEMP TABLE by_sql AS
SELECT u.entity_id AS user_id, i.entity_id AS item_id,
       row_number() OVER (PARTITION BY u.entity_id
                          ORDER BY i.vec OPERATOR(dsl.<#>) u.vec, i.entity_id)::integer AS rank,
       round((-(i.vec OPERATOR(dsl.<#>) u.vec))::numeric, 4) AS score
  FROM fx_params u, fx_params i
 WHERE u.part = 'user' AND i.part = 'item';
CREATE TEMP TABLE by_recommend AS
SELECT u.entity_id AS user_id, r.item_id, r.rank, round(r.score::numeric, 4) AS score
  FROM fx_params u, LATERAL dsl.recommend('serve_fx', u.entity_id, 100, false) r
 WHERE u.part = 'user';
CREATE TEMP TABLE by_score AS
SELECT u.entity_id AS user_id, i.entity_id AS item_id,
       round(dsl.score('serve_fx', u.entity_id, i.entity_id)::numeric, 4) AS score
  FROM fx_params u, fx_params i
 WHERE u.part = 'user' AND i.part = 'item';
SELECT (SELECT count(*) FROM by_sql) AS pairs,
       (SELECT count(*) FROM (TABLE by_sql EXCEPT TABLE by_recommend) d) AS sql_not_recommend,
       (SELECT count(*) FROM (TABLE by_recommend EXCEPT TABLE by_sql) d) AS recommend_not_sql,
       (SELECT count(*) FROM (SELECT user_id, item_id, score FROM by_sql
                              EXCEPT TABLE by_score) d) AS sql_not_score;

-- The catalogue scan (float32 sgemv, then exact scores for the items near
-- the k-th) ranks exactly like scoring every item exactly, which is what the
-- candidates path does.  Coarse values plus noise far below float32 rounding
-- make many scores nearly tie.
SELECT setseed(0.5);
DO $$
DECLARE
    mid bigint;
BEGIN
    INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim,
                            density, hyperparams, n_users, n_items, n_interactions,
                            active_params, total_params, epochs, train_seconds)
    VALUES ('serve_rnd', 'mf', 'fixture', 'user_id', 'item_id', 16, 1, '{}',
            20, 3000, 0, 0, 0, 0, 0)
    RETURNING model_id INTO mid;
    INSERT INTO dsl.parameters (model_id, part, entity_id, vec)
    SELECT mid, p.part, e.id,
           array_agg((round(random() * 4) / 4 + random() * 1e-6)::real ORDER BY d.d)::real[]::dsl.spvec
      FROM (VALUES ('user', 20), ('item', 3000)) p(part, n),
           LATERAL generate_series(1, p.n) e(id), generate_series(1, 16) d(d)
     GROUP BY p.part, e.id;
    INSERT INTO dsl.seen_items (model_id, user_id, items)
    SELECT mid, u, array_agg(i)
      FROM generate_series(1, 20) u, generate_series(1, 3000) i
     WHERE random() < 0.1 GROUP BY u;
END
$$;
CREATE TEMP TABLE rnd_ids AS SELECT array_agg(i::bigint) AS ids FROM generate_series(1, 3000) i;
SELECT (SELECT count(*) FROM generate_series(1, 20) u,
               LATERAL dsl.recommend('serve_rnd', u, 100) r) AS rows,
       (SELECT count(*) FROM (
            SELECT u, r.* FROM generate_series(1, 20) u,
                   LATERAL dsl.recommend('serve_rnd', u, 100) r
            EXCEPT
            SELECT u, r.* FROM generate_series(1, 20) u, rnd_ids,
                   LATERAL dsl.recommend('serve_rnd', u, 100, true, rnd_ids.ids) r) d) AS differ,
       (SELECT count(*) FROM (
            SELECT u, r.* FROM generate_series(1, 20) u,
                   LATERAL dsl.recommend('serve_rnd', u, 7, false) r
            EXCEPT
            SELECT u, r.* FROM generate_series(1, 20) u, rnd_ids,
                   LATERAL dsl.recommend('serve_rnd', u, 7, false, rnd_ids.ids) r) d) AS differ_all;

-- dsl.recommend_all: every user's top k, as dsl.recommend gives it
SELECT * FROM dsl.recommend_all('serve_fx', 2);
SELECT * FROM dsl.recommend_all('serve_fx', 1, false);
SELECT (SELECT count(*) FROM dsl.recommend_all('serve_fx')) AS all_rows,
       (SELECT count(*) FROM (
            SELECT user_id, item_id, rank, score FROM dsl.recommend_all('serve_fx', 3)
            EXCEPT
            SELECT u.entity_id, r.item_id, r.rank, r.score
              FROM fx_params u, LATERAL dsl.recommend('serve_fx', u.entity_id, 3) r
             WHERE u.part = 'user') d) AS differ;
SELECT count(*) FROM dsl.recommend_all('serve_fx', 2147483647, false);   -- 4 x 6
SELECT * FROM dsl.recommend_all('serve_fx', 0);
SELECT * FROM dsl.recommend_all('no_such_model');

-- dsl.similar_items, cosine by default.  From 102 = (0.5, 0.5, 0), |102| = 0.7071:
--   100: 0.5 / 0.7071 = 0.7071     101: 0.7071
--   104: 0.5 / (0.7071 * 1.4142) = 0.5
--   103: 0    105: zero vector, cosine defined as 0
SELECT item_id, round(score::numeric, 4) AS score, rank FROM dsl.similar_items('serve_fx', 102);
SELECT item_id, round(score::numeric, 4) AS score, rank FROM dsl.similar_items('serve_fx', 102, 2);
-- by inner product: 100, 101, 104 tie at 0.5
SELECT * FROM dsl.similar_items('serve_fx', 102, 4, 'inner_product');
-- an item similar to nothing else: 105 (zero vector) ties at 0 with all
SELECT * FROM dsl.similar_items('serve_fx', 105, 3);
SELECT count(*) FROM dsl.similar_items('serve_fx', 100, 2147483647);
SELECT count(*) FROM dsl.similar_items('serve_fx', 12345);
SELECT * FROM dsl.similar_items('serve_fx', 102, 0);
SELECT * FROM dsl.similar_items('serve_fx', 102, 3, 'euclid');
\echo :LAST_ERROR_SQLSTATE

-- The cache: one load, then every call reuses it (hits counts reuses).
SELECT dsl.serving_cache_reset() >= 0 AS reset;
SELECT count(*) FROM dsl.recommend('serve_fx', 10);
SELECT count(*) FROM dsl.recommend('serve_fx', 20);
SELECT count(*) FROM dsl.recommend('serve_fx', 30);
SELECT dsl.score('serve_fx', 10, 100);
SELECT name, n_users, n_items, dim, hits, bytes > 0 AS has_memory FROM dsl.serving_cache();

-- Replace a model (delete + insert under the same name = new model_id): the
-- next call sees the new vectors.
SELECT serve_fixture('serve_swap',
    ARRAY['1', '{1:1}/3'],
    ARRAY['7', '{1:1}/3', '8', '{1:2}/3', '9', '{1:3}/3'],
    ARRAY[]::text[]) > 0 AS created;
SELECT * FROM dsl.recommend('serve_swap', 1);
DELETE FROM dsl.models WHERE name = 'serve_swap';
SELECT * FROM dsl.recommend('serve_swap', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT serve_fixture('serve_swap',
    ARRAY['1', '{1:1}/3'],
    ARRAY['7', '{1:3}/3', '8', '{1:2}/3', '9', '{1:-1}/3'],
    ARRAY['1', '{8}']) > 0 AS created;
SELECT * FROM dsl.recommend('serve_swap', 1);
SELECT name, n_users, n_items, hits FROM dsl.serving_cache() ORDER BY name;

-- A replace inside a transaction is seen by that transaction only; after
-- ROLLBACK the old model is served again.
BEGIN;
DELETE FROM dsl.models WHERE name = 'serve_swap';
SELECT serve_fixture('serve_swap',
    ARRAY['1', '{2:1}/3'],
    ARRAY['7', '{2:1}/3', '8', '{2:5}/3'],
    ARRAY[]::text[]) > 0 AS created;
SELECT * FROM dsl.recommend('serve_swap', 1);
ROLLBACK;
SELECT * FROM dsl.recommend('serve_swap', 1);

-- Editing dsl.parameters in place is not a new model; touching the models
-- row (any UPDATE) makes every backend reload it.
UPDATE dsl.parameters SET vec = '{1:-1}/3'
 WHERE part = 'user' AND entity_id = 1
   AND model_id = (SELECT model_id FROM dsl.models WHERE name = 'serve_swap');
UPDATE dsl.models SET train_seconds = train_seconds WHERE name = 'serve_swap';
SELECT * FROM dsl.recommend('serve_swap', 1);

-- The rows must match the model's dimension.
SELECT serve_fixture('serve_bad',
    ARRAY['1', '{1:1}/3'],
    ARRAY['7', '{1:1}/2'],
    ARRAY[]::text[]) > 0 AS created;
SELECT * FROM dsl.recommend('serve_bad', 1);
\echo :LAST_ERROR_SQLSTATE

-- A load reads the rows under settings of its own (the primary key's index,
-- no sort), whatever the session's, and gives the session's back.
SELECT serve_fixture('serve_plan',
    ARRAY['1', '{1:1}/3'],
    ARRAY['7', '{1:3}/3', '8', '{1:2}/3', '9', '{1:-1}/3'],
    ARRAY['1', '{8}']) > 0 AS created;
SET enable_indexscan = off;
SET enable_sort = on;
BEGIN;
SELECT * FROM dsl.recommend('serve_plan', 1);
-- (in the same transaction: its end would undo what a load left set)
SELECT current_setting('enable_indexscan') AS indexscan, current_setting('enable_sort') AS sort,
       current_setting('enable_seqscan') AS seqscan, current_setting('jit') AS jit;
COMMIT;
RESET enable_indexscan;
-- and after a load that failed while reading the rows
SELECT serve_fixture('serve_plan2',
    ARRAY['1', '{1:1}/3'],
    ARRAY['7', '{1:1}/2'],
    ARRAY[]::text[]) > 0 AS created;
SELECT * FROM dsl.recommend('serve_plan2', 1);
SELECT current_setting('enable_sort') AS sort_after_failed_load;
RESET enable_sort;

DELETE FROM dsl.models WHERE name IN ('serve_fx', 'serve_swap', 'serve_bad', 'serve_rnd', 'serve_plan',
                                      'serve_plan2');
SELECT * FROM dsl.recommend('serve_fx', 10);
DROP FUNCTION serve_fixture(text, text[], text[], text[]);
