-- MF-BPR with DSL on a generated dataset with planted clusters
SET client_min_messages = warning;
-- fixtures by absolute path (pg_regress exports PG_ABS_SRCDIR)
\getenv abs_srcdir PG_ABS_SRCDIR
\set planted :abs_srcdir '/test/sql/planted.sql'
\i :planted
SELECT count(*) AS pairs, count(DISTINCT user_id) AS users, count(DISTINCT item_id) AS items
FROM planted;

CREATE TABLE run1 AS
SELECT * FROM dsl.train('planted_mf', 'planted', dim => 16, density => 0.5, epochs => 30,
                        batch_size => 128, lr => 0.01, reg => 0.001, seed => 42);

-- one row per epoch, the budget exact at every epoch:
-- round(0.5 * 240 * 16) + round(0.5 * 120 * 16) = 1920 + 960
SELECT count(*) AS epochs,
       min(active_params) AS min_active, max(active_params) AS max_active,
       min(total_params) AS total
FROM run1;
-- prune/regrow happened (MF default: one round every second epoch, at its
-- end) and the ratio decays
SELECT bool_and(CASE WHEN epoch % 2 = 0 THEN pruned > 0 AND pruned = regrown
                     ELSE pruned = 0 END) FILTER (WHERE epoch < 30) AS rounds_every_second_epoch,
       bool_and(update_ratio <= 0.5 AND update_ratio >= 0.005) AS ratio_in_range,
       (SELECT update_ratio FROM run1 WHERE epoch = 2) > (SELECT update_ratio FROM run1 WHERE epoch = 25)
         AS ratio_decays
FROM run1;
-- the loss falls: the last epochs are well below the first
SELECT (SELECT loss FROM run1 WHERE epoch = 1) > 0.6 AS starts_near_log2,
       (SELECT avg(loss) FROM run1 WHERE epoch > 25) < 0.5 * (SELECT loss FROM run1 WHERE epoch = 1)
         AS loss_halved,
       bool_and(seconds >= 0) AS timed
FROM run1;

-- the stored model
SELECT model_type, dim, density, n_users, n_items, n_interactions = (SELECT count(*) FROM planted) AS all_pairs,
       active_params, total_params, epochs, best_epoch, final_loss > 0 AS has_loss,
       hyperparams->>'growth' AS growth, hyperparams->>'seed' AS seed, owner = current_user::regrole AS owned
FROM dsl.models WHERE name = 'planted_mf';
SELECT part, count(*), min(dsl.dims(vec)), sum(dsl.nnz(vec))
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_mf' GROUP BY part ORDER BY part;
-- per-row density varies (DSL moves the budget between rows) but sums to the budget
SELECT part, min(dsl.nnz(vec)) < max(dsl.nnz(vec)) AS varies
FROM dsl.parameters JOIN dsl.models USING (model_id)
WHERE name = 'planted_mf' GROUP BY part ORDER BY part;

-- the planted clusters are learned: top-5 unseen items by inner product,
-- computed in plain SQL over the stored rows, are mostly in the user's cluster
WITH u AS (
    SELECT p.entity_id AS user_id, p.vec
    FROM dsl.parameters p JOIN dsl.models m USING (model_id)
    WHERE m.name = 'planted_mf' AND p.part = 'user'
), top AS (
    SELECT u.user_id, t.item_id
    FROM u CROSS JOIN LATERAL (
        SELECT i.entity_id AS item_id
        FROM dsl.parameters i JOIN dsl.models m USING (model_id)
        WHERE m.name = 'planted_mf' AND i.part = 'item'
          AND NOT EXISTS (SELECT 1 FROM planted s WHERE s.user_id = u.user_id AND s.item_id = i.entity_id)
        ORDER BY i.vec OPERATOR(dsl.<#>) u.vec, i.entity_id
        LIMIT 5) t
)
SELECT avg((user_id % 6 = item_id % 6)::int) > 0.8 AS clusters_learned FROM top;

-- the same seed gives identical rows; another seed does not
SELECT count(*) FROM dsl.train('planted_mf2', 'planted', dim => 16, density => 0.5, epochs => 30,
                               batch_size => 128, lr => 0.01, reg => 0.001, seed => 42);
SELECT count(*) FROM dsl.train('planted_mf3', 'planted', dim => 16, density => 0.5, epochs => 30,
                               batch_size => 128, lr => 0.01, reg => 0.001, seed => 43);
CREATE VIEW params AS
SELECT m.name, p.part, p.entity_id, p.vec::text AS vec
FROM dsl.parameters p JOIN dsl.models m USING (model_id);
SELECT (SELECT count(*) FROM (SELECT part, entity_id, vec FROM params WHERE name = 'planted_mf'
                              EXCEPT
                              SELECT part, entity_id, vec FROM params WHERE name = 'planted_mf2') d) AS diff_same_seed,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM params WHERE name = 'planted_mf'
                              EXCEPT
                              SELECT part, entity_id, vec FROM params WHERE name = 'planted_mf3') d) > 0 AS differs_other_seed;
SELECT (SELECT final_loss FROM dsl.models WHERE name = 'planted_mf') =
       (SELECT final_loss FROM dsl.models WHERE name = 'planted_mf2') AS same_loss;
