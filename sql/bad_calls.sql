-- Bad calls of every SQL function of the extension: NULL arguments,
-- out-of-range numbers, unknown names and relations that do not exist give
-- a clear error (or, for STRICT functions, the SQL NULL / empty result);
-- never a crash or an internal error.
SET dsl_rec.progress = off;
SET client_min_messages = warning;
SET extra_float_digits = 0;

-- Runs a query that returns one value; reports the value or the error.
CREATE FUNCTION pg_temp.try(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    EXECUTE query INTO result;
    RETURN coalesce(result, 'NULL');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Calls fn once per input argument with that argument NULL and the others
-- as in base (named notation; omitted arguments take their defaults).  The
-- call is wrapped in wrap (a format() string with one %s).
CREATE FUNCTION pg_temp.null_calls(fn regprocedure, base jsonb, wrap text)
RETURNS TABLE (arg text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    fname text := (SELECT p.pronamespace::regnamespace || '.' || p.proname FROM pg_proc p WHERE p.oid = fn);
BEGIN
    FOR arg IN
        SELECT n FROM pg_proc p, unnest(p.proargnames) WITH ORDINALITY AS a(n, i)
        WHERE p.oid = fn AND (p.proargmodes IS NULL OR p.proargmodes[a.i] = 'i')
        ORDER BY a.i
    LOOP
        outcome := pg_temp.try(format(wrap, format('%s(%s)', fname,
            (SELECT string_agg(format('%s => %s', k, CASE WHEN k = arg THEN 'NULL' ELSE v END), ', ')
               FROM (SELECT key AS k, value AS v FROM jsonb_each_text(base) WHERE key <> arg
                     UNION ALL SELECT arg, 'NULL') kv))));
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE TABLE bc (user_id bigint, item_id integer, label text);
INSERT INTO bc SELECT u, (u * 7 + k * 3) % 20, 'x' FROM generate_series(1, 30) u, generate_series(1, 5) k;
CREATE TABLE bc_test AS SELECT user_id, (item_id + 1) % 20 AS item_id FROM bc WHERE item_id % 3 = 0;
SELECT count(*) FROM dsl.train('bc_m', 'bc', dim => 4, epochs => 1, seed => 1);
CREATE ROLE regress_bc_reader;

-- Every argument NULL in turn.  Every function checks its arguments: a NULL
-- is an error (22004) naming the argument, except dsl.train's arguments
-- whose default is NULL (the default: model_type, dim, density, epochs,
-- batch_size, lr, reg, update_ratio, update_interval, eval_every; none:
-- validation, warm_start) and the candidates of dsl.recommend and
-- dsl.recommend_for_items (NULL means "none"), and the user or item of
-- dsl.recommend, dsl.score and dsl.similar_items and the history of
-- dsl.recommend_for_items (unknown: no rows or NULL, for outer joins).
SELECT * FROM pg_temp.null_calls('dsl.train(text,regclass,text,text,text,integer,double precision,integer,integer,double precision,double precision,double precision,integer,text,text,text,text,bigint,boolean,jsonb,regclass,integer,integer,integer,text)',
    '{"model_name": "''bc_new''", "source": "''bc''", "dim": "2", "epochs": "1", "replace": "true"}',
    'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.recommend(text,bigint,integer,boolean,bigint[])',
    '{"model": "''bc_m''", "user_id": "1"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.recommend_for_items(text,bigint[],integer,boolean,bigint[])',
    '{"model": "''bc_m''", "items": "''{1}''"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.score(text,bigint,bigint)',
    '{"model": "''bc_m''", "user_id": "1", "item_id": "1"}', 'SELECT %s IS NULL');
SELECT * FROM pg_temp.null_calls('dsl.recommend_all(text,integer,boolean)',
    '{"model": "''bc_m''"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.similar_items(text,bigint,integer,text)',
    '{"model": "''bc_m''", "item": "1"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.evaluate(text,regclass,text,text,integer)',
    '{"model": "''bc_m''", "test_source": "''bc_test''"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.evaluate_histories(text,regclass,regclass,text,text,integer)',
    '{"model": "''bc_m''", "history_source": "''bc''", "test_source": "''bc_test''"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.split(regclass,text,text,double precision,bigint)',
    '{"source": "''bc''"}', 'SELECT count(*) FROM %s');
SELECT * FROM pg_temp.null_calls('dsl.check_id_columns(regclass,text,text)',
    '{"source": "''bc''", "user_col": "''user_id''", "item_col": "''item_id''"}', 'SELECT %s');
SELECT * FROM pg_temp.null_calls('dsl.drop_model(text,boolean)',
    '{"model_name": "''bc_nope''"}', 'SELECT %s');
SELECT * FROM pg_temp.null_calls('dsl.grant_model(text,regrole)',
    '{"model_name": "''bc_m''", "reader": "''regress_bc_reader''"}', 'SELECT %s');
SELECT * FROM pg_temp.null_calls('dsl.revoke_model(text,regrole)',
    '{"model_name": "''bc_m''", "reader": "''regress_bc_reader''"}', 'SELECT %s');
SELECT dsl.drop_model('bc_new', if_exists => true);

-- numbers out of range, unknown names, relations that do not exist
SELECT q, pg_temp.try(q) FROM (VALUES
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', 1, k => 0)'),
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', 1, k => -1)'),
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', 1, k => 2147483647)'),
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', 1, k => 2147483648)'),
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', -9223372036854775808, k => 3)'),
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', 1, candidates => ''{}'')'),
    ('SELECT count(*) FROM dsl.recommend(''bc_m'', 1, candidates => ''{{1,2},{3,NULL}}'')'),
    ('SELECT count(*) FROM dsl.recommend(''bc_nope'', 1)'),
    ('SELECT count(*) FROM dsl.recommend('''', 1)'),
    ('SELECT dsl.score(''bc_nope'', 1, 1)'),
    ('SELECT dsl.score(''bc_m'', 1, 12345) IS NULL'),
    ('SELECT count(*) FROM dsl.recommend_all(''bc_m'', 0)'),
    ('SELECT count(*) FROM dsl.recommend_all(''bc_m'', 2147483647)'),
    ('SELECT count(*) FROM dsl.recommend_all(''bc_nope'')'),
    ('SELECT count(*) FROM dsl.similar_items(''bc_m'', 1, 0)'),
    ('SELECT count(*) FROM dsl.similar_items(''bc_m'', 1, 2147483647)'),
    ('SELECT count(*) FROM dsl.similar_items(''bc_m'', 12345)'),
    ('SELECT count(*) FROM dsl.similar_items(''bc_m'', 1, 5, ''euclid'')'),
    ('SELECT count(*) FROM dsl.similar_items(''bc_m'', 1, 5, ''COSINE'')'),
    ('SELECT count(*) FROM dsl.similar_items(''bc_nope'', 1)'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc_test'', k => 0)'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc_test'', k => 2147483647)'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_nope'', ''bc_test'')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc_nope'')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc'', item_col => ''label'')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc'', item_col => ''nope'')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc'', item_col => '''')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc'', item_col => ''ctid'')'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => 0)'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => 1)'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => ''NaN'')'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => -0.5)'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => 1.5)'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => ''Infinity'')'),
    ('SELECT count(*) FROM dsl.split(''bc'', test_fraction => ''-Infinity'')'),
    ('SELECT count(*) FROM dsl.split(''bc'', seed => -9223372036854775808)'),
    ('SELECT count(*) FROM dsl.split(''bc'', item_col => ''label'')'),
    ('SELECT count(*) FROM dsl.split(''bc'', item_col => ''nope'')'),
    ('SELECT count(*) FROM dsl.split(''bc_nope'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', k => 10001)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', epochs => 100001)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', dim => -1)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', batch_size => 1000001)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', update_ratio => ''NaN'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', update_interval => -1)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', options => ''null'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', options => ''{"adam_eps": 1e300}'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', options => ''{"init_std": null}'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', options => ''{"": 1}'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', model_type => '''')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', model_type => ''MF'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', validation => ''bc_nope'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc_test'', validation => ''bc'', item_col => ''label'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', item_col => ''label'')'),
    ('SELECT count(*) FROM dsl.train(repeat(''x'', 201), ''bc'')'),
    ('SELECT dsl.drop_model(''bc_nope'')'),
    ('SELECT dsl.drop_model(''bc_nope'', true)'),
    ('SELECT dsl.drop_model('''')'),
    ('SELECT dsl.grant_model(''bc_nope'', ''regress_bc_reader'')'),
    ('SELECT dsl.grant_model(''bc_m'', ''regress_no_such_role'')'),
    ('SELECT dsl.grant_model(''bc_m'', ''public'')'),
    ('SELECT dsl.grant_model(''bc_m'', ''-'')'),
    ('SELECT dsl.grant_model(''bc_m'', 12345::oid::regrole)'),
    ('SELECT dsl.revoke_model(''bc_nope'', ''regress_bc_reader'')'),
    ('SELECT dsl.revoke_model(''bc_m'', ''regress_bc_reader'')')
) AS t(q);

