-- test/bench/vs_implicit_dsl.sql - the dsl_rec side of the paired timing
-- against implicit's CPU BPR (test/bench/implicit_bpr.py runs it between
-- its own blocks): one MF training of :epochs epochs at :density with the
-- defaults otherwise (batch_size NULL, lr schedule, update_interval NULL =
-- a DSL round every second epoch), no validation, rolled back (nothing is
-- stored).  The epoch rows' `seconds` are the training steps and the DSL
-- rounds, not reading the table or storing the model.
--
-- Variables: out source dim density epochs seed threads
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
SET dsl_rec.progress = off;
SET dsl_rec.threads = :threads;
BEGIN;
\o :out
SELECT epoch, seconds, pruned, regrown, active_params, loss
FROM dsl.train('bench_vs_implicit', :'source', dim => :dim, density => :density,
    epochs => :epochs, seed => :seed);
\o
ROLLBACK;
