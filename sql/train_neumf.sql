-- NeuMF with every weight tensor DSL-sparse
SET client_min_messages = warning;
SET dsl_rec.progress = off;
DROP TABLE IF EXISTS planted;
\getenv abs_srcdir PG_ABS_SRCDIR
\set planted :abs_srcdir '/test/sql/planted.sql'
\i :planted

-- a validation relation: one planted pair of each of 60 users held out
CREATE TABLE nm_val AS
SELECT DISTINCT ON (user_id) user_id, item_id FROM planted
WHERE user_id % 4 = 0 ORDER BY user_id, item_id;
CREATE TABLE nm_train AS
SELECT * FROM planted EXCEPT SELECT * FROM nm_val;

-- GMF width 8, MLP embeddings 4 wide, hidden layers of 6 and 4 units
CREATE TABLE nm_run1 AS
SELECT * FROM dsl.train('planted_nm', 'nm_train', model_type => 'neumf', dim => 8,
                        density => 0.5, epochs => 30, lr => 0.01, seed => 42,
                        validation => 'nm_val', options => '{"mlp_layers": [8, 6, 4], "loss": "bpr"}');

-- the budget is exact at every epoch, tensor by tensor: the model's is
-- round(0.5 x 4407) = 2204; the layers (out 4, out_bias 1, mlp_w1_user and
-- mlp_w1_item 4 x 6, mlp_b1 6, mlp_w2 6 x 4, mlp_b2 4: 87 weights, within
-- 1/16 of it) are dense, and the embeddings (user 240 x 8, item 120 x 8,
-- mlp_user 240 x 4, mlp_item 120 x 4) share the other 2117 at one density
SELECT count(*) AS epochs,
       min(active_params) AS min_active, max(active_params) AS max_active,
       min(total_params) AS total,
       87 + round(1920 * 2117 / 4320.0) + 2 * round(960 * 2117 / 4320.0) +
       round(480 * 2117 / 4320.0) AS budget,
       bool_and(pruned = regrown) AND sum(pruned) > 0 AS rounds
FROM nm_run1;
-- the loss (BPR, plus the L2 terms) starts near log 2 and falls
SELECT (SELECT loss FROM nm_run1 WHERE epoch = 1) BETWEEN 0.5 AND 0.8 AS starts_near_log_2,
       (SELECT avg(loss) FROM nm_run1 WHERE epoch > 25) < 0.6 * (SELECT loss FROM nm_run1 WHERE epoch = 1)
         AS loss_falls;

-- stored: every tensor as a part of its own, at most its budget (stored
-- entries are the non-zero ones: BPR leaves the output bias at its 0);
-- GMF's embeddings are the 'user' and 'item' parts
SELECT model_type, dim, density, n_users, n_items, active_params, total_params,
       hyperparams->'mlp_layers' AS mlp_layers, hyperparams->>'loss' AS loss
FROM dsl.models WHERE name = 'planted_nm';
SELECT part, count(*) AS rows, min(dsl.dims(vec)) AS dims, max(dsl.dims(vec)) AS max_dims,
       sum(dsl.nnz(vec)) AS nnz
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_nm' GROUP BY part ORDER BY part;

-- validation ranked as the stored model is served: the best epoch's
-- recall is what dsl.evaluate gives the stored model on the same pairs
SELECT abs((SELECT max(recall) FROM nm_run1) -
           (SELECT value FROM dsl.evaluate('planted_nm', 'nm_val') WHERE metric = 'recall')) < 1e-9
         AS validation_is_served_ranking;

-- it learns the clusters: most of each user's top 5 unseen items are of
-- her own cluster (random ranking: 1 in 6)
SELECT avg((r.item_id % 6 = u % 6)::int) > 0.6 AS own_cluster
FROM generate_series(0, 239) u, dsl.recommend('planted_nm', u, 5) r;

-- the same seed gives the same model whatever the number of threads; another
-- seed another one
CREATE VIEW nm_params AS
SELECT name, part, entity_id, vec FROM dsl.parameters JOIN dsl.models USING (model_id);
SET dsl_rec.threads = 1;
SELECT count(*) FROM dsl.train('planted_nm_t1', 'nm_train', model_type => 'neumf', dim => 8,
                               density => 0.5, epochs => 30, lr => 0.01, seed => 42,
                               validation => 'nm_val', options => '{"mlp_layers": [8, 6, 4], "loss": "bpr"}');
