-- test/bench/train_run.sql - one training run of the benchmark, in a fresh
-- connection of its own so that the backend's peak memory (VmHWM) belongs to
-- this training alone.  Every result goes to a CSV file under :outdir.
--
-- Variables: outdir model source test model_type dim density epochs batch lr
-- reg update_interval (NULL or a number) sparsity seed options eval_every k
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
SET dsl_rec.progress = off;

\set f :outdir '/mem_before.csv'
\o :f
SELECT * FROM bench_proc_status();

\set f :outdir '/epochs.csv'
\o :f
SELECT * FROM dsl.train(:'model', :'source', 'user_id', 'item_id',
    model_type => :'model_type', dim => :dim, density => :density,
    epochs => :epochs, batch_size => :batch, lr => :lr, reg => :reg,
    update_interval => :update_interval, sparsity => :'sparsity',
    seed => :seed, replace => true, options => :'options'::jsonb,
    validation => :'test', eval_every => :eval_every, k => :k);

\set f :outdir '/mem_after.csv'
\o :f
SELECT * FROM bench_proc_status();

\set f :outdir '/model.csv'
\o :f
SELECT model_id, name, model_type, dim, density, hyperparams->>'sparsity' AS sparsity,
       n_users, n_items, n_interactions, active_params, total_params,
       epochs, best_epoch, final_loss, train_seconds, train_peak_bytes
FROM dsl.models WHERE name = :'model';

-- Test metrics with dsl.evaluate (the first call also loads the model into
-- this backend's serving cache; the time includes that).
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
\set f :outdir '/eval.csv'
\o :f
SELECT metric, value FROM dsl.evaluate(:'model', :'test', 'user_id', 'item_id', :k);
\set f :outdir '/eval_time.csv'
\o :f
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS eval_seconds;
\o
