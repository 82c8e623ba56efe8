-- Serving and evaluation: top-k recommendations, scores, similar items,
-- full-ranking evaluation and a reproducible train/test split.
--
-- The C functions read dsl.models, dsl.parameters and dsl.seen_items through
-- a per-backend cache (a model is loaded once, then reused while its
-- dsl.models row is unchanged), so they are STABLE.  They are PARALLEL
-- RESTRICTED: a parallel worker would have to load the whole model again
-- for every query (its cache starts empty), and dsl.evaluate/dsl.split may
-- read a temporary table, which workers cannot.

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

CREATE FUNCTION dsl.recommend_all(
    model           text,
    k               integer DEFAULT 20,
    exclude_seen    boolean DEFAULT true)
RETURNS TABLE (user_id bigint, item_id bigint, rank integer, score real)
AS 'MODULE_PATHNAME', 'dsl_recommend_all'
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 100000;

COMMENT ON FUNCTION dsl.recommend_all(text, integer, boolean) IS
    'top k items of every user of a model (rank 1 = best), computed in blocks with BLAS within work_mem';

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
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 8;

COMMENT ON FUNCTION dsl.evaluate(text, regclass, text, text, integer) IS
    'full-ranking evaluation on the (user, item) test pairs of a relation, training items excluded: recall, ndcg, precision, hit_rate, mrr at k, users_evaluated, users_unknown, item_coverage';

-- A reproducible per-user split.  Each distinct (user, item) pair gets the
-- hash hashint8extended(item, hashint8extended(user, seed)); within each user
-- the round(test_fraction * n) pairs with the smallest hashes (ties: lower
-- item) are test pairs, halves rounded up.
CREATE FUNCTION dsl.split(
    source          regclass,
    user_col        text DEFAULT 'user_id',
    item_col        text DEFAULT 'item_id',
    test_fraction   double precision DEFAULT 0.2,
    seed            bigint DEFAULT 0)
RETURNS TABLE (user_id bigint, item_id bigint, is_test boolean)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel     name := (SELECT c.relname FROM pg_class c WHERE c.oid = source);
    col     text;
    typ     oid;
BEGIN
    IF source IS NULL OR user_col IS NULL OR item_col IS NULL
       OR test_fraction IS NULL OR seed IS NULL THEN
        RAISE EXCEPTION '% must not be null',
            CASE WHEN source IS NULL THEN 'source' WHEN user_col IS NULL THEN 'user_col'
                 WHEN item_col IS NULL THEN 'item_col' WHEN test_fraction IS NULL THEN 'test_fraction'
                 ELSE 'seed' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF rel IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', source::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    IF NOT (test_fraction >= 0 AND test_fraction <= 1) THEN
        RAISE EXCEPTION 'test_fraction must be between 0 and 1, not %', test_fraction
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH col IN ARRAY ARRAY[user_col, item_col] LOOP
        SELECT a.atttypid INTO typ
          FROM pg_attribute a
         WHERE a.attrelid = source AND a.attname = col
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, rel
                USING ERRCODE = 'undefined_column';
        END IF;
        IF typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
            RAISE EXCEPTION 'column "%" of relation "%" is of type %, not an integer type',
                col, rel, typ::regtype
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    END LOOP;

    RETURN QUERY EXECUTE format(
        'SELECT s.u, s.i, s.rn <= round(s.n * $1::numeric)
           FROM (SELECT d.u, d.i,
                        row_number() OVER (PARTITION BY d.u
                                           ORDER BY hashint8extended(d.i, hashint8extended(d.u, $2)), d.i) AS rn,
                        count(*) OVER (PARTITION BY d.u) AS n
                   FROM (SELECT DISTINCT %1$I::bigint AS u, %2$I::bigint AS i
                           FROM %3$s
                          WHERE %1$I IS NOT NULL AND %2$I IS NOT NULL) d) s
          ORDER BY s.u, s.i',
        user_col, item_col, source)
    USING test_fraction, seed;
END
$$;

COMMENT ON FUNCTION dsl.split(regclass, text, text, double precision, bigint) IS
    'reproducible per-user random train/test split of the distinct (user, item) pairs of a relation: round(test_fraction * n) test pairs per user, chosen by a seeded hash';

-- The per-backend serving cache.
CREATE FUNCTION dsl.serving_cache()
RETURNS TABLE (name text, model_id bigint, role regrole, n_users integer,
               n_items integer, dim integer, hits bigint, bytes bigint)
AS 'MODULE_PATHNAME', 'dsl_serving_cache'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dsl.serving_cache() IS
    'models this backend holds in its serving cache, most recently used first, with how often each was reused and its memory';

CREATE FUNCTION dsl.serving_cache_reset()
RETURNS integer
AS 'MODULE_PATHNAME', 'dsl_serving_cache_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dsl.serving_cache_reset() IS
    'empty this backend''s serving cache; returns the number of models dropped';
