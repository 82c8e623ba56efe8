-- test/demo.sql - a two-minute tour of dsl_rec (run by `make demo`)
--
-- 1. generate interactions with planted structure, 2. split them per user,
-- 3. train a DSL-sparse MF-BPR model with validation, 4. evaluate it beside a
-- popularity baseline, 5. recommend in a SELECT, 6. continue the model on a
-- grown table (warm_start).
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = notice;
SET search_path = public, dsl;
CREATE EXTENSION IF NOT EXISTS dsl_rec;

\echo
\echo '== 1. 3,000 users and 1,500 items in 12 latent tastes, ~40 interactions each'
DROP TABLE IF EXISTS demo_interactions, demo_train, demo_test CASCADE;
SELECT setseed(0.5);
CREATE TABLE demo_interactions AS
SELECT DISTINCT u AS user_id, item_id
FROM generate_series(1, 3000) AS u,
     LATERAL (
        SELECT CASE WHEN random() < 0.8
                    -- within the user's taste, popular items more often
                    THEN (u % 12) + 12 * floor(125 * random() ^ 2)::int
                    ELSE floor(1500 * random())::int
               END AS item_id
        FROM generate_series(1, 40 + (u % 20)) AS k
        WHERE u > 0
     ) AS picks;
SELECT count(*) AS interactions, count(DISTINCT user_id) AS users,
       count(DISTINCT item_id) AS items
FROM demo_interactions;

\echo
\echo '== 2. a reproducible 80/20 split per user (by a hash of seed, user, item)'
CREATE TABLE demo_train AS
SELECT user_id, item_id FROM dsl.split('demo_interactions', 'user_id', 'item_id', 0.2, 42)
WHERE NOT is_test;
CREATE TABLE demo_test AS
SELECT user_id, item_id FROM dsl.split('demo_interactions', 'user_id', 'item_id', 0.2, 42)
WHERE is_test;
SELECT (SELECT count(*) FROM demo_train) AS train_pairs, (SELECT count(*) FROM demo_test) AS test_pairs;

\echo
\echo '== 3. train MF-BPR with half of the weights (density 0.5), validating every 5 epochs'
\echo '      (the test split doubles as validation set in this demo; NOTICEs show progress)'
SELECT epoch, round(loss::numeric, 4) AS loss, active_params, total_params,
       round(update_ratio::numeric, 3) AS update_ratio, pruned,
       round(recall::numeric, 4) AS recall_20, round(ndcg::numeric, 4) AS ndcg_20,
       round(seconds::numeric, 3) AS seconds
FROM dsl.train('demo', 'demo_train', user_col => 'user_id', item_col => 'item_id',
               dim => 32, density => 0.5, epochs => 40, batch_size => 1024,
               lr => 0.005, reg => 0.001, seed => 42, replace => true,
               validation => 'demo_test', eval_every => 5)
WHERE epoch % 5 = 0;

SELECT name, model_type, dim, density, active_params, total_params, best_epoch,
       round(train_seconds::numeric, 2) AS train_seconds
FROM dsl.models WHERE name = 'demo';

\echo
\echo '== 4. evaluation on the test split (full ranking, training items excluded)'
SELECT metric, round(value::numeric, 4) AS dsl_mf_d05
FROM dsl.evaluate('demo', 'demo_test', 'user_id', 'item_id', k => 20);

\echo '   the popularity baseline: the 20 most popular unseen items for everyone'
WITH pop AS (
    SELECT item_id, count(*) AS n FROM demo_train GROUP BY item_id
), per_user AS (
    SELECT u.user_id,
           (SELECT count(*) FROM demo_test t WHERE t.user_id = u.user_id) AS n_test,
           (SELECT count(*)
              FROM (SELECT p.item_id FROM pop p
                     WHERE NOT EXISTS (SELECT 1 FROM demo_train s
                                        WHERE s.user_id = u.user_id AND s.item_id = p.item_id)
                     ORDER BY p.n DESC, p.item_id LIMIT 20) top
              JOIN demo_test t ON t.user_id = u.user_id AND t.item_id = top.item_id) AS hits
    FROM (SELECT DISTINCT user_id FROM demo_test) u
)
SELECT 'recall' AS metric, round(avg(hits::numeric / n_test), 4) AS popularity FROM per_user;

