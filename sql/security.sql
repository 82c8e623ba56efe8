-- Security: what runs as whom, model owners and readers (row-level
-- security), privileges on the source relations, and search_path safety.
-- See docs/security.md.
\set VERBOSITY terse
SET dsl_rec.progress = off;
SET client_min_messages = warning;

-- ---------------------------------------------------------------------
-- Declarations
-- ---------------------------------------------------------------------
-- one function of the extension is SECURITY DEFINER, dsl.model_name_taken
-- (it tells only whether a name is taken); every PL/pgSQL or SQL function
-- pins its search_path
SELECT p.oid::regprocedure AS function, l.lanname, p.prosecdef, p.proconfig
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dsl_rec'
JOIN pg_language l ON l.oid = p.prolang
WHERE p.prosecdef OR l.lanname <> 'c'
ORDER BY 1::text;
-- row-level security is on, and forced, on the three model tables
SELECT c.oid::regclass, c.relrowsecurity, c.relforcerowsecurity, c.relacl
FROM pg_class c WHERE c.relnamespace = 'dsl'::regnamespace AND c.relkind IN ('r', 'S')
ORDER BY 1::text;
SELECT tablename, policyname, cmd FROM pg_policies WHERE schemaname = 'dsl' ORDER BY 1, 2;
SELECT has_schema_privilege('public', 'dsl', 'USAGE') AS usage, has_schema_privilege('public', 'dsl', 'CREATE') AS "create";

-- ---------------------------------------------------------------------
-- Roles and data
-- ---------------------------------------------------------------------
CREATE ROLE regress_alice;           -- owns models
CREATE ROLE regress_bob;             -- reads alice's model once granted
CREATE ROLE regress_carol;           -- never granted
CREATE ROLE regress_dave IN ROLE regress_alice;   -- member of alice
CREATE ROLE regress_team;            -- a group role owning a model
CREATE ROLE regress_erin IN ROLE regress_team;
GRANT regress_team TO regress_alice;
CREATE ROLE regress_readers;         -- a group granted read access
CREATE ROLE regress_frank IN ROLE regress_readers;

CREATE SCHEMA sec;
GRANT USAGE ON SCHEMA sec TO PUBLIC;
CREATE TABLE sec.inter AS
SELECT u AS user_id, (u * 7 + k * 3) % 20 AS item_id, 'note' AS note
FROM generate_series(1, 30) u, generate_series(1, 5) k;
CREATE TABLE sec.test AS SELECT user_id, (item_id + 1) % 20 AS item_id FROM sec.inter WHERE item_id % 4 = 0;
CREATE TABLE sec.secret AS SELECT * FROM sec.inter;
GRANT SELECT ON sec.inter, sec.test TO regress_alice, regress_bob, regress_carol, regress_dave,
    regress_team, regress_frank;
-- carol may read the two id columns of sec.secret, not the note
GRANT SELECT (user_id, item_id) ON sec.secret TO regress_carol;
-- results, per role, to compare across roles
CREATE TABLE sec.seen (who text, what text, result text);
GRANT SELECT, INSERT ON sec.seen TO PUBLIC;

-- ---------------------------------------------------------------------
-- Training needs SELECT on the source (and on the validation relation)
-- ---------------------------------------------------------------------
SET ROLE regress_alice;
SELECT count(*) FROM dsl.train('sec_am', 'sec.secret', dim => 4, epochs => 1);
SELECT count(*) FROM dsl.train('sec_am', 'sec.inter', validation => 'sec.secret', dim => 4, epochs => 1);
SELECT * FROM dsl.split('sec.secret');
SELECT count(*) FROM dsl.models WHERE name = 'sec_am';
RESET ROLE;
SET ROLE regress_carol;
-- column privileges are enough, and needed
SELECT count(*) FROM dsl.train('sec_cm', 'sec.secret', dim => 4, epochs => 1, seed => 1);
SELECT count(*) FROM dsl.split('sec.secret');
SELECT count(*) FROM dsl.train('sec_cm2', 'sec.secret', item_col => 'note', dim => 4, epochs => 1);
SELECT dsl.drop_model('sec_cm');
RESET ROLE;

