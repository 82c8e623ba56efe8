-- Hostile identifiers: relation, schema and column names with quotes,
-- semicolons, spaces, upper case and non-ASCII letters work as identifiers of
-- dsl.train, dsl.evaluate and dsl.split, or fail with a clear error; none is
-- ever executed as SQL.  Table t is the canary: every statement below that
-- would run an injected "DROP TABLE t" or "DELETE FROM t" would empty or
-- drop it, and it is checked after each group.
SET dsl_rec.progress = off;
SET client_min_messages = warning;
CREATE TABLE t (x int);
INSERT INTO t VALUES (1), (2), (3);

CREATE SCHEMA "Sch; DROP TABLE t; --";
CREATE TABLE "x); DROP TABLE t; --" (
    "x); DROP TABLE t; --" int,
    "item""; DELETE FROM t; --" bigint,
    "Üser Ïd" smallint,
    "ÍTEM ÏD" integer,
    "user_id" bigint,
    "item_id" bigint);
INSERT INTO "x); DROP TABLE t; --"
SELECT u, (u * 7 + k * 3) % 20, u, (u * 7 + k * 3) % 20, u, (u * 7 + k * 3) % 20
FROM generate_series(1, 30) u, generate_series(1, 5) k;
CREATE TABLE "Sch; DROP TABLE t; --"."Ïnter'; DELETE FROM t" AS
SELECT "x); DROP TABLE t; --" AS "U;--", "item""; DELETE FROM t; --" AS "I'); DROP TABLE t"
FROM "x); DROP TABLE t; --";

-- dsl.train: hostile table and column names are identifiers
SELECT count(*) FROM dsl.train('sec_hostile', '"x); DROP TABLE t; --"',
    user_col => 'x); DROP TABLE t; --', item_col => 'item"; DELETE FROM t; --',
    dim => 4, epochs => 1, seed => 1);
SELECT source, user_col, item_col, n_users, n_items, n_interactions
FROM dsl.models WHERE name = 'sec_hostile';
SELECT count(*) FROM dsl.train('sec_unicode', '"x); DROP TABLE t; --"',
    user_col => 'Üser Ïd', item_col => 'ÍTEM ÏD', dim => 4, epochs => 1, seed => 1);
SELECT count(*) FROM dsl.train('sec_schema', '"Sch; DROP TABLE t; --"."Ïnter''; DELETE FROM t"',
    user_col => 'U;--', item_col => 'I''); DROP TABLE t', dim => 4, epochs => 1, seed => 1);
SELECT source, user_col, item_col FROM dsl.models WHERE name = 'sec_schema';
-- the same data gives the same model whatever the names
SELECT count(DISTINCT (SELECT string_agg(p.part || p.entity_id || ':' || p.vec::text, ',' ORDER BY p.part, p.entity_id)
                       FROM dsl.parameters p WHERE p.model_id = m.model_id))
FROM dsl.models m WHERE m.name IN ('sec_hostile', 'sec_unicode', 'sec_schema');
SELECT count(*) AS canary FROM t;

-- names that are not exactly a column: a clear error, nothing executed
SELECT count(*) FROM dsl.train('sec_bad', '"x); DROP TABLE t; --"',
    user_col => 'user_id FROM t; DROP TABLE t; --', item_col => 'item_id');
SELECT count(*) FROM dsl.train('sec_bad', '"x); DROP TABLE t; --"',
    user_col => '"x); DROP TABLE t; --"', item_col => 'item_id');
SELECT count(*) FROM dsl.train('sec_bad', '"x); DROP TABLE t; --"',
    user_col => 'üser ïd', item_col => 'item_id');
SELECT count(*) FROM dsl.train('sec_bad', '"x); DROP TABLE t; --"',
    user_col => 'user_id', item_col => 'item_id''::int8 FROM t; DROP TABLE t; --');
SELECT count(*) FROM dsl.train('sec_bad', '"x); DROP TABLE t; --"',
    user_col => 'user_id', item_col => E'item_id\n; DROP TABLE t');
-- a relation name that is SQL, not a name: regclass input refuses it
SELECT count(*) FROM dsl.train('sec_bad', 'x); DROP TABLE t; --');
SELECT count(*) FROM dsl.train('sec_bad', 'public.t; DROP TABLE t');
SELECT count(*) FROM dsl.train('sec_bad', '"x); DROP TABLE t; --" ; DROP TABLE t');
-- and the validation relation is handled the same way
SELECT count(*) FROM dsl.train('sec_val', '"x); DROP TABLE t; --"',
    user_col => 'x); DROP TABLE t; --', item_col => 'item"; DELETE FROM t; --',
    validation => '"x); DROP TABLE t; --"', dim => 4, epochs => 1, seed => 1);
SELECT count(*) FROM dsl.train('sec_val2', '"x); DROP TABLE t; --"',
    validation => '"Sch; DROP TABLE t; --"."Ïnter''; DELETE FROM t"', dim => 4, epochs => 1);
