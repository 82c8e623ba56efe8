-- Evaluation: dsl.evaluate (full ranking, training items excluded) and
-- dsl.split, on hand-made models (no training).

\set VERBOSITY terse

CREATE FUNCTION eval_fixture(model text, dim integer, users text[], items text[], seen text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    mid bigint;
BEGIN
    INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim,
                            density, hyperparams, n_users, n_items, n_interactions,
                            active_params, total_params, epochs, train_seconds)
    VALUES (model, 'mf', 'fixture', 'user_id', 'item_id', dim, 1, '{}',
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

-- The model of the recommend test, dim 3.  Items 100 (1,0,0), 101 (0,1,0),
-- 102 (0.5,0.5,0), 103 (0,0,1), 104 (1,0,-1), 105 (0,0,0); users 10
-- (2,1,0.5), 20 (1,1,0), 30 (0,0,-1), 40 (0,0,0); training items 10 {100,
-- 103}, 20 {101}, 30 none, 40 {100, 101}.  Rankings with training items
-- removed (ties by lower id):
--   10: 102 (1.5), 104 (1.5), 101 (1), 105 (0)
--   20: 100 (1), 102 (1), 104 (1), 103 (0), 105 (0)
--   30: 104 (1), 100 (0), 101 (0), 102 (0), 105 (0), 103 (-1)
--   40: 102, 103, 104, 105 (all 0)
SELECT eval_fixture('eval_fx', 3,
    ARRAY['10', '{1:2,2:1,3:0.5}/3', '20', '{1:1,2:1}/3',
          '30', '{3:-1}/3', '40', '{}/3'],
    ARRAY['100', '{1:1}/3', '101', '{2:1}/3', '102', '{1:0.5,2:0.5}/3',
          '103', '{3:1}/3', '104', '{1:1,3:-1}/3', '105', '{}/3'],
    ARRAY['10', '{103,100}', '20', '{101}', '40', '{100,101,999}']) > 0 AS created;

-- Test pairs, with columns of other names and integer types.  Duplicates
-- count once, rows with a NULL are skipped, item 555 is unknown to the model
-- (it counts in user 10's denominator but can never be hit), user 77 is
-- unknown (reported in users_unknown, not evaluated), user 40's only test
-- item 999 is unknown (evaluated, zero hits).
CREATE TABLE eval_test (uid integer, iid smallint, note text);
INSERT INTO eval_test (uid, iid) VALUES
    (10, 102), (10, 101), (10, 555), (10, 102), (10, NULL), (NULL, 100),
    (20, 102), (20, 103),
    (30, 104), (30, 100),
    (40, 999),
    (77, 100), (77, 101);

-- k = 2.  Top 2: 10 [102, 104], 20 [100, 102], 30 [104, 100], 40 [102, 103].
--   user  test            hits (rank)   recall  precision  ndcg                          mrr
--   10    {101,102,555}   102 (1)       1/3     1/2        1 / (1 + 1/log2 3) = 0.613147  1
--   20    {102,103}       102 (2)       1/2     1/2        (1/log2 3) / (1 + 1/log2 3)    1/2
--                                                          = 0.386853
--   30    {100,104}       104 (1), 100 (2)  1   1          1                             1
--   40    {999}           none          0       0          0                             0
-- recall = (1/3 + 1/2 + 1 + 0) / 4 = 0.458333, precision = (1/2 + 1/2 + 1) / 4 = 0.5,
-- ndcg = (0.613147 + 0.386853 + 1) / 4 = 0.5, hit_rate = 3/4, mrr = (1 + 1/2 + 1) / 4 = 0.625,
-- item_coverage = |{100, 102, 103, 104}| / 6 = 0.666667
SELECT metric, round(value::numeric, 6) AS value
  FROM dsl.evaluate('eval_fx', 'eval_test', 'uid', 'iid', 2);

-- k = 3.  Top 3: 10 [102, 104, 101], 20 [100, 102, 104], 30 [104, 100, 101], 40 [102, 103, 104].
--   10: hits 102 (1), 101 (3): recall 2/3, precision 2/3,
--       ndcg = (1 + 1/log2 4) / (1 + 1/log2 3 + 1/log2 4) = 1.5 / 2.130930 = 0.703918, mrr 1
--   20: hit 102 (2): recall 1/2, precision 1/3, ndcg 0.386853 (IDCG over min(3, 2) = 2), mrr 1/2
--   30: hits 104 (1), 100 (2): recall 1, precision 2/3, ndcg 1, mrr 1
--   40: nothing
-- recall = (2/3 + 1/2 + 1) / 4 = 0.541667, precision = (2/3 + 1/3 + 2/3) / 4 = 0.416667,
-- ndcg = (0.703918 + 0.386853 + 1) / 4 = 0.522693, hit_rate 0.75, mrr 0.625,
-- item_coverage = |{100, 101, 102, 103, 104}| / 6 = 0.833333
SELECT metric, round(value::numeric, 6) AS value
  FROM dsl.evaluate('eval_fx', 'eval_test', 'uid', 'iid', 3);

-- k beyond the catalogue: every unseen item is ranked.
--   10 [102, 104, 101, 105]: hits at 1 and 3, recall 2/3, ndcg 0.703918, mrr 1
--   20 [100, 102, 104, 103, 105]: hits at 2 and 4, recall 1,
--      ndcg = (1/log2 3 + 1/log2 5) / (1 + 1/log2 3) = 1.061606 / 1.630930 = 0.650921, mrr 1/2
--   30: recall 1, ndcg 1, mrr 1;  40: nothing
-- recall = (2/3 + 1 + 1) / 4 = 0.666667, ndcg = (0.703918 + 0.650921 + 1) / 4 = 0.588710,
-- precision = 6 hits / (4 * 2147483647) = 0.000000 (7e-10), every item recommended
SELECT metric, round(value::numeric, 6) AS value
  FROM dsl.evaluate('eval_fx', 'eval_test', 'uid', 'iid', 2147483647);

-- k = 1 with the default column names (a view renames them).  Top 1: 10
-- [102] hit, 20 [100] miss, 30 [104] hit, 40 [102] miss.  recall = (1/3 +
-- 1/2) / 4 = 0.208333, precision = ndcg = hit_rate = mrr = 2/4,
-- item_coverage = |{100, 102, 104}| / 6 = 0.5
CREATE VIEW eval_test_view AS SELECT uid AS user_id, iid AS item_id FROM eval_test;
SELECT metric, round(value::numeric, 6) AS value
  FROM dsl.evaluate('eval_fx', 'eval_test_view', k => 1);

-- No known test user: users_evaluated 0, the averages are NULL.
CREATE TABLE eval_empty (user_id bigint, item_id bigint);
SELECT * FROM dsl.evaluate('eval_fx', 'eval_empty');
INSERT INTO eval_empty VALUES (1, 100), (2, 100), (2, 101), (NULL, 100);
SELECT * FROM dsl.evaluate('eval_fx', 'eval_empty');

-- Bad arguments: columns that do not exist or are not integers, k, model.
SELECT * FROM dsl.evaluate('eval_fx', 'eval_test', 'nope', 'iid');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.evaluate('eval_fx', 'eval_test', 'uid', 'nope');
SELECT * FROM dsl.evaluate('eval_fx', 'eval_test', 'uid', 'note');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.evaluate('eval_fx', 'eval_test', 'uid', 'iid', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.evaluate('no_such_model', 'eval_test', 'uid', 'iid');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.evaluate('eval_fx', 'eval_test', NULL, 'iid');

-- A larger random model checked against the protocol written in plain SQL.
-- Entries are multiples of 1/8 (dim 8), so float and double scores are exact
-- and ties are real; 1500 items and a small work_mem make the evaluation run
-- in several user and item blocks.
SELECT setseed(0.25);
CREATE TABLE rnd_vec AS
SELECT p.part, e.id, array_agg(((floor(random() * 17) - 8) / 8)::real ORDER BY d.d) AS v
  FROM (VALUES ('user', 80), ('item', 1500)) p(part, n),
       LATERAL generate_series(1, p.n) e(id), generate_series(1, 8) d(d)
 GROUP BY p.part, e.id;
CREATE TABLE rnd_seen AS
SELECT u.id AS uid, i.id AS iid
  FROM generate_series(1, 80) u(id), generate_series(1, 1500) i(id)
 WHERE random() < 0.2 AND u.id % 10 <> 0;   -- users 10, 20, ... see nothing
CREATE TABLE rnd_test AS
SELECT u.id AS uid, i.id AS iid
  FROM generate_series(1, 80) u(id), generate_series(1, 1500) i(id)
 WHERE random() < 0.01
   AND NOT EXISTS (SELECT 1 FROM rnd_seen s WHERE s.uid = u.id AND s.iid = i.id);
INSERT INTO rnd_test VALUES (1, 100000), (2, 100001), (500, 1), (501, 2), (501, 3), (3, NULL);
INSERT INTO rnd_test SELECT uid, iid FROM rnd_test WHERE uid % 7 = 0;   -- duplicates
DO $$
DECLARE
    mid bigint;
BEGIN
    INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim,
                            density, hyperparams, n_users, n_items, n_interactions,
                            active_params, total_params, epochs, train_seconds)
    VALUES ('eval_rnd', 'mf', 'fixture', 'uid', 'iid', 8, 1, '{}', 80, 1500, 0, 0, 0, 0, 0)
    RETURNING model_id INTO mid;
    INSERT INTO dsl.parameters SELECT mid, part, id, v::dsl.spvec FROM rnd_vec;
    INSERT INTO dsl.seen_items SELECT mid, uid, array_agg(iid) FROM rnd_seen GROUP BY uid;
END
$$;

-- the reference: rank every unseen item by <#>, ties by id
CREATE TABLE rnd_rank AS
SELECT u.id AS uid, i.id AS iid,
       row_number() OVER (PARTITION BY u.id
                          ORDER BY i.v::dsl.spvec OPERATOR(dsl.<#>) u.v::dsl.spvec, i.id) AS r
  FROM rnd_vec u, rnd_vec i
 WHERE u.part = 'user' AND i.part = 'item'
   AND NOT EXISTS (SELECT 1 FROM rnd_seen s WHERE s.uid = u.id AND s.iid = i.id);

CREATE FUNCTION rnd_reference(k integer) RETURNS TABLE (metric text, value double precision)
LANGUAGE sql AS $$
WITH t AS (SELECT DISTINCT uid, iid FROM rnd_test WHERE uid IS NOT NULL AND iid IS NOT NULL),
     tu AS (SELECT uid, count(*) AS n FROM t
             WHERE uid IN (SELECT id FROM rnd_vec WHERE part = 'user') GROUP BY uid),
     top AS (SELECT r.* FROM rnd_rank r JOIN tu USING (uid) WHERE r.r <= k),
     pu AS (SELECT tu.uid, tu.n, count(t.iid) AS hits,
                   coalesce(sum(1 / log(2, top.r + 1.0)) FILTER (WHERE t.iid IS NOT NULL), 0) AS dcg,
                   min(top.r) FILTER (WHERE t.iid IS NOT NULL) AS first
              FROM tu LEFT JOIN top ON top.uid = tu.uid
                      LEFT JOIN t ON t.uid = top.uid AND t.iid = top.iid
             GROUP BY tu.uid, tu.n)
SELECT 'recall', avg(hits::float8 / n) FROM pu
UNION ALL
SELECT 'ndcg', avg(dcg::float8 / (SELECT sum(1 / log(2, j + 1.0))::float8
                                    FROM generate_series(1, least(k, n)) j)) FROM pu
UNION ALL
SELECT 'precision', avg(hits::float8 / k) FROM pu
UNION ALL
SELECT 'hit_rate', avg((hits > 0)::integer::float8) FROM pu
UNION ALL
SELECT 'mrr', avg(coalesce(1.0 / first, 0)::float8) FROM pu
UNION ALL
SELECT 'recall_truncated', avg(hits::float8 / least(k, n)) FROM pu
UNION ALL
SELECT 'users_evaluated', count(*)::float8 FROM pu
UNION ALL
SELECT 'users_unknown', count(DISTINCT uid)::float8 FROM t
 WHERE uid NOT IN (SELECT id FROM rnd_vec WHERE part = 'user')
UNION ALL
SELECT 'item_coverage', (SELECT count(DISTINCT iid) FROM top)::float8 / 1500
$$;

SET work_mem = '64kB';
SELECT r.metric, round(e.value::numeric, 9) = round(r.value::numeric, 9) AS agree,
       r.metric IN ('users_evaluated', 'users_unknown') OR r.value > 0 AS nonzero
  FROM rnd_reference(20) r LEFT JOIN dsl.evaluate('eval_rnd', 'rnd_test', 'uid', 'iid') e USING (metric);
SELECT r.metric, round(e.value::numeric, 9) = round(r.value::numeric, 9) AS agree
  FROM rnd_reference(1) r LEFT JOIN dsl.evaluate('eval_rnd', 'rnd_test', 'uid', 'iid', 1) e USING (metric);
-- k beyond the catalogue: every unseen item is ranked
SELECT r.metric, round(e.value::numeric, 9) = round(r.value::numeric, 9) AS agree
  FROM rnd_reference(2000) r LEFT JOIN dsl.evaluate('eval_rnd', 'rnd_test', 'uid', 'iid', 2000) e USING (metric);
SELECT metric, value FROM dsl.evaluate('eval_rnd', 'rnd_test', 'uid', 'iid')
 WHERE metric IN ('users_evaluated', 'users_unknown');

-- recommend_all (many users at once) and recommend (one user) rank as the
-- reference: the rows of their top 7 that the reference's lack
CREATE FUNCTION rank_differ(model text, OUT all_differ bigint, OUT one_differ bigint)
LANGUAGE sql AS $$
SELECT (SELECT count(*) FROM (
            SELECT user_id, item_id, rank FROM dsl.recommend_all(model, 7)
            EXCEPT
            SELECT uid, iid, r FROM rnd_rank WHERE r <= 7) d),
       (SELECT count(*) FROM (
            SELECT u.id, x.item_id, x.rank
              FROM generate_series(1, 80) u(id), LATERAL dsl.recommend(model, u.id, 7) x
            EXCEPT
            SELECT uid, iid, r FROM rnd_rank WHERE r <= 7) d)
$$;
SELECT (SELECT count(*) FROM dsl.recommend_all('eval_rnd', 7)) AS rows, d.*
  FROM rank_differ('eval_rnd') d;
RESET work_mem;

-- The same model with most entries zero: served in the sparse form (smaller
-- than the dense one, docs/serving.md), with the same exact scores.
UPDATE rnd_vec SET v = (SELECT array_agg(CASE WHEN (id * 7 + d * 3 + length(part)) % 10 < 1
                                            THEN v[d] ELSE 0 END ORDER BY d)
                          FROM generate_series(1, 8) d);
SELECT count(*) FILTER (WHERE x <> 0)::float8 / count(*) < 0.5 AS mostly_zero
  FROM rnd_vec, unnest(v) x;
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
                        n_users, n_items, n_interactions, active_params, total_params, epochs,
                        train_seconds)
SELECT 'eval_rnd_sparse', model_type, source, user_col, item_col, dim, 0.3, hyperparams,
       n_users, n_items, n_interactions, active_params, total_params, epochs, train_seconds
  FROM dsl.models WHERE name = 'eval_rnd';
INSERT INTO dsl.parameters
SELECT (SELECT model_id FROM dsl.models WHERE name = 'eval_rnd_sparse'), part, id, v::dsl.spvec FROM rnd_vec;
INSERT INTO dsl.seen_items
SELECT (SELECT model_id FROM dsl.models WHERE name = 'eval_rnd_sparse'), user_id, items
  FROM dsl.seen_items WHERE model_id = (SELECT model_id FROM dsl.models WHERE name = 'eval_rnd');
TRUNCATE rnd_rank;
INSERT INTO rnd_rank
SELECT u.id, i.id,
       row_number() OVER (PARTITION BY u.id
                          ORDER BY i.v::dsl.spvec OPERATOR(dsl.<#>) u.v::dsl.spvec, i.id)
  FROM rnd_vec u, rnd_vec i
 WHERE u.part = 'user' AND i.part = 'item'
   AND NOT EXISTS (SELECT 1 FROM rnd_seen s WHERE s.uid = u.id AND s.iid = i.id);
SET work_mem = '64kB';
SELECT r.metric, round(e.value::numeric, 9) = round(r.value::numeric, 9) AS agree
  FROM rnd_reference(20) r LEFT JOIN dsl.evaluate('eval_rnd_sparse', 'rnd_test', 'uid', 'iid') e USING (metric);
SELECT d.*,
       (SELECT count(*) FROM generate_series(1, 80) u(id), generate_series(1, 1500, 37) i(id)
         WHERE dsl.score('eval_rnd_sparse', u.id, i.id)
               IS DISTINCT FROM dsl.score('eval_rnd_sparse', u.id, i.id)) AS unstable,
       (SELECT count(*) FROM rnd_vec u, rnd_vec i
         WHERE u.part = 'user' AND i.part = 'item' AND i.id % 37 = 1
           AND dsl.score('eval_rnd_sparse', u.id, i.id)
               <> (-(i.v::dsl.spvec OPERATOR(dsl.<#>) u.v::dsl.spvec))::real) AS score_differ
  FROM rank_differ('eval_rnd_sparse') d;
SELECT count(*) AS similar_rows FROM dsl.similar_items('eval_rnd_sparse', 5, 10);
-- every float32 kernel of the sparse form gives the same (exact) rankings
PREPARE sparse_differ AS
SELECT current_setting('dsl_rec.debug_serving_kernel') AS kernel, rd.one_differ,
       (SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank)
          FROM dsl.similar_items('eval_rnd_sparse', 5, 10)) =
       (SELECT string_agg(i.id || ':' || (-(i.v::dsl.spvec OPERATOR(dsl.<#>) q.v::dsl.spvec)
                                          / (sqrt(-(i.v::dsl.spvec OPERATOR(dsl.<#>) i.v::dsl.spvec))
                                             * sqrt(-(q.v::dsl.spvec OPERATOR(dsl.<#>) q.v::dsl.spvec))))::real,
                          ',' ORDER BY r)
          FROM (SELECT i.*, row_number() OVER (ORDER BY
                        (-(i.v::dsl.spvec OPERATOR(dsl.<#>) q.v::dsl.spvec)
                         / nullif(sqrt(-(i.v::dsl.spvec OPERATOR(dsl.<#>) i.v::dsl.spvec))
                                  * sqrt(-(q.v::dsl.spvec OPERATOR(dsl.<#>) q.v::dsl.spvec)), 0))::real DESC NULLS LAST,
                        i.id) AS r
                  FROM rnd_vec i, rnd_vec q
                 WHERE i.part = 'item' AND q.part = 'item' AND q.id = 5 AND i.id <> 5) i,
               rnd_vec q
         WHERE q.part = 'item' AND q.id = 5 AND i.r <= 10) AS similar_same,
       rd.all_differ,
       (SELECT round(value::numeric, 9) FROM dsl.evaluate('eval_rnd_sparse', 'rnd_test', 'uid', 'iid')
         WHERE metric = 'recall') = (SELECT round(value::numeric, 9) FROM rnd_reference(20)
                                      WHERE metric = 'recall') AS recall_agrees
  FROM rank_differ('eval_rnd_sparse') rd;
SET dsl_rec.debug_serving_kernel = scalar;
EXECUTE sparse_differ;
SET dsl_rec.debug_serving_kernel = avx2;
EXECUTE sparse_differ;
SET dsl_rec.debug_serving_kernel = avx512;
EXECUTE sparse_differ;
RESET dsl_rec.debug_serving_kernel;
DEALLOCATE sparse_differ;
-- the sparse form takes less memory than the dense one of the same rows
SELECT count(*) FROM dsl.recommend('eval_rnd', 1, 1);
SELECT (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_rnd_sparse')
     < (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_rnd') AS sparse_smaller;
RESET work_mem;

-- Every item row the same: all scores tie, so every user's top k is its k
-- lowest unseen item ids, in the sparse form (more ties than a user's
-- candidate buffer holds: that user is ranked alone) and the dense one.
-- The models rows understate the counts (1 user, 1 item): they only size
-- the loader's first arrays, which grow.
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
                        n_users, n_items, n_interactions, active_params, total_params, epochs,
                        train_seconds)
SELECT n, model_type, source, user_col, item_col, dim, 0.3, hyperparams,
       1, 1, n_interactions, active_params, total_params, epochs, train_seconds
  FROM dsl.models, (VALUES ('eval_ties_sparse'), ('eval_ties_dense')) t(n) WHERE name = 'eval_rnd';
INSERT INTO dsl.parameters
SELECT m.model_id, v.part, v.id,
       CASE WHEN v.part = 'user' THEN v.v
            WHEN m.name = 'eval_ties_sparse' THEN ARRAY[0, 0.5, 0, 0, 0, 0, 0, 0]::real[]
            ELSE ARRAY[0.25, 0.5, -0.5, 1, 0.75, 0.125, 2, -1]::real[] END::dsl.spvec
  FROM dsl.models m, rnd_vec v WHERE m.name IN ('eval_ties_sparse', 'eval_ties_dense');
INSERT INTO dsl.seen_items
SELECT m.model_id, s.user_id, s.items
  FROM dsl.models m, dsl.seen_items s
 WHERE m.name IN ('eval_ties_sparse', 'eval_ties_dense')
   AND s.model_id = (SELECT model_id FROM dsl.models WHERE name = 'eval_rnd');
CREATE TABLE ties_rank AS
SELECT u.id AS uid, i.id AS iid, row_number() OVER (PARTITION BY u.id ORDER BY i.id) AS r
  FROM rnd_vec u, rnd_vec i
 WHERE u.part = 'user' AND i.part = 'item'
   AND NOT EXISTS (SELECT 1 FROM rnd_seen s WHERE s.uid = u.id AND s.iid = i.id);
SELECT m AS model,
       (SELECT count(*) FROM dsl.recommend_all(m, 40)) AS rows,
       (SELECT count(*) FROM (
            SELECT user_id, item_id, rank FROM dsl.recommend_all(m, 40)
            EXCEPT
            SELECT uid, iid, r FROM ties_rank WHERE r <= 40) d) AS all_differ,
       (SELECT count(DISTINCT score) FROM dsl.recommend_all(m, 40) GROUP BY user_id
         ORDER BY 1 DESC LIMIT 1) AS scores_per_user
  FROM (VALUES ('eval_ties_sparse'), ('eval_ties_dense')) t(m);
SELECT (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_ties_sparse')
     < (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_ties_dense') AS sparse_smaller;
-- k beyond the catalogue: every unseen item, by the sparse kernel (its
-- candidate lists as long as the catalogue) and, when those do not fit in
-- work_mem, by sgemm blocks
PREPARE ties_whole AS
SELECT m AS model, current_setting('work_mem') AS work_mem,
       (SELECT count(*) FROM dsl.recommend_all(m, 2000)) = (SELECT count(*) FROM ties_rank) AS all_rows,
       (SELECT count(*) FROM (
            SELECT user_id, item_id, rank FROM dsl.recommend_all(m, 2000)
            EXCEPT
            SELECT uid, iid, r FROM ties_rank) d) AS all_differ
  FROM (VALUES ('eval_ties_sparse'), ('eval_ties_dense')) t(m);
SET work_mem = '4MB';
EXECUTE ties_whole;
SET work_mem = '64kB';
EXECUTE ties_whole;
RESET work_mem;
DEALLOCATE ties_whole;

-- A sparse catalogue longer than one block of the one-user scan (4096
-- rows, serve_rows.c): each user's top 30 with its seen items spread over
-- the blocks, and an item's neighbours by inner product (the item itself
-- left out), as SQL over the stored rows ranks them, with every kernel.
CREATE TABLE big_vec AS
SELECT p.part, id, (SELECT array_agg(CASE WHEN hashint4(id * 8 + d) % 5 = 0
                                          THEN (hashint4(id * 16 + d) % 1000) / 1000.0 ELSE 0 END
                                     ORDER BY d)
                      FROM generate_series(1, 8) d)::real[] AS v
  FROM (VALUES ('user', 12), ('item', 9000)) p(part, n), generate_series(1, p.n) id;
UPDATE big_vec SET v = ARRAY[1, 1, 1, 1, 1, 1, 1, 1]::real[] WHERE part = 'user' AND id = 1;
-- user 2 scores every item below 0 but the empty rows: its top 30 are ties
-- at 0, where the last slice's padding (9000 is not a multiple of 16) would
-- tie too if the scan took it for rows
UPDATE big_vec SET v = ARRAY[-1, -1, -1, -1, -1, -1, -1, -1]::real[] WHERE part = 'user' AND id = 2;
CREATE TABLE big_seen AS
SELECT u AS uid, i AS iid FROM generate_series(1, 12) u, generate_series(1, 9000) i
 WHERE hashint4(u * 9001 + i) % 300 = 0;
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
                        n_users, n_items, n_interactions, active_params, total_params, epochs,
                        train_seconds)
SELECT 'eval_big_sparse', model_type, source, user_col, item_col, dim, 0.2, hyperparams,
       12, 9000, n_interactions, active_params, total_params, epochs, train_seconds
  FROM dsl.models WHERE name = 'eval_rnd';
INSERT INTO dsl.parameters
SELECT (SELECT model_id FROM dsl.models WHERE name = 'eval_big_sparse'), part, id, v::dsl.spvec
  FROM big_vec;
INSERT INTO dsl.seen_items
SELECT (SELECT model_id FROM dsl.models WHERE name = 'eval_big_sparse'), uid, array_agg(iid ORDER BY iid)
  FROM big_seen GROUP BY uid;
CREATE TABLE big_rank AS
SELECT u.id AS uid, i.id AS iid,
       row_number() OVER (PARTITION BY u.id
                          ORDER BY i.v::dsl.spvec OPERATOR(dsl.<#>) u.v::dsl.spvec, i.id) AS r
  FROM big_vec u, big_vec i
 WHERE u.part = 'user' AND i.part = 'item'
   AND NOT EXISTS (SELECT 1 FROM big_seen s WHERE s.uid = u.id AND s.iid = i.id);
DELETE FROM big_rank WHERE r > 30;
PREPARE big_differ AS
SELECT current_setting('dsl_rec.debug_serving_kernel') AS kernel,
       (SELECT count(*) FROM (
            SELECT u.id, x.item_id, x.rank
              FROM generate_series(1, 12) u(id), LATERAL dsl.recommend('eval_big_sparse', u.id, 30) x
            EXCEPT
            SELECT uid, iid, r FROM big_rank) d) AS one_differ,
       (SELECT array_agg(item_id ORDER BY rank)
          FROM dsl.similar_items('eval_big_sparse', 6001, 12, 'inner_product')) =
       (SELECT array_agg(id::bigint ORDER BY r) FROM (
            SELECT i.id, row_number() OVER (ORDER BY i.v::dsl.spvec OPERATOR(dsl.<#>) q.v::dsl.spvec,
                                                     i.id) AS r
              FROM big_vec i, big_vec q
             WHERE i.part = 'item' AND q.part = 'item' AND q.id = 6001 AND i.id <> 6001) n
         WHERE r <= 12) AS similar_same;
EXECUTE big_differ;
SET dsl_rec.debug_serving_kernel = scalar;
EXECUTE big_differ;
SET dsl_rec.debug_serving_kernel = avx2;
EXECUTE big_differ;
SET dsl_rec.debug_serving_kernel = avx512;
EXECUTE big_differ;
RESET dsl_rec.debug_serving_kernel;
DEALLOCATE big_differ;
-- served sparse: smaller than the same rows with no zero entry
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
                        n_users, n_items, n_interactions, active_params, total_params, epochs,
                        train_seconds)
SELECT 'eval_big_dense', model_type, source, user_col, item_col, dim, 1, hyperparams,
       n_users, n_items, n_interactions, active_params, total_params, epochs, train_seconds
  FROM dsl.models WHERE name = 'eval_big_sparse';
INSERT INTO dsl.parameters
SELECT (SELECT model_id FROM dsl.models WHERE name = 'eval_big_dense'), part, id,
       (SELECT array_agg(CASE WHEN x = 0 THEN 1e-30 ELSE x END) FROM unnest(v) x)::dsl.spvec
  FROM big_vec;
SELECT count(*) FROM dsl.recommend('eval_big_dense', 1, 1);
SELECT (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_big_sparse')
     < (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_big_dense') AS sparse_smaller;

-- Rows wider than 256 columns keep two-byte columns in the sparse form
-- (one byte up to 256): a dim-300 model at 10 % ranks as SQL does.
CREATE TABLE wide_vec AS
SELECT p.part, id, (SELECT array_agg(CASE WHEN hashint4(id * 300 + d) % 10 = 0
                                          THEN (hashint4(id * 600 + d) % 1000) / 1000.0 ELSE 0 END
                                     ORDER BY d)
                      FROM generate_series(1, 300) d)::real[] AS v
  FROM (VALUES ('user', 6), ('item', 700)) p(part, n), generate_series(1, p.n) id;
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
                        n_users, n_items, n_interactions, active_params, total_params, epochs,
                        train_seconds)
SELECT 'eval_wide_sparse', model_type, source, user_col, item_col, 300, 0.1, hyperparams,
       6, 700, n_interactions, active_params, total_params, epochs, train_seconds
  FROM dsl.models WHERE name = 'eval_rnd';
INSERT INTO dsl.parameters
SELECT (SELECT model_id FROM dsl.models WHERE name = 'eval_wide_sparse'), part, id, v::dsl.spvec
  FROM wide_vec;
PREPARE wide_differ AS
SELECT current_setting('dsl_rec.debug_serving_kernel') AS kernel, count(*) AS differ FROM (
    SELECT u.id, x.item_id, x.score, x.rank
      FROM generate_series(1, 6) u(id), LATERAL dsl.recommend('eval_wide_sparse', u.id, 15) x
    EXCEPT
    SELECT uid, iid, score, r FROM (
        SELECT u.id AS uid, i.id AS iid, (-(i.v::dsl.spvec OPERATOR(dsl.<#>) u.v::dsl.spvec))::real AS score,
               row_number() OVER (PARTITION BY u.id
                                  ORDER BY i.v::dsl.spvec OPERATOR(dsl.<#>) u.v::dsl.spvec, i.id) AS r
          FROM wide_vec u, wide_vec i WHERE u.part = 'user' AND i.part = 'item') ref
     WHERE r <= 15) d;
EXECUTE wide_differ;
SET dsl_rec.debug_serving_kernel = scalar;
EXECUTE wide_differ;
SET dsl_rec.debug_serving_kernel = avx2;
EXECUTE wide_differ;
RESET dsl_rec.debug_serving_kernel;
DEALLOCATE wide_differ;
SELECT (SELECT array_agg(x) FROM dsl.recommend('eval_wide_sparse', 2, 5) x)
       IS NOT NULL AS served,
       (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_wide_sparse')
       < 706 * 300 * 4 AS sparse_form;

-- The int8 first pass of catalogue scans (serve_q8.h; 'auto' gives it to
-- big tables only): the same tables loaded with it rank exactly as without
-- it, dense and sparse, with either kernel, with all scores tied, and for an
-- ad-hoc history.
CREATE FUNCTION copy_model(src text, dst text) RETURNS void LANGUAGE sql AS $$
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
                        n_users, n_items, n_interactions, active_params, total_params, epochs,
                        train_seconds)
SELECT dst, model_type, source, user_col, item_col, dim, density, hyperparams,
       n_users, n_items, n_interactions, active_params, total_params, epochs, train_seconds
  FROM dsl.models WHERE name = src;
INSERT INTO dsl.parameters
SELECT (SELECT model_id FROM dsl.models WHERE name = dst), part, entity_id, vec
  FROM dsl.parameters WHERE model_id = (SELECT model_id FROM dsl.models WHERE name = src);
INSERT INTO dsl.seen_items
SELECT (SELECT model_id FROM dsl.models WHERE name = dst), user_id, items
  FROM dsl.seen_items WHERE model_id = (SELECT model_id FROM dsl.models WHERE name = src);
$$;
SELECT copy_model(m, m || '_q8')
  FROM unnest(ARRAY['eval_rnd', 'eval_rnd_sparse', 'eval_ties_sparse', 'eval_ties_dense']) m;
SET dsl_rec.debug_serving_prescore = on;
-- (rnd_rank now holds the sparse rows' ranking: each copy against its model)
CREATE FUNCTION recommend_differ(a text, b text) RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM (
    (SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 80) u(id), LATERAL dsl.recommend(a, u.id, 7) x
     EXCEPT
     SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 80) u(id), LATERAL dsl.recommend(b, u.id, 7) x)
    UNION ALL
    (SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 80) u(id), LATERAL dsl.recommend(b, u.id, 7) x
     EXCEPT
     SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 80) u(id), LATERAL dsl.recommend(a, u.id, 7) x)) d
$$;
PREPARE q8_differ AS
SELECT m AS model, current_setting('dsl_rec.debug_serving_kernel') AS kernel,
       recommend_differ(m, m || '_q8') AS differ,
       (SELECT count(*) FROM dsl.recommend(m || '_q8', 1, 7)) AS listed
  FROM (VALUES ('eval_rnd'), ('eval_rnd_sparse')) t(m);
EXECUTE q8_differ;
SET dsl_rec.debug_serving_kernel = scalar;
EXECUTE q8_differ;
SET dsl_rec.debug_serving_kernel = avx2;
EXECUTE q8_differ;
RESET dsl_rec.debug_serving_kernel;
DEALLOCATE q8_differ;
SELECT m AS model,
       (SELECT count(*) FROM (
            SELECT u.id, x.item_id, x.rank
              FROM generate_series(1, 80) u(id), LATERAL dsl.recommend(m, u.id, 40) x
            EXCEPT
            SELECT uid, iid, r FROM ties_rank WHERE r <= 40) d) AS one_differ
  FROM (VALUES ('eval_ties_sparse_q8'), ('eval_ties_dense_q8')) t(m);
SELECT (SELECT array_agg(item_id::text || ':' || score ORDER BY rank)
          FROM dsl.recommend_for_items('eval_rnd_q8', ARRAY[3, 17, 99, 400, 1200]::bigint[], 15))
     = (SELECT array_agg(item_id::text || ':' || score ORDER BY rank)
          FROM dsl.recommend_for_items('eval_rnd', ARRAY[3, 17, 99, 400, 1200]::bigint[], 15))
       AS history_same;
-- and over blocks of slices (64 of 16 rows) with seen items and the item
-- itself left out in each, with every kernel
SELECT copy_model('eval_big_sparse', 'eval_big_sparse_q8');
PREPARE big_q8_differ AS
SELECT current_setting('dsl_rec.debug_serving_kernel') AS kernel,
       (SELECT count(*) FROM (
            SELECT u.id, x.item_id, x.rank
              FROM generate_series(1, 12) u(id), LATERAL dsl.recommend('eval_big_sparse_q8', u.id, 30) x
            EXCEPT
            SELECT uid, iid, r FROM big_rank) d) AS one_differ,
       (SELECT array_agg(item_id::text || ':' || score ORDER BY rank)
          FROM dsl.similar_items('eval_big_sparse_q8', 6001, 12, 'inner_product')) =
       (SELECT array_agg(item_id::text || ':' || score ORDER BY rank)
          FROM dsl.similar_items('eval_big_sparse', 6001, 12, 'inner_product')) AS similar_same;
EXECUTE big_q8_differ;
SET dsl_rec.debug_serving_kernel = scalar;
EXECUTE big_q8_differ;
SET dsl_rec.debug_serving_kernel = avx2;
EXECUTE big_q8_differ;
RESET dsl_rec.debug_serving_kernel;
DEALLOCATE big_q8_differ;
-- the same copy built by the plain C code (loaded with the scalar kernel
-- chosen), then scanned by each kernel
SELECT copy_model('eval_big_sparse', 'eval_big_sparse_q8c');
SET dsl_rec.debug_serving_kernel = scalar;
SELECT count(*) AS loaded FROM dsl.recommend('eval_big_sparse_q8c', 1, 1);
PREPARE big_q8c_differ AS
SELECT current_setting('dsl_rec.debug_serving_kernel') AS kernel, count(*) AS one_differ FROM (
    SELECT u.id, x.item_id, x.rank
      FROM generate_series(1, 12) u(id), LATERAL dsl.recommend('eval_big_sparse_q8c', u.id, 30) x
    EXCEPT
    SELECT uid, iid, r FROM big_rank) d;
EXECUTE big_q8c_differ;
RESET dsl_rec.debug_serving_kernel;
EXECUTE big_q8c_differ;
DEALLOCATE big_q8c_differ;
-- rows too wide for the slices' copy (dim 300) get the row-by-row one
SELECT copy_model('eval_wide_sparse', 'eval_wide_sparse_q8');
SELECT count(*) AS wide_differ FROM (
    (SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 6) u(id), LATERAL dsl.recommend('eval_wide_sparse', u.id, 15) x
     EXCEPT
     SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 6) u(id), LATERAL dsl.recommend('eval_wide_sparse_q8', u.id, 15) x)
    UNION ALL
    (SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 6) u(id), LATERAL dsl.recommend('eval_wide_sparse_q8', u.id, 15) x
     EXCEPT
     SELECT u.id, x.item_id, x.score, x.rank
       FROM generate_series(1, 6) u(id), LATERAL dsl.recommend('eval_wide_sparse', u.id, 15) x)) d;
SELECT (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_wide_sparse_q8')
     - (SELECT bytes FROM dsl.serving_cache() WHERE name = 'eval_wide_sparse')
     >= 700 * 300 AS row_copy_held;
RESET dsl_rec.debug_serving_prescore;

-- dsl.split: per user, round(test_fraction * n) of its distinct pairs (halves
-- up) are test pairs, picked by a seeded hash.
CREATE TABLE split_src (u integer, i integer, s text);
INSERT INTO split_src (u, i)
SELECT u, i FROM (VALUES (1, 1), (2, 3), (3, 5), (4, 8), (5, 10), (6, 13)) c(u, n),
       LATERAL generate_series(100, 99 + c.n) i;
INSERT INTO split_src (u, i) VALUES (2, 100), (2, 101), (NULL, 5), (7, NULL);
-- 0.2: n = 1, 3, 5, 8, 10, 13 -> 0, 1 (0.6), 1, 2 (1.6), 2, 3 (2.6)
SELECT user_id, count(*) AS n, count(*) FILTER (WHERE is_test) AS n_test
  FROM dsl.split('split_src', 'u', 'i') GROUP BY user_id ORDER BY user_id;
-- 0.5: 1 (0.5), 2 (1.5), 3 (2.5), 4, 5, 7 (6.5)
SELECT user_id, count(*) FILTER (WHERE is_test) AS n_test
  FROM dsl.split('split_src', 'u', 'i', 0.5, 7) GROUP BY user_id ORDER BY user_id;
SELECT count(*) FILTER (WHERE is_test) AS at_0, count(*) AS pairs
  FROM dsl.split('split_src', 'u', 'i', 0);
SELECT count(*) FILTER (WHERE is_test) AS at_1 FROM dsl.split('split_src', 'u', 'i', 1);
-- the same call gives the same split; another seed another one
SELECT (SELECT count(*) FROM (SELECT * FROM dsl.split('split_src', 'u', 'i', 0.5, 42)
                              EXCEPT
                              SELECT * FROM dsl.split('split_src', 'u', 'i', 0.5, 42)) d) AS same_seed_differ,
       (SELECT count(*) FROM (SELECT * FROM dsl.split('split_src', 'u', 'i', 0.5, 42)
                              EXCEPT
                              SELECT * FROM dsl.split('split_src', 'u', 'i', 0.5, 43)) d) > 0 AS other_seed_differs;
-- the hash is platform-independent, so the split itself is stable
SELECT * FROM dsl.split('split_src', 'u', 'i', 0.5, 42) WHERE user_id = 4;
SELECT * FROM dsl.split('split_src', 'u', 'i', 1.5);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.split('split_src', 'u', 'i', 'NaN');
SELECT * FROM dsl.split('split_src', 'user_id', 'i');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.split('split_src', 'u', 's');
\echo :LAST_ERROR_SQLSTATE

-- clean up
DELETE FROM dsl.models WHERE name IN ('eval_fx', 'eval_rnd', 'eval_rnd_sparse');
DROP VIEW eval_test_view;
DROP TABLE eval_test, eval_empty, rnd_vec, rnd_seen, rnd_test, rnd_rank, split_src;
DROP FUNCTION rnd_reference(integer);
DROP FUNCTION eval_fixture(text, integer, text[], text[], text[]);
