-- A reproducible per-user train/test split, and the id-column check it shares
-- with dsl.train and dsl.evaluate.

-- The checks dsl.train and dsl.evaluate make on (source, user_col, item_col),
-- in C (interactions.c), so that a bad column gets the same message and
-- SQLSTATE from every function that takes one.
CREATE FUNCTION dsl.check_id_columns(source regclass, user_col text, item_col text)
RETURNS void
AS 'MODULE_PATHNAME', 'dsl_check_id_columns'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION dsl.check_id_columns(regclass, text, text) IS
    'internal: error unless source can be read and user_col and item_col name integer columns of it';

-- Each distinct (user, item) pair gets the hash
-- hashint8extended(item, hashint8extended(user, seed)); within each user the
-- round(test_fraction * n) pairs with the smallest hashes (ties: lower item)
-- are test pairs, halves rounded up.  PARALLEL RESTRICTED: the source may be
-- a temporary table, which parallel workers cannot read.
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
BEGIN
    IF source IS NULL OR user_col IS NULL OR item_col IS NULL
       OR test_fraction IS NULL OR seed IS NULL THEN
        RAISE EXCEPTION '% must not be null',
            CASE WHEN source IS NULL THEN 'source' WHEN user_col IS NULL THEN 'user_col'
                 WHEN item_col IS NULL THEN 'item_col' WHEN test_fraction IS NULL THEN 'test_fraction'
                 ELSE 'seed' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM dsl.check_id_columns(source, user_col, item_col);
    IF NOT (test_fraction >= 0 AND test_fraction <= 1) THEN
        RAISE EXCEPTION 'test_fraction must be between 0 and 1, not %', test_fraction
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

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