-- relation OIDs that name no relation (regclass casts from numbers are not checked)
SELECT q, pg_temp.try(q) FROM (VALUES
    ('SELECT count(*) FROM dsl.train(''bc_x'', 0::regclass)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', 12345::regclass)'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc'', validation => 12345::regclass)'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', 0::regclass)'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', 12345::regclass)'),
    ('SELECT count(*) FROM dsl.split(0::regclass)'),
    ('SELECT count(*) FROM dsl.split(12345::regclass)')
) AS t(q);

-- relations that are not tables
CREATE SEQUENCE bc_seq;
CREATE INDEX bc_idx ON bc (user_id, item_id);
CREATE TYPE bc_type AS (user_id bigint, item_id bigint);
SELECT q, pg_temp.try(q) FROM (VALUES
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc_seq'', ''last_value'', ''last_value'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc_idx'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''bc_type'')'),
    ('SELECT count(*) FROM dsl.train(''bc_x'', ''pg_catalog.pg_class'', ''relname'', ''relnatts'')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc_idx'')'),
    ('SELECT count(*) FROM dsl.evaluate(''bc_m'', ''bc_type'')'),
    ('SELECT count(*) FROM dsl.split(''bc_idx'')'),
    ('SELECT count(*) FROM dsl.split(''bc_type'')')
) AS t(q);

