-- dsl.train(epochs => NULL), the default: train until the validation recall
-- stops improving, on a seeded hold-out of the training pairs (lr and reg
-- as in train_mf: the default lr is for data sets far larger than this one)
SET client_min_messages = warning;
CREATE SCHEMA stopping;
SET search_path = stopping, public;
-- fixtures by absolute path (pg_regress exports PG_ABS_SRCDIR)
\getenv abs_srcdir PG_ABS_SRCDIR
\set planted :abs_srcdir '/test/sql/planted.sql'
\i :planted
SET dsl_rec.progress = off;

-- whether two stored models hold the same parameter rows, vector for vector
CREATE FUNCTION pg_temp.same_parameters(a text, b text) RETURNS boolean
LANGUAGE sql AS $$
  WITH pa AS (SELECT part, entity_id, vec::text AS v
              FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = a),
       pb AS (SELECT part, entity_id, vec::text AS v
              FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = b)
  SELECT EXISTS (SELECT FROM pa)
         AND NOT EXISTS ((SELECT * FROM pa EXCEPT ALL SELECT * FROM pb)
                         UNION ALL (SELECT * FROM pb EXCEPT ALL SELECT * FROM pa))
$$;

CREATE TABLE auto1 AS
SELECT * FROM dsl.train('planted_auto', 'planted', dim => 16, density => 0.5,
                        batch_size => 128, lr => 0.01, reg => 0.001, seed => 42,
                        options => '{"refit": false}');
-- it stopped by itself at the end of a schedule (30 epochs, then twice as
-- long each time), well before max_epochs (1000), evaluating at the end of
-- each schedule only (eval_every NULL)
SELECT count(*) IN (30, 60, 120, 240, 480) AS stopped_at_a_schedule_end,
       array_agg(epoch ORDER BY epoch) FILTER (WHERE recall IS NOT NULL) =
         (('{30,60,120,240,480}'::int[])[1:round(log(2, count(*) / 15.0))::int])
         AS evaluated_at_schedule_ends,
       bool_and(active_params = 2880) AS budget_exact
FROM auto1;
-- the stored model is the best evaluated epoch; the last schedule (the
-- second half of the run) did not beat the one before by 2 %
SELECT m.epochs = (SELECT count(*) FROM auto1) AS epochs_recorded,
       m.best_epoch = (SELECT epoch FROM auto1 ORDER BY recall DESC NULLS LAST, epoch LIMIT 1) AS best_kept,
       (SELECT max(recall) FROM auto1 WHERE epoch > m.epochs / 2) <=
         1.02 * (SELECT max(recall) FROM auto1 WHERE epoch <= m.epochs / 2) AS last_gain_small,
       (m.hyperparams->>'lr_min')::float8 = (m.hyperparams->>'lr')::float8 / 100 AS lr_min_default,
       m.hyperparams->'epochs' = 'null'::jsonb AS epochs_null,
       m.hyperparams->>'holdout' AS holdout,
       m.hyperparams->>'max_epochs' AS max_epochs,
       m.n_interactions = (SELECT count(*) FROM planted) AS all_pairs_counted
FROM dsl.models m WHERE m.name = 'planted_auto';
-- the held-out pairs are still the user's interactions: stored as seen ...
SELECT sum(cardinality(items)) = (SELECT count(*) FROM planted) AS seen_complete
FROM dsl.seen_items JOIN dsl.models USING (model_id) WHERE name = 'planted_auto';
-- ... so never recommended
SELECT count(*) AS seen_recommended
FROM generate_series(0, 239) AS u,
     LATERAL dsl.recommend('planted_auto', u, k => 10) r
WHERE EXISTS (SELECT 1 FROM planted p WHERE p.user_id = u AND p.item_id = r.item_id);
-- and the model is good: the top 5 are mostly in the user's planted cluster
SELECT avg((u % 6 = r.item_id % 6)::int) > 0.8 AS clusters_learned
FROM generate_series(0, 239) AS u, LATERAL dsl.recommend('planted_auto', u, k => 5) r;

-- a sparse model trains at least 240 epochs under the rule (its early
-- schedules can gain little just before a large gain): planted_auto's
-- validation stopped improving after 30 epochs; dense, the same run stops
-- after the first schedule that did not pay
SELECT count(*) AS sparse_epochs FROM auto1;
SELECT count(*) AS dense_epochs
FROM dsl.train('planted_dense', 'planted', dim => 16, density => 1,
               batch_size => 128, lr => 0.01, reg => 0.001, seed => 42,
               options => '{"refit": false}');
