-- dsl_rec 0.1.0 -> 0.2.0 (ALTER EXTENSION dsl_rec UPDATE TO '0.2.0')
--
-- Brings a 0.1.0 install to exactly what CREATE EXTENSION dsl_rec VERSION
-- '0.2.0' creates from src/sql/*.sql; test/t/006_extension_lifecycle.pl
-- compares the two.  Stored models (rows of dsl.models, dsl.parameters,
-- dsl.seen_items) are kept as they are.  Every change of src/sql/ between
-- the releases adds its statements here, one section each.

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dsl_rec UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------
-- The drop guard (src/sql/70_drop_guard.sql, src/drop_guard.c): a plain
-- DROP EXTENSION dsl_rec refuses while models are stored.
-- ---------------------------------------------------------------------

CREATE FUNCTION dsl.drop_guard()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'dsl_drop_guard'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION dsl.drop_guard() IS
    'event trigger: refuse DROP EXTENSION dsl_rec without CASCADE while dsl.models has rows';

CREATE EVENT TRIGGER dsl_rec_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP OWNED')
    EXECUTE FUNCTION dsl.drop_guard();

COMMENT ON EVENT TRIGGER dsl_rec_drop_guard IS
    'refuses DROP EXTENSION dsl_rec, and DROP OWNED BY its owner, without CASCADE while models are stored (dsl.drop_guard)';

-- ---------------------------------------------------------------------
-- Further 0.2.0 changes follow here, in the order they were made.
-- ---------------------------------------------------------------------

-- ---------------------------------------------------------------------
-- Continuations (src/warm_start.c, docs/lifecycle.md): dsl.train() gains
-- warm_start; model_type, dim, density and update_ratio default to NULL
-- (a fresh training's 'mf', 64, 0.5 and 0.5, or the stored model's);
-- dsl.models records what a continuation started from.
-- ---------------------------------------------------------------------

ALTER TABLE dsl.models
    ADD COLUMN continued_from bigint,
    ADD COLUMN new_interactions bigint;

DROP FUNCTION dsl.train(text, regclass, text, text, text, integer, double precision,
    integer, integer, double precision, double precision, double precision, integer, text,
    text, text, text, bigint, boolean, jsonb, regclass, integer, integer, integer);

CREATE FUNCTION dsl.train(
    model_name      text,
    source          regclass,
    user_col        text DEFAULT 'user_id',
    item_col        text DEFAULT 'item_id',
    model_type      text DEFAULT NULL,
    dim             integer DEFAULT NULL,
    density         double precision DEFAULT NULL,
    epochs          integer DEFAULT NULL,
    batch_size      integer DEFAULT NULL,
    lr              double precision DEFAULT NULL,
    reg             double precision DEFAULT NULL,
    update_ratio    double precision DEFAULT NULL,
    update_interval integer DEFAULT NULL,
    growth          text DEFAULT 'gradient',
    prune           text DEFAULT 'magnitude',
    schedule        text DEFAULT 'cosine',
    sparsity        text DEFAULT 'dynamic',
    seed            bigint DEFAULT 0,
    replace         boolean DEFAULT false,
    options         jsonb DEFAULT '{}',
    validation      regclass DEFAULT NULL,
    eval_every      integer DEFAULT NULL,
    patience        integer DEFAULT 0,
    k               integer DEFAULT 20,
    warm_start      text DEFAULT NULL)
RETURNS SETOF dsl.train_epoch
AS 'MODULE_PATHNAME', 'dsl_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dsl.train(text, regclass, text, text, text, integer, double precision,
    integer, integer, double precision, double precision, double precision, integer, text,
    text, text, text, bigint, boolean, jsonb, regclass, integer, integer, integer, text)
IS 'train a DSL-sparse recommender on (user, item) pairs of a relation and store it as rows of dsl.models/dsl.parameters/dsl.seen_items; one row per epoch';

-- ---------------------------------------------------------------------
-- Recommendations for an ad-hoc history (src/recommend.c, src/fold_in.c,
-- docs/serving.md): dsl.recommend_for_items.
-- ---------------------------------------------------------------------

CREATE FUNCTION dsl.recommend_for_items(
    model           text,
    items           bigint[],
    k               integer DEFAULT 10,
    exclude_seen    boolean DEFAULT true,
    candidates      bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank integer, cold_start boolean)
AS 'MODULE_PATHNAME', 'dsl_recommend_for_items'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 1000 ROWS 10;

COMMENT ON FUNCTION dsl.recommend_for_items(text, bigint[], integer, boolean, bigint[]) IS
    'top k items for an ad-hoc history of item ids (a new user, a session, a what-if), best first (ties: lower item id): embedding models fold the history in (the user row that best explains it against the fixed item rows), MultVAE encodes it; the history''s items are excluded unless exclude_seen is false, unknown ids are ignored (a NOTICE counts them), a history with no known item gets the most popular items with cold_start = true';

-- ---------------------------------------------------------------------
-- One copy per server of served models (src/serve_shared.c,
-- docs/serving.md): dsl.serving_cache() says which entries are shared.
-- ---------------------------------------------------------------------

DROP FUNCTION dsl.serving_cache();

CREATE FUNCTION dsl.serving_cache()
RETURNS TABLE (name text, model_id bigint, role regrole, n_users integer,
               n_items integer, dim integer, hits bigint, bytes bigint,
               shared boolean)
AS 'MODULE_PATHNAME', 'dsl_serving_cache'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dsl.serving_cache() IS
    'models this backend serves from its cache, most recently used first, with how often each was reused, its memory and whether that is the server''s shared copy (dsl_rec in shared_preload_libraries) or this backend''s own';

CREATE FUNCTION dsl.serving_shared()
RETURNS TABLE (model_id bigint, bytes bigint)
AS 'MODULE_PATHNAME', 'dsl_serving_shared'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dsl.serving_shared() IS
    'the server''s shared copies of served models (dsl_rec in shared_preload_libraries), most recently used first: model_id and bytes; for pg_monitor, since it lists models the caller may not see';
REVOKE ALL ON FUNCTION dsl.serving_shared() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dsl.serving_shared() TO pg_monitor;

-- ---------------------------------------------------------------------
-- Evaluation (src/evaluate.c, docs/evaluation.md): dsl.evaluate returns a
-- ninth row, recall_truncated; dsl.evaluate_histories evaluates users given
-- by their histories.
-- ---------------------------------------------------------------------

ALTER FUNCTION dsl.evaluate(text, regclass, text, text, integer) ROWS 9;
COMMENT ON FUNCTION dsl.evaluate(text, regclass, text, text, integer) IS
    'full-ranking evaluation on the (user, item) test pairs of a relation, training items excluded: recall, ndcg, precision, hit_rate, mrr, recall_truncated at k, users_evaluated, users_unknown, item_coverage';

CREATE FUNCTION dsl.evaluate_histories(
    model           text,
    history_source  regclass,
    test_source     regclass,
    user_col        text DEFAULT 'user_id',
    item_col        text DEFAULT 'item_id',
    k               integer DEFAULT 20)
RETURNS TABLE (metric text, value double precision)
AS 'MODULE_PATHNAME', 'dsl_evaluate_histories'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 9;

COMMENT ON FUNCTION dsl.evaluate_histories(text, regclass, regclass, text, text, integer) IS
    'full-ranking evaluation of users given by a history (strong generalization): each test_source user''s pairs in history_source are folded in as by dsl.recommend_for_items, the history excluded, and the rest compared with its test pairs: the metrics of dsl.evaluate, with users_without_history in place of users_unknown';

-- ---------------------------------------------------------------------
-- Row-level security without subqueries (src/model_access.c,
-- docs/security.md): Citus makes a table with a subquery in a policy
-- neither a reference table nor anything else, and the model tables are
-- reference tables on a Citus cluster (docs/scale-out.md).  Same rules as
-- 0.1.0's policies.
-- ---------------------------------------------------------------------

CREATE FUNCTION dsl.member_of_any(roles regrole[]) RETURNS boolean
AS 'MODULE_PATHNAME', 'dsl_member_of_any'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.member_of_any(regrole[]) IS
    'whether the current role is a member of any of these roles (row-level security of dsl.models)';
CREATE FUNCTION dsl.model_visible(model_id bigint, owned boolean) RETURNS boolean
AS 'MODULE_PATHNAME', 'dsl_model_visible'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.model_visible(bigint, boolean) IS
    'whether the current role sees (owned: is a member of the owner of) this model (row-level security of dsl.parameters and dsl.seen_items)';

ALTER POLICY models_read ON dsl.models
    USING (pg_catalog.pg_has_role(owner, 'MEMBER') OR dsl.member_of_any(readers));
ALTER POLICY parameters_read ON dsl.parameters
    USING (dsl.model_visible(model_id, false));
ALTER POLICY parameters_insert ON dsl.parameters
    WITH CHECK (dsl.model_visible(model_id, true));
ALTER POLICY parameters_update ON dsl.parameters
    USING (dsl.model_visible(model_id, true))
    WITH CHECK (dsl.model_visible(model_id, true));
ALTER POLICY parameters_delete ON dsl.parameters
    USING (dsl.model_visible(model_id, true));
ALTER POLICY seen_items_read ON dsl.seen_items
    USING (dsl.model_visible(model_id, false));
ALTER POLICY seen_items_insert ON dsl.seen_items
    WITH CHECK (dsl.model_visible(model_id, true));
ALTER POLICY seen_items_update ON dsl.seen_items
    USING (dsl.model_visible(model_id, true))
    WITH CHECK (dsl.model_visible(model_id, true));
ALTER POLICY seen_items_delete ON dsl.seen_items
    USING (dsl.model_visible(model_id, true));

-- ---------------------------------------------------------------------
-- Citus (docs/scale-out.md): the model tables become reference tables, a
-- full copy on every node that Citus writes with two-phase commit, so that
-- a query Citus pushes down to the workers serves there from the local
-- copy, and a retrain or replace becomes visible on every node with the
-- coordinator's commit.  Run on the coordinator, after citus_add_node for
-- the workers.  Citus copies reference tables to a node added later with a
-- binary copy, in which the regrole columns owner and readers are the
-- coordinator's role OIDs, not the node's: run it again then (after
-- replicate_reference_tables, before the node gets shards), and it sends
-- every model's owner and readers again as role names, which each node
-- resolves to its own OIDs.
--
-- Citus makes the shell of an extension's table on a worker by creating
-- the extension there, so it does not create one; but adding a foreign key
-- between reference tables is sent to the workers as ALTER TABLE, and the
-- workers' tables already hold the extension's foreign keys.  So the
-- function drops those first on the workers (while the tables are still
-- plain local tables there; run_command_on_workers commits on each worker
-- on its own, which is harmless: running this again finds them gone), then
-- on the coordinator, makes the three tables reference tables, and adds
-- the two keys back through Citus, which puts them on every copy.
CREATE FUNCTION dsl.enable_citus()
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
    done integer;
    r record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in database "%"', current_database()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'CREATE EXTENSION citus on every node, and citus_add_node the workers, first.';
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'dsl.enable_citus() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT count(*) INTO done FROM pg_dist_partition
     WHERE logicalrelid OPERATOR(pg_catalog.=) ANY (ARRAY['dsl.models'::regclass,
           'dsl.parameters'::regclass, 'dsl.seen_items'::regclass]);
    IF done = 3 THEN
        -- a node added since has copies made by Citus' shard copy, which
        -- carries owner and readers as the coordinator's role OIDs
        FOR r IN SELECT m.model_id, m.owner::text AS o, m.readers::text AS rd FROM dsl.models m LOOP
            EXECUTE format('UPDATE dsl.models SET owner = %L::regrole, readers = %L::regrole[] '
                           'WHERE model_id OPERATOR(pg_catalog.=) %s', r.o, r.rd, r.model_id);
            done := done + 1;
        END LOOP;
        RAISE NOTICE 'the model tables are reference tables already; the owner and readers of % model(s) were sent again, by name, to every node',
            done - 3;
        RETURN;
    END IF;
    FOR r IN SELECT * FROM run_command_on_workers('SELECT count(*) FROM dsl.models') LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'could not reach worker %:%: %', r.nodename, r.nodeport, r.result
                USING ERRCODE = 'connection_failure',
                      HINT = 'dsl_rec must be installed on every worker (CREATE EXTENSION on the coordinator after citus_add_node does that).';
        END IF;
        IF r.result::bigint OPERATOR(pg_catalog.>) 0 THEN
            RAISE EXCEPTION 'worker %:% holds % model(s) of its own', r.nodename, r.nodeport, r.result
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'The coordinator''s models would replace them on every node.',
                      HINT = 'Drop them on the worker (dsl.drop_model), or move them to the coordinator, first.';
        END IF;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['parameters', 'seen_items'] LOOP
        FOR r IN SELECT * FROM run_command_on_workers(format(
                'ALTER TABLE dsl.%I DROP CONSTRAINT IF EXISTS %I', t, t || '_model_id_fkey')) LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'could not prepare dsl.% on worker %:%: %', t, r.nodename, r.nodeport, r.result
                    USING ERRCODE = 'connection_failure';
            END IF;
        END LOOP;
        EXECUTE format('ALTER TABLE dsl.%I DROP CONSTRAINT %I', t, t || '_model_id_fkey');
    END LOOP;
    PERFORM create_reference_table('dsl.models');
    PERFORM create_reference_table('dsl.parameters');
    PERFORM create_reference_table('dsl.seen_items');
    FOREACH t IN ARRAY ARRAY['parameters', 'seen_items'] LOOP
        EXECUTE format('ALTER TABLE dsl.%I ADD CONSTRAINT %I FOREIGN KEY (model_id) '
                       'REFERENCES dsl.models ON DELETE CASCADE', t, t || '_model_id_fkey');
    END LOOP;
END
$$;
COMMENT ON FUNCTION dsl.enable_citus() IS
    'on a Citus coordinator: make the model tables reference tables, so that every node serves every model (docs/scale-out.md)';
REVOKE ALL ON FUNCTION dsl.enable_citus() FROM PUBLIC;