\echo
\echo '== 5. top-10 for three users, in a plain SELECT'
SELECT u.user_id, r.item_id, round(r.score::numeric, 3) AS score,
       r.item_id % 12 = u.user_id % 12 AS in_users_taste
FROM (VALUES (7), (8), (9)) AS u(user_id)
CROSS JOIN LATERAL dsl.recommend('demo', u.user_id, k => 10) AS r
ORDER BY u.user_id, r.score DESC, r.item_id;

\echo '   one score, and the same ranking in plain SQL over the stored spvec rows'
SELECT dsl.score('demo', 7, item_id) AS score_of_first
FROM dsl.recommend('demo', 7, k => 1);
SELECT i.entity_id AS item_id, round((-(i.vec <#> u.vec))::numeric, 3) AS score
FROM dsl.parameters u
JOIN dsl.models m ON m.model_id = u.model_id AND m.name = 'demo'
JOIN dsl.parameters i ON i.model_id = m.model_id AND i.part = 'item'
WHERE u.part = 'user' AND u.entity_id = 7
  AND i.entity_id <> ALL ((SELECT items FROM dsl.seen_items s
                          WHERE s.model_id = m.model_id AND s.user_id = 7)::bigint[])
ORDER BY i.vec <#> u.vec, i.entity_id
LIMIT 3;

\echo '   a new user gets the popular items (cold start)'
SELECT * FROM dsl.recommend('demo', -1, k => 3);

\echo
\echo '== 6. the next day: 100 new users and more pairs of the others arrive; the model'
\echo '      is continued on the grown table (warm_start) instead of trained again'
CREATE TABLE demo_train_today AS
SELECT user_id, item_id FROM demo_train
UNION
SELECT u, (u % 12) + 12 * floor(125 * random() ^ 2)::int
FROM generate_series(1, 3100) AS u, generate_series(1, 3) AS k;
SELECT count(*) AS epochs, round(sum(seconds)::numeric, 2) AS seconds
FROM dsl.train('demo', 'demo_train_today', batch_size => 1024, seed => 42,
               warm_start => 'demo', replace => true);
SELECT name, n_users, n_interactions, new_interactions, continued_from, epochs,
       round(train_seconds::numeric, 2) AS train_seconds
FROM dsl.models WHERE name = 'demo';
\echo '   a user who arrived today already gets recommendations of their own taste'
SELECT item_id, round(score::numeric, 3) AS score, item_id % 12 = 3050 % 12 AS their_taste, cold_start
FROM dsl.recommend('demo', 3050, k => 5);
DROP TABLE demo_train_today;

\echo
\echo '== 7. a visitor without an account clicked three items of one taste: their'
\echo '      history is folded into the model (dsl.recommend_for_items), no training'
SELECT item_id, round(score::numeric, 3) AS score, item_id % 12 = 5 AS their_taste, cold_start
FROM dsl.recommend_for_items('demo', ARRAY[5, 17, 29], k => 5);

\echo
\echo '== 8. another model type on the same pairs: MultVAE (an autoencoder of the'
\echo '      user''s history), every encoder and decoder weight at density 0.5'
SELECT count(*) AS epochs, round(sum(seconds)::numeric, 2) AS seconds,
       max(active_params) AS active_params, max(total_params) AS total_params
FROM dsl.train('demo_vae', 'demo_train', model_type => 'multvae', dim => 129,
               density => 0.5, epochs => 30, lr => 0.003, seed => 42, replace => true,
               options => '{"latent": 32}');
SELECT metric, round(value::numeric, 4) AS dsl_multvae_d05
FROM dsl.evaluate('demo_vae', 'demo_test', 'user_id', 'item_id', k => 20)
WHERE metric IN ('recall', 'ndcg');
\echo '   the visitor of step 7 again: MultVAE runs the history through its encoder'
SELECT item_id, round(score::numeric, 3) AS score, item_id % 12 = 5 AS their_taste, cold_start
FROM dsl.recommend_for_items('demo_vae', ARRAY[5, 17, 29], k => 5);