-- LightGCN's minimum (480 epochs) holds at every density: its dense
-- models too can stall over a schedule right before a gain.  The NOTICEs
-- show the schedules that did not pay and went on because of it.
SET client_min_messages = notice;
SELECT count(*) AS lightgcn_dense_epochs
FROM dsl.train('planted_lg_dense', 'planted', model_type => 'lightgcn', dim => 16,
               density => 1, batch_size => 128, lr => 0.01, reg => 0.001, seed => 42,
               options => '{"refit": false}');
SET client_min_messages = warning;

-- deterministic for a seed: the split, the stopping epoch and the weights
CREATE TABLE auto2 AS
SELECT * FROM dsl.train('planted_auto2', 'planted', dim => 16, density => 0.5,
                        batch_size => 128, lr => 0.01, reg => 0.001, seed => 42,
                        options => '{"refit": false}');
SELECT (SELECT count(*) FROM auto1) = (SELECT count(*) FROM auto2) AS same_epochs,
       (SELECT count(*) FROM (SELECT part, entity_id, vec::text FROM dsl.parameters JOIN dsl.models USING (model_id)
                              WHERE name = 'planted_auto'
                              EXCEPT
                              SELECT part, entity_id, vec::text FROM dsl.parameters JOIN dsl.models USING (model_id)
                              WHERE name = 'planted_auto2') d) AS diff_same_seed;

-- max_epochs bounds the run; the ζ schedule is then over those epochs
SELECT count(*) AS epochs_run
FROM dsl.train('planted_auto3', 'planted', dim => 16, batch_size => 128, seed => 1,
               options => '{"max_epochs": 3, "refit": false}');
-- (MF's default update interval is two epochs' steps)
SELECT hyperparams->>'max_epochs' AS max_epochs,
       (hyperparams->>'total_steps')::int = 3 * (hyperparams->>'update_interval')::int / 2
         AS horizon_is_max_epochs
FROM dsl.models WHERE name = 'planted_auto3';

-- a run whose schedule of 30 epochs beat nothing, and whose one of 60
-- epochs beat that by more than 2 %: continued over 60, then 100 epochs
-- (max_epochs), each time said in a NOTICE; ζ rises again when the
-- schedule is redrawn (the update_ratio column), and so does lr
SET client_min_messages = notice;
CREATE TABLE auto6 AS
SELECT * FROM dsl.train('planted_auto6', 'planted', dim => 16, density => 0.5, seed => 3,
                        options => '{"max_epochs": 100, "refit": false}');
SET client_min_messages = warning;
SELECT (SELECT update_ratio FROM auto6 WHERE epoch = 30) > (SELECT update_ratio FROM auto6 WHERE epoch = 29)
         AS zeta_rose,
       (hyperparams->>'total_steps')::int = 100 * (hyperparams->>'update_interval')::int / 2
         AS schedule_spans_100_epochs,
       epochs
FROM dsl.models WHERE name = 'planted_auto6';

-- batch_size NULL (the default): MF takes the largest power of two from 128
-- to 2048 that still gives 256 steps an epoch: 128 here (about 2700 pairs),
-- 256 for 70 000 pairs
SELECT hyperparams->>'batch_size' AS batch_size FROM dsl.models WHERE name = 'planted_auto6';
CREATE TABLE mid AS SELECT u AS user_id, (u * 37 + k * 11) % 997 AS item_id
FROM generate_series(1, 7000) u, generate_series(1, 10) k;
SELECT count(*) AS epochs FROM dsl.train('planted_auto_mid', 'mid', dim => 4, epochs => 1, seed => 1);
SELECT hyperparams->>'batch_size' AS batch_size FROM dsl.models WHERE name = 'planted_auto_mid';

-- the hold-out takes pairs from at most holdout_users users (all 240 here;
-- 50 when asked), and says how many it took
SELECT count(*) AS epochs_run
FROM dsl.train('planted_auto7', 'planted', dim => 16, batch_size => 128, seed => 1,
               options => '{"max_epochs": 2, "holdout_users": 50, "refit": false}');
SELECT name, hyperparams->>'holdout_users' AS holdout_users,
       (hyperparams->>'held_out_users')::int AS held_out_users,
       (hyperparams->>'held_out_pairs')::int >= (hyperparams->>'held_out_users')::int AS pairs_ge_users
FROM dsl.models WHERE name IN ('planted_auto3', 'planted_auto7') ORDER BY name;

-- max_seconds: a time cap, reported, the best epoch so far kept
SET client_min_messages = notice;
SELECT count(*) AS epochs_run
FROM dsl.train('planted_auto4', 'planted', dim => 16, batch_size => 128, seed => 1,
               options => '{"max_seconds": 0.000001}');
