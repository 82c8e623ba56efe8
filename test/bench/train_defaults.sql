-- test/bench/train_defaults.sql - one run of the bench's "defaults" block:
-- what a user gets with no tuning.  The call names the model, the source,
-- the density and the seed and nothing else: epochs NULL (the stopping rule
-- with its own seeded hold-out of the training pairs), batch_size NULL (the
-- model type's choice), the default lr schedule, no validation relation, so
-- no test pair decides anything.  Only QUICK runs add options =>
-- '{"max_epochs": N}' (:capped = true) to stay short.  The test split is
-- used afterwards, by dsl.evaluate, and only there.
--
-- In a fresh connection of its own, like train_run.sql; every result goes to
-- a CSV file under :outdir.
--
-- Variables: outdir model source test model_type density sparsity (dynamic,
-- the default, or static for the fixed-mask baseline) seed capped
-- (true|false) options (used when capped) k
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
SET dsl_rec.progress = off;

\set f :outdir '/mem_before.csv'
\o :f
SELECT * FROM bench_proc_status();

SELECT extract(epoch FROM clock_timestamp()) AS t_train \gset
\set f :outdir '/epochs.csv'
\o :f
\if :capped
SELECT * FROM dsl.train(:'model', :'source', model_type => :'model_type',
    density => :density, sparsity => :'sparsity', seed => :seed, options => :'options'::jsonb);
\else
SELECT * FROM dsl.train(:'model', :'source', model_type => :'model_type',
    density => :density, sparsity => :'sparsity', seed => :seed);
\endif
\set f :outdir '/train_time.csv'
\o :f
SELECT extract(epoch FROM clock_timestamp()) - :t_train AS call_seconds;

\set f :outdir '/mem_after.csv'
\o :f
SELECT * FROM bench_proc_status();

\set f :outdir '/model.csv'
\o :f
SELECT model_id, name, model_type, dim, density, hyperparams->>'sparsity' AS sparsity,
       n_users, n_items, n_interactions, active_params, total_params,
       epochs, best_epoch, final_loss, train_seconds, train_peak_bytes,
       hyperparams->>'batch_size' AS batch_size,
       hyperparams->>'total_steps' AS total_steps,
       hyperparams->>'max_epochs' AS max_epochs,
       hyperparams->>'held_out_pairs' AS held_out_pairs,
       hyperparams->>'held_out_users' AS held_out_users,
       hyperparams->>'refit_epochs' AS refit_epochs,
       hyperparams->>'trial_epochs' AS trial_epochs,
       hyperparams->>'lr' AS lr,
       hyperparams->>'reg' AS reg,
       hyperparams::text AS hyperparams
FROM dsl.models WHERE name = :'model';

-- Test metrics (the first call also loads the model into this backend's
-- serving cache; the time includes that).
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
\set f :outdir '/eval.csv'
\o :f
SELECT metric, value FROM dsl.evaluate(:'model', :'test', 'user_id', 'item_id', :k);
\set f :outdir '/eval_time.csv'
\o :f
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS eval_seconds;
\o
