-- Serving and evaluation: top-k recommendations, scores, similar items and
-- full-ranking evaluation (the train/test split is in 35_split.sql).
--
-- The C functions read dsl.models, dsl.parameters and dsl.seen_items through
-- a per-backend cache (a model is loaded once, then reused while its
-- dsl.models row is unchanged), so they are STABLE.  They are PARALLEL
-- RESTRICTED: a parallel worker would have to load the whole model again
-- for every query (its cache starts empty), and dsl.evaluate may read a
-- temporary table, which workers cannot.

CREATE FUNCTION dsl.recommend(
    model           text,
    user_id         bigint,
    k               integer DEFAULT 10,
    exclude_seen    boolean DEFAULT true,
    candidates      bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank integer, cold_start boolean)
AS 'MODULE_PATHNAME', 'dsl_recommend'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 1000 ROWS 10;

COMMENT ON FUNCTION dsl.recommend(text, bigint, integer, boolean, bigint[]) IS
    'top k items for a user by inner product, best first (ties: lower item id), excluding the user''s training items unless exclude_seen is false and keeping only candidates when given; a user the model does not know gets the most popular training items with cold_start = true and a NULL score';

CREATE FUNCTION dsl.score(model text, user_id bigint, item_id bigint)
RETURNS real
AS 'MODULE_PATHNAME', 'dsl_score'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100;

COMMENT ON FUNCTION dsl.score(text, bigint, bigint) IS
    'the score dsl.recommend ranks by: inner product of the user and item embeddings; NULL if the model does not know the user or the item';

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

CREATE FUNCTION dsl.recommend_all(
    model           text,
    k               integer DEFAULT 20,
    exclude_seen    boolean DEFAULT true)
RETURNS TABLE (user_id bigint, item_id bigint, score real, rank integer)
AS 'MODULE_PATHNAME', 'dsl_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 100000;

COMMENT ON FUNCTION dsl.recommend_all(text, integer, boolean) IS
    'top k items of every user of a model (rank 1 = best), columns in dsl.recommend''s order (item_id, score, rank), computed in blocks with BLAS within work_mem';

CREATE FUNCTION dsl.similar_items(
    model           text,
    item            bigint,
    k               integer DEFAULT 10,
    measure         text DEFAULT 'cosine')
RETURNS TABLE (item_id bigint, score real, rank integer)
AS 'MODULE_PATHNAME', 'dsl_similar_items'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 1000 ROWS 10;

COMMENT ON FUNCTION dsl.similar_items(text, bigint, integer, text) IS
    'k items most similar to an item by cosine of the item embeddings (measure => ''inner_product'' for the raw inner product), excluding the item itself; no rows for an unknown item';

CREATE FUNCTION dsl.evaluate(
    model           text,
    test_source     regclass,
    user_col        text DEFAULT 'user_id',
    item_col        text DEFAULT 'item_id',
    k               integer DEFAULT 20)
RETURNS TABLE (metric text, value double precision)
AS 'MODULE_PATHNAME', 'dsl_evaluate'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 9;

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

-- The per-backend serving cache (its entries may map the shared copies).
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

CREATE FUNCTION dsl.serving_cache_reset()
RETURNS integer
AS 'MODULE_PATHNAME', 'dsl_serving_cache_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dsl.serving_cache_reset() IS
    'empty this backend''s serving cache; returns the number of models dropped';
