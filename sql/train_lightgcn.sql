-- LightGCN with DSL-sparse ego embeddings
SET client_min_messages = warning;
SET dsl_rec.progress = off;
DROP TABLE IF EXISTS planted;	-- left by train_mf
-- fixtures by absolute path (pg_regress exports PG_ABS_SRCDIR)
\getenv abs_srcdir PG_ABS_SRCDIR
\set planted :abs_srcdir '/test/sql/planted.sql'
\i :planted

CREATE TABLE lg_run1 AS
SELECT * FROM dsl.train('planted_lg', 'planted', model_type => 'lightgcn', dim => 16,
                        density => 0.5, epochs => 20, batch_size => 128, lr => 0.01,
                        reg => 0.001, seed => 42);

-- the budget is exact at every epoch: round(0.5 * 240 * 16) + round(0.5 * 120 * 16)
SELECT count(*) AS epochs,
       min(active_params) AS min_active, max(active_params) AS max_active,
       min(total_params) AS total,
       bool_and(pruned > 0 AND pruned = regrown) FILTER (WHERE epoch < 20) AS rounds_every_epoch
FROM lg_run1;
-- the loss falls
SELECT (SELECT loss FROM lg_run1 WHERE epoch = 1) > 0.6 AS starts_near_log2,
       (SELECT avg(loss) FROM lg_run1 WHERE epoch > 15) < 0.5 * (SELECT loss FROM lg_run1 WHERE epoch = 1)
         AS loss_halved
FROM lg_run1 LIMIT 1;

-- the stored model: final embeddings as 'user'/'item' (dense), the sparse
-- layer-0 parameters as 'user_ego'/'item_ego' (exactly the budget)
SELECT model_type, dim, density, n_users, n_items, active_params, total_params, epochs,
       hyperparams->>'layers' AS layers
FROM dsl.models WHERE name = 'planted_lg';
SELECT part, count(*) AS rows, min(dsl.dims(vec)) AS dims,
       CASE WHEN part LIKE '%ego' THEN sum(dsl.nnz(vec))::text
            ELSE (sum(dsl.nnz(vec)) > 0.95 * count(*) * 16)::text END AS nnz
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_lg' GROUP BY part ORDER BY part;
-- DSL moves the budget between rows of the ego tables
SELECT part, min(dsl.nnz(vec)) < max(dsl.nnz(vec)) AS varies
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_lg' AND part LIKE '%ego' GROUP BY part ORDER BY part;

-- Propagation, checked on a hand-sized graph: 2 users, 3 items, one layer.
-- The final rows must equal (E0 + Â E0) / 2 with Â = D^-1/2 A D^-1/2,
-- computed here in SQL from the stored ego rows and the degrees.
CREATE TABLE tiny (user_id bigint, item_id bigint);
INSERT INTO tiny VALUES (1, 10), (1, 11), (2, 11), (2, 12);
SELECT count(*) FROM dsl.train('tiny_lg', 'tiny', model_type => 'lightgcn', dim => 4, density => 1,
                               epochs => 3, batch_size => 2, lr => 0.05, seed => 7,
                               options => '{"layers": 1}');
CREATE VIEW tiny_rows AS
SELECT p.part, p.entity_id AS id, t.k, t.x
FROM dsl.parameters p JOIN dsl.models m USING (model_id),
     unnest(p.vec::real[]) WITH ORDINALITY AS t(x, k)
WHERE m.name = 'tiny_lg';
WITH deg_u AS (SELECT user_id, count(*) AS d FROM tiny GROUP BY user_id),
     deg_i AS (SELECT item_id, count(*) AS d FROM tiny GROUP BY item_id),
     edges AS (SELECT t.user_id, t.item_id, 1 / sqrt(du.d * di.d) AS w
               FROM tiny t JOIN deg_u du USING (user_id) JOIN deg_i di USING (item_id)),
     prop AS (
        SELECT 'user' AS part, e.user_id AS id, r.k, sum(e.w * r.x) AS x
        FROM edges e JOIN tiny_rows r ON r.part = 'item_ego' AND r.id = e.item_id
        GROUP BY 1, 2, 3
        UNION ALL
        SELECT 'item', e.item_id, r.k, sum(e.w * r.x)
        FROM edges e JOIN tiny_rows r ON r.part = 'user_ego' AND r.id = e.user_id
        GROUP BY 1, 2, 3),
     expect AS (
        SELECT replace(r.part, '_ego', '') AS part, r.id, r.k, (r.x + p.x) / 2 AS x
        FROM tiny_rows r JOIN prop p ON p.part = replace(r.part, '_ego', '') AND p.id = r.id AND p.k = r.k
        WHERE r.part LIKE '%ego')
