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
