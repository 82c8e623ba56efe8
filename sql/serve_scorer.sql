-- Serving dispatches by model type: the cache resolves each model's scorer
-- from dsl.models.model_type (ModelOps.scorer, src/scorer.h).  Every
-- registered model type is trained on a small graph and must serve, through
-- its scorer, the scores of its stored rows: dsl.score is the inner product
-- of the 'user' and 'item' rows (to float rounding), dsl.recommend ranks by
-- dsl.score, dsl.recommend_all reports dsl.score's numbers, dsl.evaluate's
-- recall is that of dsl.recommend_all's lists.  NeuMF's score is no inner
-- product of stored rows: every check but that one applies to it too (its
-- forward pass is checked in serve_neumf).  A model whose type this library
-- cannot serve is a FEATURE_NOT_SUPPORTED error naming it and its type.

\set VERBOSITY terse

CREATE TABLE sc_pairs AS
SELECT u AS user_id, (u * 7 + j * 3) % 40 AS item_id
FROM generate_series(1, 30) u, generate_series(0, 5) j;
-- held-out pairs for dsl.evaluate: items the user did not train on
CREATE TABLE sc_test AS
SELECT u AS user_id, (u * 11 + j * 5 + 1) % 40 AS item_id
FROM generate_series(1, 30) u, generate_series(0, 2) j
EXCEPT SELECT user_id, item_id FROM sc_pairs;

