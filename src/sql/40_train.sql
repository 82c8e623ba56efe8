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

-- Whether a model name is in use, also by a model the caller cannot see
-- (row-level security hides other owners' models, but names are unique
-- across all of them).  SECURITY DEFINER to see every row; it reveals only
-- that a name is taken, and pins its search_path.
CREATE FUNCTION dsl.model_name_taken(model_name text)
RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM dsl.models m WHERE m.name OPERATOR(pg_catalog.=) model_name)
$$;
COMMENT ON FUNCTION dsl.model_name_taken(text) IS
    'true if a model of this name exists, whoever owns it (model names are unique across owners)';

-- The dsl.models row of a model, locked FOR UPDATE, once the caller is known
-- to be a member of its owning role; NULL when there is no such model (that
-- the caller can see).  Readers see a row but row-level security does not
-- let them lock it, so the row is looked up and checked first, then locked
-- and checked again.  purpose completes "must be owner of model ... to".
CREATE FUNCTION dsl.lock_owned_model(model_name text, purpose text)
RETURNS dsl.models
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m dsl.models;
BEGIN
    FOR i IN 1..2 LOOP
        IF i = 1 THEN
            SELECT * INTO m FROM dsl.models d WHERE d.name OPERATOR(pg_catalog.=) model_name;
        ELSE
            SELECT * INTO m FROM dsl.models d WHERE d.name OPERATOR(pg_catalog.=) model_name
               FOR UPDATE;
        END IF;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF NOT pg_has_role(m.owner, 'MEMBER') THEN
            RAISE EXCEPTION 'must be owner of model "%" to %', model_name, purpose
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    RETURN m;
END
$$;
COMMENT ON FUNCTION dsl.lock_owned_model(text, text) IS
    'internal: the models row of a model the caller owns, locked; NULL if there is none';

-- Drop a model (its parameters and seen items go by cascade).  Only members of
-- the owning role may drop it.
CREATE FUNCTION dsl.drop_model(model_name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m dsl.models;
BEGIN
    IF model_name IS NULL OR if_exists IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN model_name IS NULL THEN 'model_name' ELSE 'if_exists' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    m := dsl.lock_owned_model(model_name, 'drop it');
    IF m.model_id IS NULL THEN
        IF if_exists THEN
            RAISE NOTICE 'model "%" does not exist, skipping', model_name;
            RETURN false;
        END IF;
        RAISE EXCEPTION 'model "%" does not exist', model_name
            USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM dsl.models d WHERE d.model_id OPERATOR(pg_catalog.=) m.model_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION dsl.drop_model(text, boolean) IS 'drop a trained model and all its rows';

-- Share a model for reading (serving, evaluation, its rows) with the members
-- of a role, or stop sharing it.  Only members of the owning role may do
-- either; row-level security on dsl.models enforces the same rule for direct
-- UPDATEs of dsl.models.readers.  The grant survives retrains with
-- replace => true and goes away with the model.
CREATE FUNCTION dsl.grant_model(model_name text, reader regrole)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m dsl.models;
BEGIN
    IF model_name IS NULL OR reader IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN model_name IS NULL THEN 'model_name' ELSE 'reader' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) reader) THEN
        RAISE EXCEPTION 'role with OID % does not exist', reader::oid
            USING ERRCODE = 'undefined_object';
    END IF;
    m := dsl.lock_owned_model(model_name, 'share it');
    IF m.model_id IS NULL THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name
            USING ERRCODE = 'undefined_object';
    END IF;
    IF reader OPERATOR(pg_catalog.=) ANY (m.readers) THEN
        RAISE NOTICE 'role % can already read model "%"', reader, model_name;
        RETURN false;
    END IF;
    UPDATE dsl.models d SET readers = array_append(d.readers, reader)
     WHERE d.model_id OPERATOR(pg_catalog.=) m.model_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION dsl.grant_model(text, regrole) IS
    'let members of a role read a model (serve, evaluate, select its rows); owner members only; false if they already could';

CREATE FUNCTION dsl.revoke_model(model_name text, reader regrole)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m dsl.models;
BEGIN
    IF model_name IS NULL OR reader IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN model_name IS NULL THEN 'model_name' ELSE 'reader' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    m := dsl.lock_owned_model(model_name, 'stop sharing it');
    IF m.model_id IS NULL THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT (reader OPERATOR(pg_catalog.=) ANY (m.readers)) THEN
        RAISE NOTICE 'model "%" is not shared with role %', model_name, reader;
        RETURN false;
    END IF;
    UPDATE dsl.models d SET readers = array_remove(d.readers, reader)
     WHERE d.model_id OPERATOR(pg_catalog.=) m.model_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION dsl.revoke_model(text, regrole) IS
    'stop sharing a model with a role (see dsl.grant_model); owner members only; false if it was not shared with that role';
