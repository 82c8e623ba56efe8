-- test/bench/fold_in.sql - the bench's "new users" block (fold-in).
--
-- 1. For each model of the "defaults" block named in :models (a
--    comma-separated list, "<model>:<dataset>"), its own test users' training
--    histories folded in (dsl.evaluate_histories on <dataset>_train) against
--    the same users' stored rows (dsl.evaluate), both on <dataset>_test.
-- 2. Strong generalization on the DSL reference's MovieLens-1M split, when
--    :sgdir has it: MF and MultVAE trained with the defaults on train.csv at each density
--    of :sg_densities, evaluated by folding in test_tr.csv and predicting
--    test_te.csv (the MultVAE protocol).
-- Results: :outdir/users.csv and :outdir/sg.csv.
-- Variables: outdir models sg (true|false) sgdir sg_densities (comma list)
-- sg_options (jsonb: '{}', or QUICK's max_epochs cap) seed k
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
SET dsl_rec.progress = off;

CREATE TEMP TABLE fold_users (model text, dataset text, how text, metric text, value float8, seconds float8);
SET bench.models = :'models';
DO $$
DECLARE
    spec text;
    m text;
    ds text;
    t0 timestamptz;
BEGIN
    FOREACH spec IN ARRAY string_to_array(current_setting('bench.models'), ',') LOOP
        m := split_part(spec, ':', 1);
        ds := split_part(spec, ':', 2);
        CONTINUE WHEN NOT EXISTS (SELECT FROM dsl.models WHERE name = m);
        t0 := clock_timestamp();
        INSERT INTO fold_users SELECT m, ds, 'stored', e.metric, e.value, NULL
          FROM dsl.evaluate(m, (ds || '_test')::regclass) e;
        UPDATE fold_users SET seconds = extract(epoch FROM clock_timestamp() - t0)
         WHERE model = m AND how = 'stored';
        t0 := clock_timestamp();
        INSERT INTO fold_users SELECT m, ds, 'folded_in', e.metric, e.value, NULL
          FROM dsl.evaluate_histories(m, (ds || '_train')::regclass, (ds || '_test')::regclass) e;
        UPDATE fold_users SET seconds = extract(epoch FROM clock_timestamp() - t0)
         WHERE model = m AND how = 'folded_in';
    END LOOP;
END
$$;
\set f :outdir '/users.csv'
\o :f
SELECT * FROM fold_users ORDER BY model, how, metric;
\o

\if :sg
DROP TABLE IF EXISTS sg_train, sg_test_tr, sg_test_te;
CREATE TABLE sg_train (user_id bigint, item_id bigint);
CREATE TABLE sg_test_tr (user_id bigint, item_id bigint);
CREATE TABLE sg_test_te (user_id bigint, item_id bigint);
\set cmd 'cat ' :'sgdir' '/train.csv'
COPY sg_train FROM PROGRAM :'cmd' (FORMAT csv, HEADER);
\set cmd 'cat ' :'sgdir' '/test_tr.csv'
COPY sg_test_tr FROM PROGRAM :'cmd' (FORMAT csv, HEADER);
\set cmd 'cat ' :'sgdir' '/test_te.csv'
COPY sg_test_te FROM PROGRAM :'cmd' (FORMAT csv, HEADER);
CREATE TEMP TABLE sg_runs (model_type text, density float8, epochs int, call_seconds float8,
                           metric text, value float8);
SET bench.sg_densities = :'sg_densities';
SET bench.seed = :'seed';
SET bench.sg_options = :'sg_options';
SET bench.k = :'k';
DO $$
DECLARE
    mt text;
    d float8;
    t0 timestamptz;
    secs float8;
    n int;
BEGIN
    FOREACH mt IN ARRAY ARRAY['mf', 'multvae'] LOOP
    CONTINUE WHEN NOT mt = ANY (dsl.model_types());
    FOREACH d IN ARRAY string_to_array(current_setting('bench.sg_densities'), ',')::float8[] LOOP
        t0 := clock_timestamp();
        -- the defaults: nothing but the name, the source, the model type,
        -- the density and the seed (options is '{}' but in QUICK mode)
        SELECT count(*) INTO n FROM dsl.train('sg_' || mt || '_d' || d, 'sg_train', model_type => mt,
                                              density => d,
                                              seed => current_setting('bench.seed')::bigint,
                                              options => current_setting('bench.sg_options')::jsonb,
                                              replace => true);
        secs := extract(epoch FROM clock_timestamp() - t0);
        INSERT INTO sg_runs SELECT mt, d, n, secs, e.metric, e.value
          FROM dsl.evaluate_histories('sg_' || mt || '_d' || d, 'sg_test_tr', 'sg_test_te',
                                      k => current_setting('bench.k')::int) e;
    END LOOP;
    END LOOP;
END
$$;
\set f :outdir '/sg.csv'
\o :f
SELECT (SELECT count(*) FROM sg_train) AS train_pairs,
       (SELECT count(DISTINCT user_id) FROM sg_train) AS train_users,
       (SELECT count(DISTINCT user_id) FROM sg_test_te) AS test_users,
       (SELECT count(*) FROM sg_test_tr) AS fold_in_pairs,
       (SELECT count(*) FROM sg_test_te) AS test_pairs,
       r.* FROM sg_runs r ORDER BY model_type, density DESC, metric;
\o
\endif