-- the worker thread count does not change the result either
SET dsl_rec.threads = 1;
SELECT count(*) FROM dsl.train('planted_mf4', 'planted', dim => 16, density => 0.5, epochs => 30,
                               batch_size => 128, lr => 0.01, reg => 0.001, seed => 42);
RESET dsl_rec.threads;
SELECT count(*) AS diff_one_thread
FROM (SELECT part, entity_id, vec FROM params WHERE name = 'planted_mf'
      EXCEPT
      SELECT part, entity_id, vec FROM params WHERE name = 'planted_mf4') d;

-- the DSL round runs on the worker threads, split by rows on bitmap-word
-- boundaries (dim 64: every row; dim 20: every 16 rows): 1 and 3 threads
-- give the same rows, with the accumulated and the last-batch gradient
CREATE FUNCTION pg_temp.train_par(suffix text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count(*) FROM dsl.train('par64_' || suffix, 'planted', dim => 64, density => 0.3,
        epochs => 4, batch_size => 128, lr => 0.01, seed => 5, update_interval => 7);
    PERFORM count(*) FROM dsl.train('par20_' || suffix, 'planted', dim => 20, density => 0.3,
        epochs => 4, batch_size => 128, lr => 0.01, seed => 5, update_interval => 7);
    PERFORM count(*) FROM dsl.train('par20last_' || suffix, 'planted', dim => 20, density => 0.3,
        epochs => 4, batch_size => 128, lr => 0.01, seed => 5, update_interval => 7,
        options => '{"growth_batches": 1}');
END
$$;
SET dsl_rec.threads = 1;
SELECT pg_temp.train_par('t1');
SET dsl_rec.threads = 3;
SELECT pg_temp.train_par('t3');
RESET dsl_rec.threads;
SELECT v.run,
       (SELECT count(*) FROM dsl.models WHERE name = v.run || '_t1' AND active_params > 0) AS trained,
       (SELECT count(*) FROM (SELECT part, entity_id, vec FROM params WHERE name = v.run || '_t1'
                              EXCEPT
                              SELECT part, entity_id, vec FROM params WHERE name = v.run || '_t3') d)
         AS rows_differing
FROM (VALUES ('par64'), ('par20'), ('par20last')) v(run);

-- the training's peak memory is recorded (dsl.models.train_peak_bytes), and
-- a sparser model needs less (2,000 users x 1,000 items at dim 128, so that
-- the parameters outweigh the fixed-size buffers)
CREATE TABLE mem_data AS
SELECT u AS user_id, (u * 7 + k * 13) % 1000 AS item_id
FROM generate_series(1, 2000) u, generate_series(1, 20) k;
SELECT count(*) FROM dsl.train('mem_d1', 'mem_data', dim => 128, density => 1, epochs => 4, seed => 1);
SELECT count(*) FROM dsl.train('mem_d02', 'mem_data', dim => 128, density => 0.2, epochs => 4, seed => 1);
SELECT name, train_peak_bytes > active_params * 14 AS holds_at_least_the_state
FROM dsl.models WHERE name IN ('mem_d1', 'mem_d02') ORDER BY name;
SELECT (SELECT train_peak_bytes FROM dsl.models WHERE name = 'mem_d02') <
       0.8 * (SELECT train_peak_bytes FROM dsl.models WHERE name = 'mem_d1') AS sparser_needs_less;

-- baselines: dense (density 1) and static sparse keep their budgets too
SELECT min(active_params), max(active_params), max(total_params), sum(pruned)
FROM dsl.train('planted_dense', 'planted', dim => 16, density => 1, epochs => 5,
               batch_size => 128, lr => 0.01, seed => 1);
SELECT min(active_params), max(active_params), sum(pruned)
FROM dsl.train('planted_static', 'planted', dim => 16, density => 0.25, epochs => 5,
               batch_size => 128, lr => 0.01, seed => 1, sparsity => 'static');
-- random growth, a constant schedule and an explicit interval (every 10 steps)
SELECT min(active_params), max(active_params), count(*) FILTER (WHERE pruned > 0) AS epochs_with_rounds
FROM dsl.train('planted_random', 'planted', dim => 16, density => 0.1, epochs => 5,
               batch_size => 128, lr => 0.01, seed => 1, growth => 'random',
               schedule => 'constant', update_interval => 10);
-- the reference's regrowth signal (the last mini-batch only) keeps the budget too
SELECT min(active_params), max(active_params), count(*) FILTER (WHERE pruned > 0) AS epochs_with_rounds
FROM dsl.train('planted_lastbatch', 'planted', dim => 16, density => 0.3, epochs => 5,
               batch_size => 128, lr => 0.01, seed => 1, options => '{"growth_batches": 1}');
SELECT hyperparams->'growth_batches' AS default_growth_batches
FROM dsl.models WHERE name = 'planted_mf';
-- very low density: one active weight at least
SELECT min(active_params), max(active_params)
FROM dsl.train('planted_tiny', 'planted', dim => 2, density => 0.001, epochs => 2, seed => 1);

SELECT dsl.drop_model(name) FROM dsl.models ORDER BY name;
SELECT count(*) FROM dsl.parameters;
SELECT count(*) FROM dsl.seen_items;