-- spvec functions: STRICT, so NULL in gives NULL out; bad numbers are errors
SELECT q, pg_temp.try(q) FROM (VALUES
    ('SELECT dsl.spvec_from_arrays(NULL, ''{1}'', 3)'),
    ('SELECT dsl.spvec_from_arrays(''{1}'', ''{1}'', NULL)'),
    ('SELECT dsl.spvec_from_arrays(''{1}'', ''{1}'', 0)'),
    ('SELECT dsl.spvec_from_arrays(''{1}'', ''{1}'', -1)'),
    ('SELECT dsl.spvec_from_arrays(''{}'', ''{}'', 2147483647)'),
    ('SELECT dsl.spvec_from_arrays(''{1,2}'', ''{1}'', 3)'),
    ('SELECT dsl.spvec_from_arrays(''{{1}}'', ''{{1}}'', 3)'),
    ('SELECT dsl.dims(NULL) IS NULL'),
    ('SELECT dsl.spvec_hash_extended(''{1:1}/3'', NULL) IS NULL'),
    ('SELECT dsl.spvec(''{1:1}/3'', 0, true)'),
    ('SELECT dsl.spvec(''{1:1}/3'', 4, true)'),
    ('SELECT dsl.spvec_from_real_array(''{1,2}'', 3, false)'),
    ('SELECT dsl.spvec_from_real_array(''{}'', -1, false)'),
    ('SELECT dsl.spvec_from_real_array(''{{1,2},{3,4}}'', -1, false)'),
    ('SELECT dsl.spvec_typmod_in(ARRAY[''-1'']::cstring[])'),
    ('SELECT dsl.spvec_typmod_in(ARRAY[]::cstring[])'),
    ('SELECT dsl.spvec_typmod_in(ARRAY[''1'', ''2'']::cstring[])'),
    ('SELECT dsl.spvec_typmod_in(ARRAY[''abc'']::cstring[])'),
    ('SELECT dsl.spvec_typmod_in(ARRAY[NULL]::cstring[])'),
    ('SELECT dsl.spvec_in(''{1:1}/3'', 0, 2)')
) AS t(q);

-- nothing was left behind
SELECT name FROM dsl.models WHERE name LIKE 'bc\_%' ORDER BY name;
SELECT dsl.drop_model('bc_m');
DROP ROLE regress_bc_reader;
DROP TABLE bc, bc_test;
DROP SEQUENCE bc_seq;
DROP TYPE bc_type;
