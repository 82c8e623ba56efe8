-- test/bench/speed_run.sql - one training-speed run of the benchmark: the
-- epoch rows of a training without validation, rolled back (nothing is
-- stored).  bench.sh alternates densities and repeats them, so that all
-- densities see the same share of the shared machine's good and bad moments.
--
-- Variables: out model_type source dim density epochs batch lr reg seed options
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
SET dsl_rec.progress = off;
BEGIN;
\o :out
SELECT epoch, seconds, pruned, loss
FROM dsl.train('bench_speed', :'source', 'user_id', 'item_id',
    model_type => :'model_type', dim => :dim, density => :density,
    epochs => :epochs, batch_size => :batch, lr => :lr, reg => :reg,
    seed => :seed, replace => true, options => :'options'::jsonb);
\o
ROLLBACK;