-- ---------------------------------------------------------------------
-- Owners and readers
-- ---------------------------------------------------------------------
SET ROLE regress_alice;
SELECT count(*) FROM dsl.train('sec_am', 'sec.inter', dim => 4, epochs => 2, seed => 1);
SELECT name, owner, readers FROM dsl.models WHERE name LIKE 'sec\_%';
INSERT INTO sec.seen SELECT 'alice', 'recommend', string_agg(item_id || ':' || score, ',' ORDER BY rank)
FROM dsl.recommend('sec_am', 3, 5);
INSERT INTO sec.seen SELECT 'alice', 'evaluate', string_agg(metric || ':' || value, ',' ORDER BY metric)
FROM dsl.evaluate('sec_am', 'sec.test', k => 5);
INSERT INTO sec.seen SELECT 'alice', 'rows', count(*) FROM dsl.parameters;
RESET ROLE;

-- carol: the model is invisible, as if it did not exist
SET ROLE regress_carol;
SELECT count(*) FROM dsl.models;
SELECT count(*) FROM dsl.parameters;
SELECT count(*) FROM dsl.seen_items;
SELECT * FROM dsl.recommend('sec_am', 3, 5);
SELECT * FROM dsl.recommend_for_items('sec_am', ARRAY[1, 2], 5);
SELECT dsl.score('sec_am', 3, 1);
SELECT count(*) FROM dsl.recommend_all('sec_am');
SELECT count(*) FROM dsl.similar_items('sec_am', 1);
SELECT * FROM dsl.evaluate('sec_am', 'sec.test');
SELECT dsl.drop_model('sec_am');
SELECT dsl.grant_model('sec_am', 'regress_carol');
SELECT dsl.revoke_model('sec_am', 'regress_bob');
WITH x AS (UPDATE dsl.models SET readers = '{regress_carol}' RETURNING 1) SELECT count(*) AS updated FROM x;
WITH x AS (DELETE FROM dsl.models RETURNING 1) SELECT count(*) AS deleted FROM x;
WITH x AS (DELETE FROM dsl.parameters RETURNING 1) SELECT count(*) AS deleted FROM x;
-- the name is taken: a training of it fails at once (model names are unique
-- across owners; dsl.model_name_taken sees every row)
SELECT count(*) FROM dsl.train('sec_am', 'sec.inter', dim => 4, epochs => 1, replace => true);
RESET ROLE;

-- bob before being granted: same as carol
SET ROLE regress_bob;
SELECT * FROM dsl.recommend('sec_am', 3, 5);
RESET ROLE;

-- alice shares the model with bob
SET ROLE regress_alice;
SELECT dsl.grant_model('sec_am', 'regress_bob');
SELECT dsl.grant_model('sec_am', 'regress_bob');
SELECT name, owner, readers FROM dsl.models WHERE name LIKE 'sec\_%';
RESET ROLE;

-- bob reads: the same recommendations, metrics and rows as alice
SET ROLE regress_bob;
SELECT name, owner, readers FROM dsl.models;
INSERT INTO sec.seen SELECT 'bob', 'recommend', string_agg(item_id || ':' || score, ',' ORDER BY rank)
FROM dsl.recommend('sec_am', 3, 5);
INSERT INTO sec.seen SELECT 'bob', 'evaluate', string_agg(metric || ':' || value, ',' ORDER BY metric)
FROM dsl.evaluate('sec_am', 'sec.test', k => 5);
INSERT INTO sec.seen SELECT 'bob', 'rows', count(*) FROM dsl.parameters;
SELECT dsl.score('sec_am', 3, 1) IS NOT NULL AS scored,
       (SELECT count(*) FROM dsl.recommend_for_items('sec_am', ARRAY[1, 2], 3)) AS folded_in_rows,
       (SELECT count(*) FROM dsl.recommend_all('sec_am', 2)) AS all_rows,
       (SELECT count(*) FROM dsl.similar_items('sec_am', 1, 3)) AS similar_rows;