SELECT count(*) AS compared, max(abs(e.x - r.x)) < 1e-5 AS propagated,
       max(abs(r.x - ego.x)) > 1e-3 AS not_the_ego
FROM expect e JOIN tiny_rows r USING (part, id, k)
     JOIN tiny_rows ego ON ego.part = e.part || '_ego' AND ego.id = e.id AND ego.k = e.k;
-- with layers => 0 the final embeddings are the ego embeddings themselves
SELECT count(*) FROM dsl.train('tiny_lg0', 'tiny', model_type => 'lightgcn', dim => 4, density => 1,
                               epochs => 3, batch_size => 2, lr => 0.05, seed => 7,
                               options => '{"layers": 0}');
SELECT count(*) AS rows, bool_and(f.vec OPERATOR(dsl.=) e.vec) AS final_is_ego
FROM dsl.parameters f JOIN dsl.models m USING (model_id)
     JOIN dsl.parameters e ON e.model_id = f.model_id AND e.entity_id = f.entity_id
                          AND e.part = f.part || '_ego'
WHERE m.name = 'tiny_lg0' AND f.part IN ('user', 'item');

-- Neighbourhood structure: 8 clusters of users and items linked only by
-- co-interaction, 3 training items per user, 3 held-out items of the same
-- cluster.  Propagation reaches the held-out items through the other users
-- of the cluster; MF with the same budget and settings does worse.
SELECT setseed(0.75);
CREATE TABLE hood AS
SELECT u AS user_id, (u % 8) + 8 * x AS item_id,
       row_number() OVER (PARTITION BY u ORDER BY random()) <= 3 AS train
FROM generate_series(0, 399) u,
     LATERAL (SELECT x FROM generate_series(0, 19) x WHERE u >= 0 ORDER BY random() LIMIT 6) s;
CREATE TABLE hood_train AS SELECT user_id, item_id FROM hood WHERE train;
CREATE TABLE hood_test AS SELECT user_id, item_id FROM hood WHERE NOT train;
SELECT count(*) FROM dsl.train('hood_mf', 'hood_train', model_type => 'mf', dim => 16, density => 0.5,
                               epochs => 20, batch_size => 64, lr => 0.01, reg => 0.001, seed => 1);
SELECT count(*) FROM dsl.train('hood_lg', 'hood_train', model_type => 'lightgcn', dim => 16, density => 0.5,
                               epochs => 20, batch_size => 64, lr => 0.01, reg => 0.001, seed => 1);
WITH r AS (
    SELECT m.name, e.value AS recall
    FROM (VALUES ('hood_mf'), ('hood_lg')) AS m(name),
         dsl.evaluate(m.name, 'hood_test', 'user_id', 'item_id', 10) AS e
    WHERE e.metric = 'recall')
SELECT (SELECT recall FROM r WHERE name = 'hood_lg') > 0.4 AS lightgcn_recalls,
       (SELECT recall FROM r WHERE name = 'hood_lg') > (SELECT recall FROM r WHERE name = 'hood_mf')
         AS lightgcn_beats_mf;

-- bad options
SELECT * FROM dsl.train('bad', 'tiny', model_type => 'lightgcn', options => '{"layers": -1}');
SELECT * FROM dsl.train('bad', 'tiny', model_type => 'lightgcn', options => '{"layers": 9}');
SELECT * FROM dsl.train('bad', 'tiny', model_type => 'lightgcn', options => '{"layers": 1.5}');
SELECT * FROM dsl.train('bad', 'tiny', model_type => 'lightgcn', options => '{"layers": "2"}');
SELECT * FROM dsl.train('bad', 'tiny', model_type => 'lightgcn', options => '{"layers": null}');
\set VERBOSITY terse
SELECT * FROM dsl.train('bad', 'tiny', model_type => 'lightgcn', options => '{"layer": 2}');
\set VERBOSITY default