-- one model of every registered type (the list is the registry's)
SET client_min_messages = warning;
SELECT t AS model_type,
       (SELECT count(*) FROM dsl.train('sc_' || t, 'sc_pairs', model_type => t,
                                       dim => 8, density => 1, epochs => 3,
                                       seed => 3)) AS epochs
FROM unnest(dsl.model_types()) AS t;
RESET client_min_messages;

CREATE VIEW sc_models AS
SELECT model_id, name, model_type FROM dsl.models WHERE name LIKE 'sc\_%';

-- dsl.score against the stored rows' inner product, for every pair
-- (the inner-product types)
SELECT m.model_type, count(*) AS pairs,
       count(*) FILTER (WHERE abs(dsl.score(m.name, u.entity_id, i.entity_id)
                                  + (i.vec OPERATOR(dsl.<#>) u.vec))
                              > 1e-6 * (1 + abs(i.vec OPERATOR(dsl.<#>) u.vec))) AS off
FROM sc_models m
JOIN dsl.parameters u ON u.model_id = m.model_id AND u.part = 'user'
JOIN dsl.parameters i ON i.model_id = m.model_id AND i.part = 'item'
WHERE m.model_type <> 'neumf'
GROUP BY m.model_type ORDER BY m.model_type;

-- dsl.recommend: 5 unseen items per user, scores as dsl.score reports them,
-- best first (ties by id), and no unseen item outside the list scores higher
-- than the 5th
CREATE TABLE sc_rec AS
SELECT m.model_type, m.name, u.entity_id AS user_id, r.*
FROM sc_models m
JOIN dsl.parameters u ON u.model_id = m.model_id AND u.part = 'user',
     LATERAL dsl.recommend(m.name, u.entity_id, 5) r;
SELECT model_type, count(*) AS rows, count(DISTINCT user_id) AS users,
       count(*) FILTER (WHERE score IS DISTINCT FROM dsl.score(name, user_id, item_id)) AS score_differs,
       count(*) FILTER (WHERE cold_start) AS cold,
       count(*) FILTER (WHERE (user_id, item_id) IN (SELECT user_id, item_id FROM sc_pairs)) AS seen
FROM sc_rec GROUP BY model_type ORDER BY model_type;
SELECT m.model_type,
       (SELECT count(*) FROM sc_rec a JOIN sc_rec b
          ON b.name = a.name AND b.user_id = a.user_id AND b.rank = a.rank + 1
        WHERE a.name = m.name
          AND (a.score < b.score OR (a.score = b.score AND a.item_id > b.item_id))) AS out_of_order,
       (SELECT count(*) FROM sc_rec k
          JOIN dsl.parameters i ON i.model_id = m.model_id AND i.part = 'item'
        WHERE k.name = m.name AND k.rank = 5
          AND (k.user_id, i.entity_id) NOT IN (SELECT user_id, item_id FROM sc_pairs)
          AND NOT EXISTS (SELECT FROM sc_rec r WHERE r.name = m.name
                          AND r.user_id = k.user_id AND r.item_id = i.entity_id)
          AND dsl.score(m.name, k.user_id, i.entity_id) > k.score) AS better_unlisted
FROM sc_models m ORDER BY m.model_type;

-- a candidate list is scored by the same scorer
SELECT m.model_type,
       count(*) FILTER (WHERE r.score IS DISTINCT FROM dsl.score(m.name, 3, r.item_id)) AS score_differs,
       count(*) AS rows
FROM sc_models m, LATERAL dsl.recommend(m.name, 3, 3, false, ARRAY[0, 5, 9, 17, 33]) r
GROUP BY m.model_type ORDER BY m.model_type;

-- dsl.recommend_all reports dsl.score's numbers
SELECT m.model_type, count(*) AS rows,
       count(*) FILTER (WHERE r.score IS DISTINCT FROM dsl.score(m.name, r.user_id, r.item_id)) AS score_differs
FROM sc_models m, LATERAL dsl.recommend_all(m.name, 5) r
GROUP BY m.model_type ORDER BY m.model_type;

-- dsl.evaluate ranks with the scorer: its recall@5 is that of the
-- recommend_all lists (the same block ranking)
WITH lists AS (
    SELECT m.name, m.model_type, r.user_id, r.item_id
    FROM sc_models m, LATERAL dsl.recommend_all(m.name, 5) r),
per_user AS (
    SELECT m.name, m.model_type, t.user_id,
           count(l.item_id)::float8 / count(*) AS recall
    FROM sc_models m JOIN sc_test t ON true
    LEFT JOIN lists l ON l.name = m.name AND l.user_id = t.user_id AND l.item_id = t.item_id
    GROUP BY m.name, m.model_type, t.user_id)
SELECT p.model_type, count(*) AS users,
       round(avg(p.recall)::numeric, 12) =
       round((SELECT e.value FROM dsl.evaluate(p.name, 'sc_test', k => 5) e
              WHERE e.metric = 'recall')::numeric, 12) AS recall_matches
FROM per_user p GROUP BY p.name, p.model_type ORDER BY p.model_type;

-- item-item similarity by the inner product of the item rows (NeuMF has
-- none: refused below)
SELECT m.model_type, count(*) AS rows,
       count(*) FILTER (WHERE abs(s.score + (i.vec OPERATOR(dsl.<#>) q.vec))
                              > 1e-6 * (1 + abs(s.score))) AS off
FROM sc_models m
CROSS JOIN LATERAL dsl.similar_items(m.name, 5, 4, 'inner_product') s
JOIN dsl.parameters q ON q.model_id = m.model_id AND q.part = 'item' AND q.entity_id = 5
JOIN dsl.parameters i ON i.model_id = m.model_id AND i.part = 'item' AND i.entity_id = s.item_id
WHERE m.model_type <> 'neumf'
GROUP BY m.model_type ORDER BY m.model_type;
SELECT * FROM dsl.similar_items('sc_neumf', 5, 4);

-- A model whose model_type this library cannot serve (stored by a newer
-- version, say): every serving function fails before reading its rows, with
-- FEATURE_NOT_SUPPORTED.  (The CHECK on model_type keeps such a row out of a
-- live database, so it is dropped inside the transaction.)
SELECT count(*) AS cached_before FROM dsl.serving_cache() WHERE name = 'sc_mf';
BEGIN;
DO $$
BEGIN
    EXECUTE (SELECT format('ALTER TABLE dsl.models DROP CONSTRAINT %I', conname)
             FROM pg_constraint
             WHERE conrelid = 'dsl.models'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%model_type%');
END $$;
UPDATE dsl.models SET model_type = 'ncf' WHERE name = 'sc_mf';
\set VERBOSITY default
SAVEPOINT s;
SELECT * FROM dsl.recommend('sc_mf', 1, 3);
ROLLBACK TO s;
\set VERBOSITY terse
SELECT dsl.score('sc_mf', 1, 7);
ROLLBACK TO s;
SELECT * FROM dsl.similar_items('sc_mf', 7);
ROLLBACK TO s;
SELECT * FROM dsl.recommend_all('sc_mf', 3);
ROLLBACK TO s;
SELECT * FROM dsl.evaluate('sc_mf', 'sc_test');
ROLLBACK TO s;
-- the SQLSTATE
DO $$
BEGIN
    PERFORM dsl.score('sc_mf', 1, 7);
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'feature_not_supported: %', SQLERRM;
END $$;
ROLLBACK;
-- the stored type is back: served again
SELECT count(*) AS rows FROM dsl.recommend('sc_mf', 1, 3);
SELECT model_type, count(*) AS still_registered
FROM sc_models WHERE model_type = ANY (dsl.model_types())
GROUP BY model_type ORDER BY model_type;

DROP VIEW sc_models;
SELECT dsl.drop_model('sc_' || t) FROM unnest(dsl.model_types()) AS t;
DROP TABLE sc_pairs, sc_test, sc_rec;