SET client_min_messages = warning;
SELECT epochs, best_epoch FROM dsl.models WHERE name = 'planted_auto4';

-- an explicit validation relation is used instead of a hold-out
CREATE TABLE planted_train AS SELECT * FROM planted WHERE (user_id * 7 + item_id) % 10 <> 0;
CREATE TABLE planted_val AS SELECT * FROM planted WHERE (user_id * 7 + item_id) % 10 = 0;
CREATE TABLE auto5 AS
SELECT * FROM dsl.train('planted_auto5', 'planted_train', dim => 16, batch_size => 128, lr => 0.01, reg => 0.001,
                        seed => 42, validation => 'planted_val');
SELECT count(*) < 1000 AS stopped_early,
       (SELECT hyperparams ? 'holdout' FROM dsl.models WHERE name = 'planted_auto5') AS has_holdout,
       (SELECT hyperparams->>'validation' FROM dsl.models WHERE name = 'planted_auto5') AS validation
FROM auto5;

-- refit (the default): once the stopping rule has chosen a length on its
-- hold-out, a new model is trained from scratch on every pair over one
-- schedule of that length, and that model is stored
SET client_min_messages = notice;
CREATE TABLE refit1 AS
SELECT * FROM dsl.train('planted_refit', 'planted', dim => 16, density => 0.5,
                        batch_size => 128, lr => 0.01, reg => 0.001, seed => 42);
SET client_min_messages = warning;
-- the first phase is planted_auto's run, epoch for epoch; the refit's rows
-- follow it, not evaluated, each with the exact budget
SELECT (SELECT count(*) FROM refit1 r JOIN auto1 a USING (epoch)
        WHERE r.loss = a.loss AND r.recall IS NOT DISTINCT FROM a.recall)
         = (SELECT count(*) FROM auto1) AS first_phase_same,
       (SELECT count(*) FROM refit1) - (SELECT count(*) FROM auto1)
         = (SELECT best_epoch FROM dsl.models WHERE name = 'planted_auto') AS refit_ran_chosen_epochs,
       (SELECT bool_and(recall IS NULL) FROM refit1 WHERE epoch > (SELECT count(*) FROM auto1))
         AS refit_not_evaluated,
       (SELECT bool_and(active_params = 2880) FROM refit1) AS budget_exact;
-- the stored model is the refit's last epoch, its length recorded
SELECT m.epochs = (SELECT count(*) FROM refit1) AS epochs_recorded,
       m.best_epoch = m.epochs AS last_epoch_kept,
       (m.hyperparams->>'refit')::boolean AS refit,
       (m.hyperparams->>'refit_epochs')::int
         = (SELECT best_epoch FROM dsl.models WHERE name = 'planted_auto') AS refit_epochs,
       (m.hyperparams->>'total_steps')::int
         = (m.hyperparams->>'refit_epochs')::int * ceil(2350 / 128.0)::int AS schedule_is_refit
FROM dsl.models m WHERE m.name = 'planted_refit';
-- and it is a good model: at least as good as the first phase's on the
-- planted clusters
SELECT avg((u % 6 = r.item_id % 6)::int) > 0.8 AS clusters_learned
FROM generate_series(0, 239) AS u, LATERAL dsl.recommend('planted_refit', u, k => 5) r;
-- the refit is exactly the model that dsl.train(epochs => that length)
-- trains on every pair: same parameters, same losses epoch for epoch, same
-- data-dependent defaults (growth_batches follows the refit's epoch)
CREATE TABLE fixed1 AS
SELECT * FROM dsl.train('planted_fixed', 'planted', dim => 16, density => 0.5,
                        batch_size => 128, lr => 0.01, reg => 0.001, seed => 42,
                        epochs => (SELECT (hyperparams->>'refit_epochs')::int
                                   FROM dsl.models WHERE name = 'planted_refit'));
SELECT (SELECT count(*) FROM fixed1 f JOIN refit1 r
          ON r.epoch = f.epoch + (SELECT count(*) FROM auto1)
        WHERE r.loss = f.loss AND r.active_params = f.active_params)
         = (SELECT count(*) FROM fixed1) AS same_losses,
       pg_temp.same_parameters('planted_refit', 'planted_fixed') AS same_parameters,
       (SELECT hyperparams->'growth_batches' FROM dsl.models WHERE name = 'planted_refit')
         = (SELECT hyperparams->'growth_batches' FROM dsl.models WHERE name = 'planted_fixed')
         AS same_growth_batches;
-- no refit with an explicit validation relation (auto5 above: nothing held
-- out) nor after the time limit (auto4)
SELECT name, hyperparams->>'refit_epochs' AS refit_epochs, epochs, best_epoch
FROM dsl.models WHERE name IN ('planted_auto4', 'planted_auto5') ORDER BY name;
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"refit": 1}');
-- bad values name the option and the valid range
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"max_epochs": 0}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"max_epochs": 2.5}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"max_seconds": -1}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"holdout": 0}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"holdout": 0.9}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"holdout_users": 0}');
SELECT count(*) FROM dsl.train('bad', 'planted', lr => 0.01, options => '{"lr_min": 0.02}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"lr_min": -1}');
SELECT count(*) FROM dsl.train('bad', 'planted', options => '{"holdout_users": 1.5}');
SELECT count(*) FROM dsl.model_name_taken('bad') WHERE model_name_taken;