-- deterministic for a seed, whatever the number of worker threads
SET dsl_rec.threads = 1;
SELECT count(*) FROM dsl.train('planted_lg_t1', 'planted', model_type => 'lightgcn', dim => 16,
                               density => 0.5, epochs => 20, batch_size => 128, lr => 0.01,
                               reg => 0.001, seed => 42);
RESET dsl_rec.threads;
SET dsl_rec.threads = 2;
SELECT count(*) FROM dsl.train('planted_lg_s2', 'planted', model_type => 'lightgcn', dim => 16,
                               density => 0.5, epochs => 20, batch_size => 128, lr => 0.01,
                               reg => 0.001, seed => 43);
RESET dsl_rec.threads;
CREATE VIEW lg_params AS
SELECT m.name, p.part, p.entity_id, p.vec::text AS vec
FROM dsl.parameters p JOIN dsl.models m USING (model_id);
SELECT (SELECT count(*) FROM lg_params WHERE name = 'planted_lg') AS rows,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM lg_params WHERE name = 'planted_lg'
                              EXCEPT
                              SELECT part, entity_id, vec FROM lg_params WHERE name = 'planted_lg_t1') d)
         AS diff_threads,
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_lg') =
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_lg_t1') AS same_loss,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM lg_params WHERE name = 'planted_lg'
                              EXCEPT
                              SELECT part, entity_id, vec FROM lg_params WHERE name = 'planted_lg_s2') d) > 0
         AS differs_other_seed;

-- as many users as items (ids 1..30 and 1001..1030): each ego tensor is
-- stored with its own entities' ids, never picked by its row count
CREATE TABLE square AS SELECT u AS user_id, 1000 + (u * 7 + k) % 30 + 1 AS item_id
FROM generate_series(1, 30) u, generate_series(1, 4) k;
SELECT count(*) FROM dsl.train('square_lg', 'square', model_type => 'lightgcn', dim => 4,
                               epochs => 1, seed => 1);
SELECT p.part, count(*) AS n, min(p.entity_id), max(p.entity_id)
FROM dsl.parameters p JOIN dsl.models m USING (model_id)
WHERE m.name = 'square_lg' GROUP BY p.part ORDER BY p.part;

