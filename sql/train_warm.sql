-- Continuing a stored model on a grown source: dsl.train(warm_start => ...)
SET client_min_messages = warning;
SET dsl_rec.progress = off;
DROP TABLE IF EXISTS planted;
\getenv abs_srcdir PG_ABS_SRCDIR
\set planted :abs_srcdir '/test/sql/planted.sql'
\i :planted

-- train/test split; "yesterday" is the training part without 12 users (new
-- since), without 6 items, without a tenth of the other pairs, and with a
-- user (1000) and an item (500) that are gone today
CREATE TABLE w_split AS SELECT * FROM dsl.split('planted', test_fraction => 0.2, seed => 1);
CREATE TABLE w_today AS SELECT user_id, item_id FROM w_split WHERE NOT is_test;
CREATE TABLE w_test AS SELECT user_id, item_id FROM w_split WHERE is_test;
CREATE TABLE w_yesterday AS
SELECT user_id, item_id FROM w_today
WHERE user_id < 228 AND item_id < 114 AND (user_id * 31 + item_id * 17) % 10 <> 3
UNION ALL SELECT 1000, i FROM generate_series(0, 9) i
UNION ALL SELECT u, 500 FROM generate_series(0, 9) u;

SELECT count(*) AS epochs FROM dsl.train('w_old', 'w_yesterday', dim => 16, density => 0.5,
    epochs => 30, batch_size => 128, lr => 0.01, reg => 0.001, seed => 42);