-- ... but does not write: dsl.train and dsl.drop_model look the model up
-- before locking it, so a reader gets the owner error at once.
SELECT count(*) FROM dsl.train('sec_am', 'sec.inter', dim => 4, epochs => 1, replace => true);
SELECT count(*) FROM dsl.train('sec_am', 'sec.inter', dim => 4, epochs => 1);
SELECT dsl.drop_model('sec_am');
SELECT dsl.grant_model('sec_am', 'regress_carol');
SELECT dsl.revoke_model('sec_am', 'regress_bob');
WITH x AS (UPDATE dsl.models SET readers = '{regress_carol}' RETURNING 1) SELECT count(*) AS updated FROM x;
WITH x AS (UPDATE dsl.models SET owner = 'regress_bob' RETURNING 1) SELECT count(*) AS stolen FROM x;
WITH x AS (DELETE FROM dsl.models RETURNING 1) SELECT count(*) AS deleted FROM x;
WITH x AS (UPDATE dsl.parameters SET vec = vec RETURNING 1) SELECT count(*) AS updated FROM x;
WITH x AS (DELETE FROM dsl.parameters RETURNING 1) SELECT count(*) AS deleted FROM x;
WITH x AS (DELETE FROM dsl.seen_items RETURNING 1) SELECT count(*) AS deleted FROM x;
-- readers cannot even lock the row
SELECT name FROM dsl.models FOR UPDATE;
SELECT name FROM dsl.models FOR KEY SHARE;
INSERT INTO dsl.parameters SELECT model_id, 'user', 12345, '{}/4' FROM dsl.models WHERE name = 'sec_am';
INSERT INTO dsl.seen_items SELECT model_id, 12345, '{1}' FROM dsl.models WHERE name = 'sec_am';
INSERT INTO dsl.models (name, model_type, owner, source, user_col, item_col, dim, density, hyperparams,
    n_users, n_items, n_interactions, active_params, total_params, epochs, train_seconds)
VALUES ('sec_fake', 'mf', 'regress_alice', 'x', 'u', 'i', 4, 1, '{}', 0, 0, 0, 0, 0, 1, 0);
-- not even for the rows of a model of their own
INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density, hyperparams,
    n_users, n_items, n_interactions, active_params, total_params, epochs, train_seconds)
VALUES ('sec_bm', 'mf', 'x', 'u', 'i', 4, 1, '{}', 0, 0, 0, 0, 0, 1, 0);
INSERT INTO dsl.parameters SELECT model_id, 'user', 1, '{}/4' FROM dsl.models WHERE name = 'sec_bm';
SELECT name, owner FROM dsl.models ORDER BY name;
SELECT dsl.drop_model('sec_bm');
-- what only the table owner may do
TRUNCATE dsl.models;
ALTER TABLE dsl.models DISABLE ROW LEVEL SECURITY;
DROP POLICY models_read ON dsl.models;
CREATE TRIGGER t BEFORE INSERT ON dsl.models FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
SELECT setval('dsl.models_model_id_seq', 1);
CREATE TABLE dsl.t (x int);
RESET ROLE;
SELECT who, what FROM sec.seen s1
WHERE who = 'bob' AND result IS DISTINCT FROM (SELECT result FROM sec.seen s2 WHERE s2.who = 'alice' AND s2.what = s1.what);
SELECT count(*) AS compared FROM sec.seen WHERE who = 'bob';

-- the serving cache keeps one entry per role
SET ROLE regress_alice;
SELECT count(*) FROM dsl.recommend('sec_am', 3, 5);
SET ROLE regress_bob;
SELECT count(*) FROM dsl.recommend('sec_am', 3, 5);
RESET ROLE;
SELECT name, role FROM dsl.serving_cache() WHERE name = 'sec_am' ORDER BY role::text;

-- dave, a member of alice, retrains the model: it stays alice's, still shared
SET ROLE regress_dave;
SELECT count(*) FROM dsl.train('sec_am', 'sec.inter', dim => 4, epochs => 2, seed => 2, replace => true);
SELECT name, owner, readers FROM dsl.models WHERE name LIKE 'sec\_%';
INSERT INTO sec.seen SELECT 'dave', 'recommend', string_agg(item_id || ':' || score, ',' ORDER BY rank)
FROM dsl.recommend('sec_am', 3, 5);
RESET ROLE;
-- bob's cached copy is replaced by the retrained model on his next call
SET ROLE regress_bob;
SELECT (SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank) FROM dsl.recommend('sec_am', 3, 5))
     = (SELECT result FROM sec.seen WHERE who = 'dave' AND what = 'recommend') AS same_as_dave,
       (SELECT result FROM sec.seen WHERE who = 'dave' AND what = 'recommend')
     = (SELECT result FROM sec.seen WHERE who = 'alice' AND what = 'recommend') AS same_as_before;