-- lr, reg and batch_size left NULL: the model type's own defaults
-- (docs/training.md): MF lr 0.005, reg 0.01, batch from 2048 down to 128
-- for 256 steps an epoch; LightGCN lr 0.02, reg 0.001, batch 16384 with at
-- least 16384 users, else 8192, down to 128 for 16 steps an epoch (40,000
-- pairs: 2048; planted's 2,350: 128)
CREATE TABLE forty AS SELECT u AS user_id, (u * 7 + k * 11) % 900 AS item_id
FROM generate_series(1, 2000) u, generate_series(1, 20) k;
SELECT count(*) FROM dsl.train('lg_defaults', 'forty', model_type => 'lightgcn', dim => 4,
                               epochs => 1, seed => 1);
SELECT count(*) FROM dsl.train('lg_defaults_small', 'planted', model_type => 'lightgcn', dim => 4,
                               epochs => 1, seed => 1, lr => NULL, reg => NULL);
SELECT count(*) FROM dsl.train('mf_defaults', 'forty', dim => 4, epochs => 1, seed => 1);
SELECT name, n_interactions, hyperparams->>'lr' AS lr, hyperparams->>'reg' AS reg,
       hyperparams->>'batch_size' AS batch_size
FROM dsl.models WHERE name IN ('lg_defaults', 'lg_defaults_small', 'mf_defaults') ORDER BY name;

-- the LightGCN batch at its two starts: 16384 users with 16 pairs each
-- (262,144 pairs: exactly 16 steps of 16384), and one user fewer with 17
-- each (278,511 pairs, 16383 users: 8192)
CREATE TABLE wide16k AS SELECT u AS user_id, (u * 7 + k * 11) % 900 AS item_id
FROM generate_series(1, 16384) u, generate_series(1, 16) k;
CREATE TABLE wide16k_less AS SELECT u AS user_id, (u * 7 + k * 11) % 900 AS item_id
FROM generate_series(1, 16383) u, generate_series(1, 17) k;
SELECT count(*) FROM dsl.train('lg_wide', 'wide16k', model_type => 'lightgcn', dim => 4,
                               epochs => 1, seed => 1);
SELECT count(*) FROM dsl.train('lg_wide_less', 'wide16k_less', model_type => 'lightgcn', dim => 4,
                               epochs => 1, seed => 1);
SELECT name, n_interactions, hyperparams->>'batch_size' AS batch_size
FROM dsl.models WHERE name IN ('lg_wide', 'lg_wide_less') ORDER BY name;
SELECT dsl.drop_model('lg_wide'), dsl.drop_model('lg_wide_less');
DROP TABLE wide16k, wide16k_less;

-- reg NULL under the stopping rule (epochs NULL): LightGCN trains reg
-- 0.001 and 0.0001 over the first schedule (30 epochs; here max_epochs 40)
-- and goes on with 0.0001 if its validation recall is 4 % better, else with
-- 0.001: the last tried goes on where it is, an earlier one is trained
-- again from the start.  With the margin at 0 (any gain), two seeds, one on
-- each path.
SET dsl_rec.debug_reg_trial_margin = 0;
CREATE TABLE lg_trial AS
SELECT v.seed, t.*
FROM (VALUES (1), (11)) AS v(seed),
     LATERAL dsl.train('lg_trial_' || v.seed, 'planted', model_type => 'lightgcn', dim => 4,
                       density => 1, batch_size => 128, lr => 0.01, seed => v.seed,
                       options => '{"max_epochs": 40, "refit": false}') AS t;
CREATE TEMP TABLE lg_trial_m AS
SELECT m.*, (hyperparams->>'seed')::int AS seed,
       (hyperparams->'reg_trials'->>'0.001')::float8 AS r3,
       (hyperparams->'reg_trials'->>'0.0001')::float8 AS r4,
       (hyperparams->>'trial_epochs')::int AS trial_epochs
FROM dsl.models m WHERE name IN ('lg_trial_1', 'lg_trial_11');
SELECT m.seed, r4 > r3 AS went_on,
       (SELECT array_agg(epoch ORDER BY epoch) FROM lg_trial r WHERE r.seed = m.seed AND recall IS NOT NULL)
         = CASE WHEN r4 > r3 THEN '{30,60,70}'::int[] ELSE '{30,60,90,100}' END AS evaluated_at_schedule_ends,
       (SELECT recall FROM lg_trial r WHERE r.seed = m.seed AND epoch = 30) = r3 AS first_trial_recorded,
       (SELECT recall FROM lg_trial r WHERE r.seed = m.seed AND epoch = 60) = r4 AS second_trial_recorded,
       r4 > r3 OR (SELECT recall FROM lg_trial r WHERE r.seed = m.seed AND epoch = 90) = r3 AS retrained_the_same,
       (hyperparams->>'reg')::float8 = CASE WHEN r4 > r3 THEN 0.0001 ELSE 0.001 END AS kept_the_better,
       trial_epochs = CASE WHEN r4 > r3 THEN 30 ELSE 60 END AS trial_epochs_right,
       epochs = (SELECT count(*) FROM lg_trial r WHERE r.seed = m.seed) AS every_epoch_a_row,
       best_epoch > trial_epochs AS best_is_a_row_of_the_kept_model,
       (SELECT bool_and(active_params = 1440) FROM lg_trial r WHERE r.seed = m.seed) AS all_active
FROM lg_trial_m m ORDER BY m.seed;
-- the model it kept is the one an explicit reg trains: the same epochs
-- from the same seed
SELECT m.seed, count(*) > 0 AS trained
FROM lg_trial_m m,
     LATERAL dsl.train('lg_same_' || m.seed, 'planted', model_type => 'lightgcn', dim => 4,
                       density => 1, batch_size => 128, lr => 0.01, seed => m.seed,
                       reg => (hyperparams->>'reg')::float8,
                       options => '{"max_epochs": 40, "refit": false}')
GROUP BY m.seed ORDER BY m.seed;
SELECT t.seed,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM lg_params WHERE name = t.name
                              EXCEPT
                              SELECT part, entity_id, vec FROM lg_params WHERE name = m.name) d)
         AS diff_explicit_reg,
       NOT m.hyperparams ? 'reg_trials' AS explicit_reg_tries_nothing,
       m.best_epoch = t.best_epoch - t.trial_epochs AS same_epoch_kept