-- reg NULL (MF): a doubled schedule that did not pay is followed by one
-- more with half the reg, whose training is kept only if its validation
-- recall beats the best so far by 2 %.  Where it does not (the planted
-- clusters are learned after 30 epochs), the run ends as with reg 0.01
-- given, one schedule later, with the same model
CREATE TABLE halve1 AS
SELECT * FROM dsl.train('halve_not_paid', 'planted', dim => 16, density => 1,
                        batch_size => 128, lr => 0.01, seed => 42,
                        options => '{"refit": false}');
CREATE TABLE halve2 AS
SELECT * FROM dsl.train('halve_reg_given', 'planted', dim => 16, density => 1,
                        batch_size => 128, lr => 0.01, seed => 42, reg => 0.01,
                        options => '{"refit": false}');
SELECT name, epochs, best_epoch, hyperparams->>'reg' AS reg,
       hyperparams->>'reg_halved_at' AS halved_at, hyperparams->>'reg_before' AS reg_before
FROM dsl.models WHERE name LIKE 'halve%' ORDER BY name;
SELECT (SELECT array_agg(epoch ORDER BY epoch) FROM halve1 WHERE recall IS NOT NULL) AS evaluated,
       pg_temp.same_parameters('halve_not_paid', 'halve_reg_given') AS same_model;
-- where it pays (a wider cluster structure at dim 8), the rule goes on with
-- 0.005 and keeps what it trained; the refit trains with the kept reg, so
-- it is dsl.train(epochs => that length, reg => 0.005) on every pair
CREATE TABLE wide AS
SELECT u AS user_id, i AS item_id
FROM generate_series(0, 799) u, generate_series(0, 399) i
WHERE ((i % 50) = (u % 50) AND (hashint4(u * 7919 + i) & 7) < 5)
   OR (hashint4(u * 1000 + i) & 1023) < 12;
CREATE TABLE halve3 AS
SELECT * FROM dsl.train('halve_paid', 'wide', dim => 8, density => 1, seed => 42,
                        options => '{"refit": false}');
CREATE TABLE halve4 AS
SELECT * FROM dsl.train('halve_paid_refit', 'wide', dim => 8, density => 1, seed => 42);
SELECT name, epochs, best_epoch, hyperparams->>'reg' AS reg,
       hyperparams->>'reg_halved_at' AS halved_at, hyperparams->>'reg_before' AS reg_before,
       hyperparams->>'refit_epochs' AS refit_epochs
FROM dsl.models WHERE name LIKE 'halve_paid%' ORDER BY name;
CREATE TABLE halve5 AS
SELECT * FROM dsl.train('halve_fixed', 'wide', dim => 8, density => 1, seed => 42, reg => 0.005,
                        epochs => (SELECT (hyperparams->>'refit_epochs')::int
                                   FROM dsl.models WHERE name = 'halve_paid_refit'));
SELECT (SELECT count(*) FROM halve5 f JOIN halve4 r
          ON r.epoch = f.epoch + (SELECT count(*) FROM halve3) AND r.loss = f.loss)
         = (SELECT count(*) FROM halve5) AS refit_same_losses,
       pg_temp.same_parameters('halve_paid_refit', 'halve_fixed') AS refit_same_model;
-- not with patience (the old-style rule)
SELECT count(*) AS epochs_with_patience
FROM dsl.train('halve_patience', 'wide', dim => 8, density => 1, seed => 42, patience => 2,
               eval_every => 30, options => '{"refit": false}');
SELECT hyperparams ? 'reg_halved_at' AS halved FROM dsl.models WHERE name = 'halve_patience';

SELECT dsl.drop_model(name) FROM dsl.models WHERE name LIKE 'planted_auto%' OR name LIKE 'halve%' OR name IN ('planted_refit', 'planted_fixed', 'planted_dense', 'planted_lg_dense') ORDER BY name;
DROP SCHEMA stopping CASCADE;
RESET search_path;