RESET dsl_rec.threads;
SELECT count(*) FROM dsl.train('planted_nm_s2', 'nm_train', model_type => 'neumf', dim => 8,
                               density => 0.5, epochs => 3, lr => 0.01, seed => 43,
                               options => '{"mlp_layers": [8, 6, 4], "loss": "bpr"}');
SELECT (SELECT count(*) FROM (SELECT part, entity_id, vec FROM nm_params WHERE name = 'planted_nm'
                              EXCEPT
                              SELECT part, entity_id, vec FROM nm_params WHERE name = 'planted_nm_t1') d) = 0
         AS same_with_one_thread,
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_nm') =
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_nm_t1') AS same_loss,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM nm_params WHERE name = 'planted_nm'
                              EXCEPT
                              SELECT part, entity_id, vec FROM nm_params WHERE name = 'planted_nm_s2') d) > 0
         AS differs_other_seed;

-- the pointwise loss with 3 sampled items per pair: starts near log 2 too
SELECT count(*) AS epochs, min(active_params) = max(active_params) AS budget_kept,
       (array_agg(loss ORDER BY epoch))[1] BETWEEN 0.5 AND 0.75 AS starts_near_log_2,
       (array_agg(loss ORDER BY epoch DESC))[1] < (array_agg(loss ORDER BY epoch))[1] AS falls
FROM dsl.train('planted_nm_log', 'nm_train', model_type => 'neumf', dim => 8, density => 0.5,
               epochs => 10, lr => 0.01, seed => 42,
               options => '{"mlp_layers": [8, 6, 4], "loss": "log", "negatives": 3}');

-- a continuation keeps the stored model's MLP shape when options leave it out
SELECT count(*) FROM dsl.train('planted_nm_s2', 'nm_train', warm_start => 'planted_nm_s2',
                               epochs => 2, seed => 5, replace => true);
SELECT hyperparams->'mlp_layers' AS mlp_layers, active_params, total_params
FROM dsl.models WHERE name = 'planted_nm_s2';

-- dense and static masks, and one hidden layer
SELECT count(*) FROM dsl.train('planted_nm_dense', 'nm_train', model_type => 'neumf', dim => 4,
                               density => 1, epochs => 2, seed => 1, options => '{"mlp_layers": [4, 3]}');
SELECT count(*) FROM dsl.train('planted_nm_static', 'nm_train', model_type => 'neumf', dim => 4,
                               density => 0.3, epochs => 2, seed => 1, sparsity => 'static');
SELECT name, active_params = total_params AS dense FROM dsl.models
WHERE name IN ('planted_nm_dense', 'planted_nm_static') ORDER BY name;

-- the defaults
SELECT count(*) FROM dsl.train('nm_defaults', 'nm_train', model_type => 'neumf', epochs => 1, seed => 1);
SELECT dim, hyperparams->'mlp_layers' AS mlp_layers, hyperparams->>'loss' AS loss,
       hyperparams->>'negatives' AS negatives, hyperparams->>'lr' AS lr,
       hyperparams->>'reg' AS reg, hyperparams->>'batch_size' AS batch_size
FROM dsl.models WHERE name = 'nm_defaults';

-- bad options and dims
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', dim => 513);
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": 8}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [8]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [7, 4]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [8, 0]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [8, 4.5]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [8, "4"]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [8, 4, 4, 4, 4, 4]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"mlp_layers": [8, 513]}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"loss": "mse"}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"loss": 1}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"negatives": 0}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"negatives": 65}');
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"growth_batches": 0}');
\set VERBOSITY terse
SELECT * FROM dsl.train('bad', 'nm_train', model_type => 'neumf', options => '{"latent": 2}');
\set VERBOSITY default

DROP VIEW nm_params;
DROP TABLE nm_run1, nm_train, nm_val, planted;
SELECT dsl.drop_model(name) FROM (VALUES ('planted_nm'), ('planted_nm_t1'), ('planted_nm_s2'),
       ('planted_nm_log'), ('planted_nm_dense'), ('planted_nm_static'), ('nm_defaults')) AS m(name);