FROM dsl.models m JOIN lg_trial_m t ON m.name = 'lg_same_' || t.seed ORDER BY t.seed;
RESET dsl_rec.debug_reg_trial_margin;
-- at the default margin: seed 11's 0.0001 is ahead (dense; seed 3's at
-- d = 0.5), but by less than 4 %,
-- so 0.001 is trained again and kept; a sparse model tries too; with
-- patience (the old-style rule, which could end a trial early) reg NULL is
-- 0.001 and nothing is tried
SELECT count(*) > 0 AS trained
FROM (VALUES ('lg_margin', 1, 0, 11), ('lg_sparse', 0.5, 0, 3), ('lg_patience', 1, 2, 11)) AS v(name, d, patience, seed),
     LATERAL dsl.train(v.name, 'planted', model_type => 'lightgcn', dim => 4, density => v.d,
                       batch_size => 128, lr => 0.01, seed => v.seed, patience => v.patience,
                       eval_every => CASE WHEN v.patience > 0 THEN 10 END,
                       options => '{"max_epochs": 40, "refit": false}');
SELECT name, hyperparams ? 'reg_trials' AS tried, hyperparams->>'reg' AS reg,
       (hyperparams->'reg_trials'->>'0.0001')::float8 > (hyperparams->'reg_trials'->>'0.001')::float8
         AS small_reg_ahead,
       (hyperparams->'reg_trials'->>'0.0001')::float8 < 1.04 * (hyperparams->'reg_trials'->>'0.001')::float8
         AS by_less_than_the_margin,
       hyperparams->>'trial_epochs' AS trial_epochs
FROM dsl.models WHERE name IN ('lg_margin', 'lg_sparse', 'lg_patience') ORDER BY name;
SELECT (SELECT hyperparams->'reg_trials' FROM dsl.models WHERE name = 'lg_margin') =
       (SELECT hyperparams->'reg_trials' FROM dsl.models WHERE name = 'lg_trial_11') AS same_trials_as_at_margin_0;
-- a continuation with reg NULL keeps the stored model's reg, and scales by
-- the kept model's own epochs, not the trials'
SELECT count(*) > 0 AS continued
FROM dsl.train('lg_trial_next', 'planted', model_type => 'lightgcn', dim => 4, density => 1,
               batch_size => 128, lr => 0.01, seed => 11, warm_start => 'lg_trial_11');
SELECT (n.hyperparams->>'reg')::float8 = 0.0001 AS reg_kept,
       (n.hyperparams->>'base_epochs')::int = t.best_epoch - t.trial_epochs AS base_epochs_right
FROM dsl.models n, lg_trial_m t WHERE n.name = 'lg_trial_next' AND t.name = 'lg_trial_11';

-- under the stopping rule a sparse LightGCN model is not stopped before a
-- schedule of 480 epochs (MF's minimum is 240, train_stopping): here the
-- 240-epoch schedule gains nothing on the 120-epoch one, and training goes
-- on over one of 480
CREATE TABLE lg_min AS
SELECT * FROM dsl.train('lg_min', 'planted', model_type => 'lightgcn', dim => 4, density => 0.5,
                        reg => 0.001, seed => 3, options => '{"refit": false}');
SELECT count(*) AS epochs,
       array_agg(epoch ORDER BY epoch) FILTER (WHERE recall IS NOT NULL) AS evaluated,
       max(recall) FILTER (WHERE epoch = 240) <= 1.02 * max(recall) FILTER (WHERE epoch <= 120)
         AS schedule_240_gained_under_2_percent
FROM lg_min;

DROP VIEW lg_params;
DROP VIEW tiny_rows;
DROP TABLE lg_run1, lg_trial, lg_trial_m, lg_min, tiny, hood, hood_train, hood_test, planted, square, forty;
SELECT dsl.drop_model(name) FROM (VALUES ('planted_lg'), ('planted_lg_t1'), ('planted_lg_s2'),
       ('tiny_lg'), ('tiny_lg0'), ('hood_mf'), ('hood_lg'), ('square_lg'),
       ('lg_defaults'), ('lg_defaults_small'), ('mf_defaults'), ('lg_trial_1'),
       ('lg_trial_11'), ('lg_same_1'), ('lg_same_11'), ('lg_trial_next'), ('lg_margin'),
       ('lg_sparse'), ('lg_patience'), ('lg_min')) AS m(name);