-- the continuation: epochs NULL = 30 epochs (the stored model's length) times
-- the share of new pairs, at least 2; zeta_0 0.05 of its own
CREATE TABLE w_run AS
SELECT * FROM dsl.train('w_new', 'w_today', dim => 16, density => 0.5, batch_size => 128,
                        lr => 0.01, reg => 0.001, seed => 42, warm_start => 'w_old');
WITH truth AS (
    SELECT count(*) FILTER (WHERE y.user_id IS NULL) AS new_pairs, count(*) AS pairs
    FROM w_today t LEFT JOIN w_yesterday y USING (user_id, item_id))
SELECT m.new_interactions = truth.new_pairs AS new_pairs_exact,
       m.continued_from = (SELECT model_id FROM dsl.models WHERE name = 'w_old') AS continued_from,
       m.epochs = greatest(2, least(30, ceil(30.0 * truth.new_pairs / truth.pairs)))::int AS epochs_by_growth,
       m.epochs, m.n_users, m.n_items,
       m.hyperparams->>'warm_start' AS warm_start,
       m.hyperparams->>'base_epochs' AS base_epochs,
       (m.hyperparams->>'update_ratio')::float8 AS update_ratio
FROM dsl.models m, truth WHERE m.name = 'w_new';

-- the budget is recomputed for the grown tensors and exact at every epoch;
-- the masks move, less and less
SELECT bool_and(active_params = round(0.5 * 240 * 16) + round(0.5 * 120 * 16)) AS budget_exact,
       bool_and(total_params = (240 + 120) * 16) AS total,
       sum(pruned) > 0 AS masks_moved,
       max(update_ratio) <= 0.05 AS ratio_at_most_zeta0
FROM w_run;
-- users and items no longer in the source are left out, new ones are in
SELECT count(*) FILTER (WHERE part = 'user' AND entity_id = 1000) AS gone_user_rows,
       count(*) FILTER (WHERE part = 'item' AND entity_id = 500) AS gone_item_rows,
       count(*) FILTER (WHERE part = 'user' AND entity_id >= 228) AS new_user_rows,
       count(*) FILTER (WHERE part = 'item' AND entity_id >= 114) AS new_item_rows
FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'w_new';

-- option keep_missing keeps them: trained on with no pairs, inside budgets
-- grown by their rows
CREATE TABLE w_keep_run AS
SELECT * FROM dsl.train('w_keep', 'w_today', batch_size => 128, seed => 42,
                        warm_start => 'w_old', options => '{"keep_missing": true}');
SELECT n_users, n_items, n_interactions, hyperparams->>'keep_missing' AS keep_missing,
       (SELECT bool_and(active_params = round(0.5 * 241 * 16) + round(0.5 * 121 * 16)) FROM w_keep_run)
         AS budget_exact
FROM dsl.models WHERE name = 'w_keep';
SELECT count(*) FILTER (WHERE part = 'user' AND entity_id = 1000) AS kept_user_rows,
       count(*) FILTER (WHERE part = 'item' AND entity_id = 500) AS kept_item_rows
FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'w_keep';
-- the kept user is served from its row (it has no seen items any more)
SELECT count(*) AS recs, bool_and(NOT cold_start) AS from_its_row FROM dsl.recommend('w_keep', 1000, 5);

-- it starts where the stored model ended: its first epoch's loss is far
-- below a fresh training's (about log 2)
CREATE TABLE w_fresh_run AS
SELECT * FROM dsl.train('w_full', 'w_today', dim => 16, density => 0.5, epochs => 30,
                        batch_size => 128, lr => 0.01, reg => 0.001, seed => 42);
SELECT (SELECT loss FROM w_fresh_run WHERE epoch = 1) > 0.6 AS fresh_starts_near_log2,
       (SELECT loss FROM w_run WHERE epoch = 1) < 0.5 * (SELECT loss FROM w_fresh_run WHERE epoch = 1)
         AS continuation_starts_low;
-- and ranks about as well as a training from scratch on every pair, at a
-- fraction of its epochs
SELECT c.value > 0.35 AS continuation_recall_ok,
       c.value >= 0.9 * f.value AS close_to_full_retrain
FROM dsl.evaluate('w_new', 'w_test', k => 10) c, dsl.evaluate('w_full', 'w_test', k => 10) f
WHERE c.metric = 'recall' AND f.metric = 'recall';

-- the stored rows are loaded exactly: with a vanishing lr, no rounds and no
-- L2 term, the users both models have keep their stored rows
SELECT count(*) FROM dsl.train('w_still', 'w_today', dim => 16, density => 0.5, epochs => 1,
    batch_size => 128, lr => 1e-9, reg => 0, update_ratio => 0, seed => 42, warm_start => 'w_old');
SELECT count(*) AS common_users,
       max(n.vec OPERATOR(dsl.<->) o.vec) < 1e-5 AS rows_kept
FROM dsl.parameters o JOIN dsl.models mo ON mo.model_id = o.model_id AND mo.name = 'w_old'
JOIN dsl.parameters n ON n.part = o.part AND n.entity_id = o.entity_id
JOIN dsl.models mn ON mn.model_id = n.model_id AND mn.name = 'w_still'
WHERE o.part = 'user';

-- new users start from their items (fold-in): in that same continuation,
-- whose lr leaves every row where it started, the 12 new users already
-- rank their held-out items well (random rows would give about 0.08)
SELECT count(DISTINCT user_id) AS new_test_users FROM w_test WHERE user_id >= 228;
CREATE TABLE w_test_new AS SELECT * FROM w_test WHERE user_id >= 228;
SELECT value > 0.3 AS new_users_recall_ok
FROM dsl.evaluate('w_still', 'w_test_new', k => 10) WHERE metric = 'recall';

-- the same seed continues the same way
SELECT count(*) FROM dsl.train('w_new2', 'w_today', dim => 16, density => 0.5, batch_size => 128,
    lr => 0.01, reg => 0.001, seed => 42, warm_start => 'w_old');
SELECT (SELECT md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
        FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'w_new')
     = (SELECT md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
        FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'w_new2') AS deterministic;

-- continuing into the same name replaces the model in the caller's
-- transaction: rolled back, the stored version is untouched
CREATE TABLE w_before AS
SELECT model_id, (SELECT md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
                  FROM dsl.parameters p WHERE p.model_id = m.model_id) AS params
FROM dsl.models m WHERE name = 'w_old';
BEGIN;
SELECT count(*) FROM dsl.train('w_old', 'w_today', dim => 16, density => 0.5, batch_size => 128,
    seed => 1, warm_start => 'w_old', replace => true);
SELECT continued_from = (SELECT model_id FROM w_before) AS continued_itself FROM dsl.models WHERE name = 'w_old';
ROLLBACK;
SELECT m.model_id = b.model_id AS same_version,
       (SELECT md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
        FROM dsl.parameters p WHERE p.model_id = m.model_id) = b.params AS same_parameters
FROM dsl.models m, w_before b WHERE m.name = 'w_old';

-- LightGCN continues its layer-0 parameters the same way
SELECT count(*) FROM dsl.train('w_lg', 'w_yesterday', model_type => 'lightgcn', dim => 16,
    density => 0.5, epochs => 10, batch_size => 128, lr => 0.01, seed => 42,
    options => '{"layers": 2}');
-- (model_type, dim, density and the options that shape the model, here
-- layers, left out: a continuation takes the stored model's)
CREATE TABLE w_lg_run AS
-- (lr left out too: a continuation's is the model type's default / 10)
SELECT * FROM dsl.train('w_lg2', 'w_today', batch_size => 128, seed => 42, warm_start => 'w_lg');
SELECT count(*) >= 2 AS epochs_ok,
       bool_and(active_params = round(0.5 * 240 * 16) + round(0.5 * 120 * 16)) AS budget_exact,
       (SELECT loss FROM w_lg_run WHERE epoch = 1) < 0.6 AS starts_low
FROM w_lg_run;
SELECT model_type, dim, density, (hyperparams->>'lr')::float8 AS lr, hyperparams->>'layers' AS layers
FROM dsl.models WHERE name = 'w_lg2';
SELECT part, count(*) AS rows_, sum(dsl.nnz(vec)) AS active
FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'w_lg2' AND part LIKE '%ego'
GROUP BY part ORDER BY part;

-- bad input: clear errors, nothing stored
\set VERBOSITY terse
SELECT count(*) FROM dsl.train('w_bad', 'w_today', dim => 8, density => 0.5, warm_start => 'w_old');
SELECT count(*) FROM dsl.train('w_bad', 'w_today', dim => 16, density => 0.2, warm_start => 'w_old');
SELECT count(*) FROM dsl.train('w_bad', 'w_today', model_type => 'lightgcn', dim => 16,
                               density => 0.5, warm_start => 'w_old');
SELECT count(*) FROM dsl.train('w_bad', 'w_today', dim => 16, warm_start => 'no_such_model');
SELECT count(*) FROM dsl.train('w_bad', 'w_today', dim => 16, warm_start => '');
SELECT count(*) FROM dsl.train('w_bad', 'w_today', options => '{"keep_missing": true}');
SELECT count(*) FROM dsl.train('w_bad', 'w_today', warm_start => 'w_old', options => '{"keep_missing": 1}');
CREATE ROLE regress_warm_other;
GRANT SELECT ON w_today TO regress_warm_other;
SELECT dsl.grant_model('w_old', 'regress_warm_other');
SET ROLE regress_warm_other;
-- a reader may serve the model but not continue it
SELECT count(*) > 0 AS reader_serves FROM dsl.recommend('w_old', 1, 5);
SELECT count(*) FROM dsl.train('w_bad', 'w_today', dim => 16, warm_start => 'w_old');
RESET ROLE;
\set VERBOSITY default
SELECT count(*) AS stored_bad FROM dsl.models WHERE name = 'w_bad';

SELECT dsl.drop_model(name) FROM dsl.models WHERE name LIKE 'w\_%' ORDER BY name;

DROP TABLE w_split, w_today, w_test, w_test_new, w_yesterday, w_run, w_keep_run, w_fresh_run, w_before, w_lg_run;
DROP ROLE regress_warm_other;