RESET ROLE;

-- sharing with a group role: its members read, until they leave the group
SET ROLE regress_alice;
SELECT dsl.grant_model('sec_am', 'regress_readers');
SET ROLE regress_frank;
SELECT count(*) FROM dsl.recommend('sec_am', 3, 5);
RESET ROLE;
REVOKE regress_readers FROM regress_frank;
SET ROLE regress_frank;
SELECT count(*) FROM dsl.recommend('sec_am', 3, 5);
RESET ROLE;

-- revoking bob: his next call no longer finds the model, cached or not
SET ROLE regress_bob;
SELECT count(*) FROM dsl.recommend('sec_am', 3, 5);
SET ROLE regress_alice;
SELECT dsl.revoke_model('sec_am', 'regress_bob');
SELECT dsl.revoke_model('sec_am', 'regress_bob');
SELECT name, owner, readers FROM dsl.models WHERE name LIKE 'sec\_%';
SET ROLE regress_bob;
SELECT count(*) FROM dsl.recommend('sec_am', 3, 5);
SELECT count(*) FROM dsl.parameters;
RESET ROLE;

-- a model owned by a group role: every member may retrain and drop it
SET ROLE regress_alice;
SET ROLE regress_team;
SELECT count(*) FROM dsl.train('sec_tm', 'sec.inter', dim => 4, epochs => 1, seed => 1);
RESET ROLE;
SET ROLE regress_erin;
SELECT name, owner FROM dsl.models ORDER BY name;
SELECT count(*) FROM dsl.train('sec_tm', 'sec.inter', dim => 4, epochs => 1, seed => 2, replace => true);
SELECT name, owner FROM dsl.models ORDER BY name;
SELECT dsl.drop_model('sec_tm');
RESET ROLE;

-- superusers see and may do everything
SELECT name, owner, readers FROM dsl.models WHERE name LIKE 'sec\_%' ORDER BY name;

-- dave drops alice's model
SET ROLE regress_dave;
SELECT dsl.drop_model('sec_am');
RESET ROLE;
SELECT count(*) FROM dsl.models WHERE name LIKE 'sec\_%';

-- ---------------------------------------------------------------------
-- search_path: objects planted by another role are never used
-- ---------------------------------------------------------------------
-- mallory plants, in schema public, operators, functions, aggregates,
-- domains and views named like what the extension uses, each logging its
-- use.  Victims (alice, then a superuser) put public first in their
-- search_path and call every function of the extension.
CREATE ROLE regress_mallory;
GRANT CREATE ON SCHEMA public TO regress_mallory;
SET ROLE regress_mallory;
CREATE TABLE public.hijack_log (what text, by_role name);
GRANT INSERT ON public.hijack_log TO PUBLIC;
CREATE FUNCTION public.hijacked(what text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO public.hijack_log VALUES (what, current_user);
    RETURN true;
END
$$;
DO $$
DECLARE
    op text;
    typ text;
BEGIN
    FOREACH typ IN ARRAY ARRAY['text', 'bigint', 'integer', 'smallint', 'oid', 'regrole', 'name',
                               'double precision', 'numeric', 'boolean', 'regclass'] LOOP
        FOREACH op IN ARRAY ARRAY['=', '<>', '<', '<=', '>', '>='] LOOP
            EXECUTE format('CREATE FUNCTION public.%I(%s, %s) RETURNS boolean LANGUAGE sql VOLATILE
                            AS $f$ SELECT public.hijacked(%L) AND $1 OPERATOR(pg_catalog.%s) $2 $f$',
                           'evil_op_' || md5(op || typ), typ, typ, typ || ' ' || op || ' ' || typ, op);
            EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.%I)',
                           op, typ, typ, 'evil_op_' || md5(op || typ));
        END LOOP;
    END LOOP;