SELECT count(*) AS canary FROM t;

-- dsl.evaluate
SELECT metric, value IS NOT NULL AS has_value
FROM dsl.evaluate('sec_hostile', '"x); DROP TABLE t; --"',
                  'x); DROP TABLE t; --', 'item"; DELETE FROM t; --', k => 5);
SELECT value FROM dsl.evaluate('sec_hostile', '"Sch; DROP TABLE t; --"."Ïnter''; DELETE FROM t"',
                  'U;--', 'I''); DROP TABLE t', k => 5) WHERE metric = 'users_evaluated';
SELECT value FROM dsl.evaluate('sec_hostile', '"x); DROP TABLE t; --"',
                  'Üser Ïd', 'ÍTEM ÏD', k => 5) WHERE metric = 'users_evaluated';
SELECT * FROM dsl.evaluate('sec_hostile', '"x); DROP TABLE t; --"',
                  'user_id IS NOT NULL; DROP TABLE t; --', 'item_id');
SELECT * FROM dsl.evaluate('sec_hostile', '"x); DROP TABLE t; --"',
                  'user_id', 'item_id, 1 FROM t; DROP TABLE t; --');
SELECT * FROM dsl.evaluate('sec_hostile', 'x); DROP TABLE t; --');
SELECT count(*) AS canary FROM t;

-- dsl.split
SELECT count(*), count(*) FILTER (WHERE is_test) AS test
FROM dsl.split('"x); DROP TABLE t; --"', 'x); DROP TABLE t; --', 'item"; DELETE FROM t; --', 0.2, 1);
SELECT count(*), count(*) FILTER (WHERE is_test) AS test
FROM dsl.split('"Sch; DROP TABLE t; --"."Ïnter''; DELETE FROM t"', 'U;--', 'I''); DROP TABLE t', 0.2, 1);
SELECT count(*) FROM dsl.split('"x); DROP TABLE t; --"', 'Üser Ïd', 'ÍTEM ÏD');
-- the same pairs split the same way whatever the names
SELECT (SELECT array_agg(s ORDER BY s) FROM dsl.split('"x); DROP TABLE t; --"', 'Üser Ïd', 'ÍTEM ÏD', 0.3, 5) s)
     = (SELECT array_agg(s ORDER BY s) FROM dsl.split('"x); DROP TABLE t; --"', 'user_id', 'item_id', 0.3, 5) s)
       AS same_split;
SELECT * FROM dsl.split('"x); DROP TABLE t; --"', 'user_id) FROM t; DROP TABLE t; --', 'item_id');
SELECT * FROM dsl.split('"x); DROP TABLE t; --"', 'user_id', '"item_id"');
SELECT * FROM dsl.split('x); DROP TABLE t; --');
SELECT count(*) AS canary FROM t;

-- model names are values, not identifiers: any text of at most 200 bytes
SELECT count(*) FROM dsl.train('sec_m''); DROP TABLE t; --', '"x); DROP TABLE t; --"',
    dim => 4, epochs => 1, seed => 1);
SELECT count(*) FROM dsl.train('Séc "Ünïcode" Mödel', '"x); DROP TABLE t; --"',
    dim => 4, epochs => 1, seed => 1);
SELECT count(*) FROM dsl.recommend('sec_m''); DROP TABLE t; --', 1, 3);
SELECT count(*) FROM dsl.recommend('Séc "Ünïcode" Mödel', 1, 3);
SELECT count(*) FROM dsl.recommend('SÉC "ÜNÏCODE" MÖDEL', 1, 3);
SELECT count(*) FROM dsl.train('sec_m''); DROP TABLE t; --', '"x); DROP TABLE t; --"',
    dim => 4, epochs => 1);
SELECT dsl.drop_model('sec_m''); DROP TABLE t; --'), dsl.drop_model('Séc "Ünïcode" Mödel');
SELECT count(*) AS canary FROM t;

-- a temporary table with a hostile name
CREATE TEMP TABLE "tmp; DROP TABLE t" AS SELECT * FROM "x); DROP TABLE t; --";
SELECT count(*) FROM dsl.train('sec_temp', 'pg_temp."tmp; DROP TABLE t"', dim => 4, epochs => 1, seed => 1);
SELECT value FROM dsl.evaluate('sec_temp', 'pg_temp."tmp; DROP TABLE t"', k => 5) WHERE metric = 'users_evaluated';
SELECT count(*) FROM dsl.split('pg_temp."tmp; DROP TABLE t"');

SELECT dsl.drop_model(name) FROM dsl.models WHERE name LIKE 'sec\_%' ORDER BY name;
SELECT count(*) AS canary FROM t;
DROP SCHEMA "Sch; DROP TABLE t; --" CASCADE;
DROP TABLE "x); DROP TABLE t; --", t;
