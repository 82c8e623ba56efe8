-- MultVAE with every weight tensor DSL-sparse
SET client_min_messages = warning;
SET dsl_rec.progress = off;
DROP TABLE IF EXISTS planted;
\getenv abs_srcdir PG_ABS_SRCDIR
\set planted :abs_srcdir '/test/sql/planted.sql'
\i :planted

-- hidden width 16 (dim 17: the decoder's 16 units and the output bias),
-- latent 8
CREATE TABLE vae_run1 AS
SELECT * FROM dsl.train('planted_vae', 'planted', model_type => 'multvae', dim => 17,
                        density => 0.5, epochs => 30, batch_size => 32, lr => 0.01,
                        seed => 42, options => '{"latent": 8}');

-- the budget is exact at every epoch, tensor by tensor: the model's is
-- round(0.5 x 4392) = 2196; the three biases (16 each, within 1/16 of it)
-- are dense, and enc_in 120 x 16, enc_out 16 x 16, dec_in 8 x 16 and
-- dec_out 120 x 17 (the item rows) share the other 2148 at one density
SELECT count(*) AS epochs,
       min(active_params) AS min_active, max(active_params) AS max_active,
       min(total_params) AS total,
       48 + round(1920 * 2148 / 4344.0) + round(256 * 2148 / 4344.0) +
       round(128 * 2148 / 4344.0) + round(2040 * 2148 / 4344.0) AS budget,
       bool_and(pruned > 0 AND pruned = regrown) FILTER (WHERE epoch < 30) AS rounds_every_epoch
FROM vae_run1;
-- the loss (per user: the history's negative log-likelihood plus the
-- weighted KL term) starts near |x| log 120 (|x| about 10) and falls
-- towards |x| log 20 (a user's items are mostly of her cluster's 20)
SELECT (SELECT loss FROM vae_run1 WHERE epoch = 1) BETWEEN 42 AND 52 AS starts_near_10_log_120,
       (SELECT avg(loss) FROM vae_run1 WHERE epoch > 25) < 0.9 * (SELECT loss FROM vae_run1 WHERE epoch = 1)
         AS loss_falls
FROM vae_run1 LIMIT 1;

-- stored: the item rows are the output layer itself (exactly its budget),
-- the user rows [h3(mu), 1], the encoder and the decoder's first layer as
-- parts of their own (exactly their budgets)
SELECT model_type, dim, density, n_users, n_items, active_params, total_params, epochs,
       hyperparams->>'latent' AS latent, hyperparams->>'dropout' AS dropout,
       hyperparams->>'anneal_cap' AS anneal_cap
FROM dsl.models WHERE name = 'planted_vae';
SELECT part, count(*) AS rows, min(dsl.dims(vec)) AS dims, max(dsl.dims(vec)) AS max_dims,
       CASE WHEN part = 'user' THEN (sum(dsl.nnz(vec)) > 0.95 * count(*) * 17)::text
            ELSE sum(dsl.nnz(vec))::text END AS nnz
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_vae' GROUP BY part ORDER BY part;
SELECT bool_and((vec::real[])[17] = 1) AS users_end_in_one
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_vae' AND part = 'user';

-- it learns the clusters: most of each user's top 5 unseen items are of
-- her own cluster (random ranking: 1 in 6)
SELECT avg((r.item_id % 6 = u % 6)::int) > 0.6 AS own_cluster
FROM generate_series(0, 239) u, dsl.recommend('planted_vae', u, 5) r;
-- and scores are the inner products of the stored rows
SELECT abs(dsl.score('planted_vae', 3, 7) -
           ((SELECT vec FROM dsl.parameters JOIN dsl.models USING (model_id)
             WHERE name = 'planted_vae' AND part = 'user' AND entity_id = 3) OPERATOR(dsl.<#>)
            (SELECT vec FROM dsl.parameters JOIN dsl.models USING (model_id)
             WHERE name = 'planted_vae' AND part = 'item' AND entity_id = 7)) * -1) < 1e-4
         AS score_is_dot;

-- an ad-hoc history goes through the encoder: a training user's own
-- history gives her stored row, so the same recommendations and scores
SELECT count(*) AS n,
       bool_and(a.item_id = b.item_id) AS same_items,
       max(abs(a.score - b.score)) < 1e-4 AS same_scores
FROM dsl.recommend('planted_vae', 5, 10) a
     JOIN dsl.recommend_for_items('planted_vae',
                                  (SELECT array_agg(item_id) FROM planted WHERE user_id = 5), 10) b
     USING (rank);
-- a new user of cluster 2: her own cluster first
SELECT avg((item_id % 6 = 2)::int) > 0.6 AS own_cluster
FROM dsl.recommend_for_items('planted_vae', ARRAY[2, 8, 14, 20, 26], 5);
-- strong generalization: half of each cluster's items folded in, the rest
-- held out
CREATE TABLE sg_hist AS SELECT * FROM planted WHERE (item_id / 6) % 2 = 0;
CREATE TABLE sg_test AS SELECT * FROM planted WHERE (item_id / 6) % 2 = 1;
SELECT metric, value > 0.3 AS better_than_chance
FROM dsl.evaluate_histories('planted_vae', 'sg_hist', 'sg_test', k => 10)
WHERE metric IN ('recall', 'ndcg');

-- deterministic for a seed, whatever the number of worker threads
SET dsl_rec.threads = 1;
SELECT count(*) FROM dsl.train('planted_vae_t1', 'planted', model_type => 'multvae', dim => 17,
                               density => 0.5, epochs => 30, batch_size => 32, lr => 0.01,
                               seed => 42, options => '{"latent": 8}');
RESET dsl_rec.threads;
SELECT count(*) FROM dsl.train('planted_vae_s2', 'planted', model_type => 'multvae', dim => 17,
                               density => 0.5, epochs => 30, batch_size => 32, lr => 0.01,
                               seed => 43, options => '{"latent": 8}');
CREATE VIEW vae_params AS
SELECT m.name, p.part, p.entity_id, p.vec::text AS vec
FROM dsl.parameters p JOIN dsl.models m USING (model_id);
SELECT (SELECT count(*) FROM vae_params WHERE name = 'planted_vae') AS rows,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM vae_params WHERE name = 'planted_vae'
                              EXCEPT
                              SELECT part, entity_id, vec FROM vae_params WHERE name = 'planted_vae_t1') d)
         AS diff_threads,
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_vae') =
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_vae_t1') AS same_loss,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM vae_params WHERE name = 'planted_vae'
                              EXCEPT
                              SELECT part, entity_id, vec FROM vae_params WHERE name = 'planted_vae_s2') d) > 0
         AS differs_other_seed;

