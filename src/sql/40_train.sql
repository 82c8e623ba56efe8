-- Training: dsl.train() returns one row of this type per epoch.
CREATE TYPE dsl.train_epoch AS (
    epoch           integer,
    loss            double precision,
    active_params   bigint,
    total_params    bigint,
    update_ratio    double precision,
    pruned          bigint,
    regrown         bigint,
    seconds         double precision,
    recall          double precision,
    ndcg            double precision
);
COMMENT ON TYPE dsl.train_epoch IS 'one epoch of a dsl.train() run';

CREATE FUNCTION dsl.train(
    model_name      text,
    source          regclass,
    user_col        text DEFAULT 'user_id',
    item_col        text DEFAULT 'item_id',
    model_type      text DEFAULT 'mf',
    dim             integer DEFAULT 64,
    density         double precision DEFAULT 0.5,
    epochs          integer DEFAULT 20,
    batch_size      integer DEFAULT 2048,
    lr              double precision DEFAULT 0.001,
    reg             double precision DEFAULT 0.0001,
    update_ratio    double precision DEFAULT 0.5,
    update_interval integer DEFAULT NULL,
    growth          text DEFAULT 'gradient',
    prune           text DEFAULT 'magnitude',
    schedule        text DEFAULT 'cosine',
    sparsity        text DEFAULT 'dynamic',
    seed            bigint DEFAULT 0,
    replace         boolean DEFAULT false,
    options         jsonb DEFAULT '{}',
    validation      regclass DEFAULT NULL,
    eval_every      integer DEFAULT 1,
    patience        integer DEFAULT 0,
    k               integer DEFAULT 20)
RETURNS SETOF dsl.train_epoch
AS 'MODULE_PATHNAME', 'dsl_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dsl.train(text, regclass, text, text, text, integer, double precision,
    integer, integer, double precision, double precision, double precision, integer, text,
    text, text, text, bigint, boolean, jsonb, regclass, integer, integer, integer)
IS 'train a DSL-sparse recommender on (user, item) pairs of a relation and store it as rows of dsl.models/dsl.parameters/dsl.seen_items; one row per epoch';

-- Drop a model (its parameters and seen items go by cascade).  Only members of
-- the owning role may drop it.
CREATE FUNCTION dsl.drop_model(model_name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record;
BEGIN
    IF model_name IS NULL OR if_exists IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN model_name IS NULL THEN 'model_name' ELSE 'if_exists' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT model_id, owner INTO m FROM dsl.models WHERE name = model_name FOR UPDATE;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'model "%" does not exist, skipping', model_name;
            RETURN false;
        END IF;
        RAISE EXCEPTION 'model "%" does not exist', model_name
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role(m.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'must be owner of model "%" to drop it', model_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM dsl.models WHERE model_id = m.model_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION dsl.drop_model(text, boolean) IS 'drop a trained model and all its rows';