END
$$;
CREATE FUNCTION public.hashtext(text) RETURNS integer LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('hashtext') THEN pg_catalog.hashtext($1) END $$;
CREATE FUNCTION public.pg_try_advisory_xact_lock(integer, integer) RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ SELECT public.hijacked('pg_try_advisory_xact_lock') $$;
CREATE FUNCTION public.pg_has_role(regrole, text) RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ SELECT public.hijacked('pg_has_role(regrole)') $$;
CREATE FUNCTION public.pg_has_role(oid, text) RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ SELECT public.hijacked('pg_has_role(oid)') $$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE sql VOLATILE
    AS $$ SELECT x FROM pg_catalog.unnest($1) x WHERE public.hijacked('unnest(bigint[])') $$;
CREATE FUNCTION public.unnest(regrole[]) RETURNS SETOF regrole LANGUAGE sql VOLATILE
    AS $$ SELECT x FROM pg_catalog.unnest($1) x WHERE public.hijacked('unnest(regrole[])') $$;
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE sql VOLATILE
    AS $$ SELECT x FROM pg_catalog.unnest($1) x WHERE public.hijacked('unnest(anyarray)') $$;
CREATE FUNCTION public.evil_count(bigint) RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('count(*)') THEN $1 OPERATOR(pg_catalog.+) 1 END $$;
CREATE AGGREGATE public.count(*) (SFUNC = public.evil_count, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION public.evil_agg(bigint[], bigint) RETURNS bigint[] LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('array_agg') THEN pg_catalog.array_append($1, $2) END $$;
CREATE AGGREGATE public.array_agg(bigint) (SFUNC = public.evil_agg, STYPE = bigint[]);
CREATE FUNCTION public.round(numeric) RETURNS numeric LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('round') THEN pg_catalog.round($1) END $$;
CREATE FUNCTION public.hashint8extended(bigint, bigint) RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('hashint8extended') THEN pg_catalog.hashint8extended($1, $2) END $$;
CREATE FUNCTION public.array_append(regrole[], regrole) RETURNS regrole[] LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('array_append') THEN pg_catalog.array_append($1, $2) END $$;
CREATE FUNCTION public.array_remove(regrole[], regrole) RETURNS regrole[] LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('array_remove') THEN pg_catalog.array_remove($1, $2) END $$;
CREATE FUNCTION public.format(text, text, text, regclass) RETURNS text LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('format') THEN pg_catalog.format($1, $2, $3, $4) END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('now') THEN pg_catalog.now() END $$;
CREATE FUNCTION public.int8(integer) RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN public.hijacked('int8(integer)') THEN $1::pg_catalog.int8 END $$;
CREATE DOMAIN public.int8 AS pg_catalog.int8 CHECK (public.hijacked('domain int8'));
CREATE DOMAIN public.int4 AS pg_catalog.int4 CHECK (public.hijacked('domain int4'));
CREATE DOMAIN public.text AS pg_catalog.text CHECK (public.hijacked('domain text'));
CREATE DOMAIN public.jsonb AS pg_catalog.jsonb CHECK (public.hijacked('domain jsonb'));
CREATE DOMAIN public.regrole AS pg_catalog.regrole CHECK (public.hijacked('domain regrole'));
CREATE DOMAIN public.regclass AS pg_catalog.regclass CHECK (public.hijacked('domain regclass'));
CREATE DOMAIN public.oid AS pg_catalog.oid CHECK (public.hijacked('domain oid'));
CREATE VIEW public.models AS SELECT * FROM dsl.models WHERE public.hijacked('view models');
CREATE VIEW public.parameters AS SELECT * FROM dsl.parameters WHERE public.hijacked('view parameters');
CREATE VIEW public.seen_items AS SELECT * FROM dsl.seen_items WHERE public.hijacked('view seen_items');
CREATE VIEW public.pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE public.hijacked('view pg_roles');
CREATE VIEW public.pg_class AS SELECT * FROM pg_catalog.pg_class WHERE public.hijacked('view pg_class');
CREATE VIEW public.pg_attribute AS SELECT attrelid, attname, atttypid, attnum, attisdropped
    FROM pg_catalog.pg_attribute WHERE public.hijacked('view pg_attribute');
-- and nothing in schema dsl
CREATE FUNCTION dsl.hashtext(text) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE TABLE dsl.models_x (x int);
RESET ROLE;

-- the traps work: unqualified names in the victim's own queries hit them
SET ROLE regress_alice;
SET search_path = public, pg_catalog;
SELECT 'a'::text = 'a', 1::bigint = 1::bigint, count(*) FROM pg_catalog.generate_series(1, 2);
RESET ROLE;
RESET search_path;
SELECT what, by_role FROM public.hijack_log ORDER BY what;
TRUNCATE public.hijack_log;

-- alice and a superuser call every function with public first in their path
CREATE FUNCTION pg_temp.victim_calls() RETURNS SETOF text
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $$
BEGIN
    PERFORM pg_catalog.count(*) FROM dsl.train('sec_vm', 'sec.inter', 'user_id', 'item_id',
        dim => 4, epochs => 2, seed => 1, validation => 'sec.test', replace => true);
    PERFORM pg_catalog.count(*) FROM dsl.train('sec_vm', 'sec.inter', dim => 4, epochs => 1,
        seed => 2, replace => true);
    PERFORM pg_catalog.count(*) FROM dsl.recommend('sec_vm', 3, 5);
    PERFORM pg_catalog.count(*) FROM dsl.recommend('sec_vm', 3, 5, false, ARRAY[1, 2, 3]::pg_catalog.int8[]);
    PERFORM pg_catalog.count(*) FROM dsl.recommend('sec_vm', 12345, 5);
    PERFORM pg_catalog.count(*) FROM dsl.recommend_for_items('sec_vm', ARRAY[1, 2]::pg_catalog.int8[], 5);
    PERFORM dsl.score('sec_vm', 3, 1);
    PERFORM pg_catalog.count(*) FROM dsl.recommend_all('sec_vm', 3);
    PERFORM pg_catalog.count(*) FROM dsl.similar_items('sec_vm', 1, 3);
    PERFORM pg_catalog.count(*) FROM dsl.similar_items('sec_vm', 1, 3, 'inner_product');
    PERFORM pg_catalog.count(*) FROM dsl.evaluate('sec_vm', 'sec.test', k => 5);
    PERFORM pg_catalog.count(*) FROM dsl.split('sec.inter', test_fraction => 0.25, seed => 3);
    PERFORM dsl.grant_model('sec_vm', 'regress_bob');
    PERFORM dsl.revoke_model('sec_vm', 'regress_bob');
    PERFORM pg_catalog.count(*) FROM dsl.serving_cache();
    PERFORM dsl.drop_model('sec_vm');
    PERFORM dsl.drop_model('sec_vm', true);
    RETURN NEXT 'done as ' || current_user;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.victim_calls() TO PUBLIC;
SET ROLE regress_alice;
SELECT pg_temp.victim_calls();
RESET ROLE;
SELECT dsl.serving_cache_reset() >= 0 AS reset;
SELECT pg_temp.victim_calls();
SELECT count(*) AS hijacked FROM public.hijack_log;
SELECT what, by_role FROM public.hijack_log ORDER BY what LIMIT 10;

-- ---------------------------------------------------------------------
-- dsl.enable_citus() (docs/scale-out.md): only for the extension's owner,
-- and only where Citus is installed (test/t/009_citus.pl runs it there)
-- ---------------------------------------------------------------------
SET ROLE regress_alice;
SELECT dsl.enable_citus();
RESET ROLE;
SELECT dsl.enable_citus();
-- dsl.member_of_any (the readers half of the dsl.models read policy) is
-- pg_has_role(..., 'MEMBER'): a superuser is a member of every role
CREATE ROLE regress_gone;
SELECT dsl.member_of_any(ARRAY['regress_gone'::regrole, 'regress_bob'::regrole]) AS superuser_member;
SET ROLE regress_carol;
SELECT dsl.member_of_any(ARRAY['regress_gone'::regrole]) AS carol_member,
       dsl.member_of_any(ARRAY['regress_carol'::regrole]) AS carol_self;
RESET ROLE;
DROP ROLE regress_gone;

-- ---------------------------------------------------------------------
-- Clean up
-- ---------------------------------------------------------------------
DELETE FROM dsl.models WHERE name LIKE 'sec\_%';
DROP SCHEMA sec CASCADE;
DROP OWNED BY regress_mallory;
REVOKE CREATE ON SCHEMA public FROM regress_mallory;
DROP ROLE regress_alice, regress_bob, regress_carol, regress_dave, regress_team, regress_erin,
    regress_readers, regress_frank, regress_mallory;