-- a continuation keeps the stored model's shape (its latent width) when
-- options leave it out, and its exact budget
SELECT count(*) FROM dsl.train('planted_vae_t1', 'planted', warm_start => 'planted_vae_t1',
                               epochs => 2, seed => 5, replace => true);
SELECT hyperparams->>'latent' AS latent, active_params, total_params
FROM dsl.models WHERE name = 'planted_vae_t1';

-- dense and static masks train too
SELECT count(*) FROM dsl.train('planted_vae_dense', 'planted', model_type => 'multvae', dim => 9,
                               density => 1, epochs => 3, seed => 1, options => '{"latent": 4}');
SELECT count(*) FROM dsl.train('planted_vae_static', 'planted', model_type => 'multvae', dim => 9,
                               density => 0.3, epochs => 3, seed => 1, sparsity => 'static',
                               options => '{"latent": 4, "dropout": 0, "anneal_cap": 1, "anneal_steps": 5}');
SELECT name, active_params = total_params AS dense, hyperparams->>'anneal_steps' AS anneal_steps
FROM dsl.models WHERE name IN ('planted_vae_dense', 'planted_vae_static') ORDER BY name;

-- the output layer regrows by its gradient summed over growth_batches steps
-- before each round (default 64, at most the interval: here an epoch of 8
-- steps); 1 is the round step's gradient alone; the budget stays exact
SELECT count(*) AS epochs, min(active_params) = max(active_params) AS budget_kept,
       bool_and(pruned > 0 AND pruned = regrown) FILTER (WHERE epoch < 6) AS rounds
FROM dsl.train('planted_vae_g1', 'planted', model_type => 'multvae', dim => 17,
               density => 0.5, epochs => 6, batch_size => 32, lr => 0.01, seed => 42,
               options => '{"latent": 8, "growth_batches": 1}');
SELECT name, hyperparams->'growth_batches' AS growth_batches, hyperparams->'update_interval' AS interval
FROM dsl.models WHERE name IN ('planted_vae', 'planted_vae_g1') ORDER BY name;

-- the defaults: dim 601 (600 hidden units), latent 200, dropout 0.5, KL
-- weight to 0.2; lr 0.001, reg 0, a batch of 64 users halved (down to 16)
-- while an epoch would have fewer than 32 steps (240 users: 16)
SELECT count(*) FROM dsl.train('vae_defaults', 'planted', model_type => 'multvae', epochs => 1, seed => 1);
SELECT dim, hyperparams->>'latent' AS latent, hyperparams->>'dropout' AS dropout,
       hyperparams->>'anneal_cap' AS anneal_cap, hyperparams->>'lr' AS lr,
       hyperparams->>'reg' AS reg, hyperparams->>'batch_size' AS batch_size
FROM dsl.models WHERE name = 'vae_defaults';

-- bad options and dims
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', dim => 1);
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"latent": 0}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"latent": 1.5}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"dropout": 1}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"dropout": -0.1}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"anneal_cap": -1}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"anneal_steps": 0}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"anneal_steps": "5"}');
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"growth_batches": 0}');
\set VERBOSITY terse
SELECT * FROM dsl.train('bad', 'planted', model_type => 'multvae', options => '{"layers": 2}');
\set VERBOSITY default

DROP VIEW vae_params;
DROP TABLE vae_run1, planted, sg_hist, sg_test;
SELECT dsl.drop_model(name) FROM (VALUES ('planted_vae'), ('planted_vae_t1'), ('planted_vae_s2'),
       ('planted_vae_dense'), ('planted_vae_static'), ('vae_defaults'),
       ('planted_vae_g1')) AS m(name);
