-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION dsl_rec" to load this file. \quit

-- Everything lives in schema dsl (created by the control file).

-- ---------------------------------------------------------------------
-- dsl.spvec: sparse float4 vector, text format '{1:0.5,3:-2}/64'
-- ---------------------------------------------------------------------

CREATE TYPE dsl.spvec;

CREATE FUNCTION dsl.spvec_in(cstring, oid, integer) RETURNS dsl.spvec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION dsl.spvec_out(dsl.spvec) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION dsl.spvec_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION dsl.spvec_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION dsl.spvec_recv(internal, oid, integer) RETURNS dsl.spvec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION dsl.spvec_send(dsl.spvec) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE dsl.spvec (
	INPUT = dsl.spvec_in,
	OUTPUT = dsl.spvec_out,
	TYPMOD_IN = dsl.spvec_typmod_in,
	TYPMOD_OUT = dsl.spvec_typmod_out,
	RECEIVE = dsl.spvec_recv,
	SEND = dsl.spvec_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = int4,
	STORAGE = extended
);

COMMENT ON TYPE dsl.spvec IS
	'sparse vector of real values, text format ''{index:value,...}/dim'' with 1-based indices';

COMMENT ON FUNCTION dsl.spvec_in(cstring, oid, integer) IS 'spvec text input';
COMMENT ON FUNCTION dsl.spvec_out(dsl.spvec) IS 'spvec text output';
COMMENT ON FUNCTION dsl.spvec_typmod_in(cstring[]) IS 'spvec(n) type modifier input';
COMMENT ON FUNCTION dsl.spvec_typmod_out(integer) IS 'spvec(n) type modifier output';
COMMENT ON FUNCTION dsl.spvec_recv(internal, oid, integer) IS 'spvec binary input';
COMMENT ON FUNCTION dsl.spvec_send(dsl.spvec) IS 'spvec binary output';

-- length coercion: spvec -> spvec(n)
CREATE FUNCTION dsl.spvec(dsl.spvec, integer, boolean) RETURNS dsl.spvec
	AS 'MODULE_PATHNAME', 'spvec_coerce' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec(dsl.spvec, integer, boolean) IS
	'checks that an spvec has the dimension of spvec(n)';

CREATE CAST (dsl.spvec AS dsl.spvec)
	WITH FUNCTION dsl.spvec(dsl.spvec, integer, boolean) AS IMPLICIT;

-- casts to and from real[]
CREATE FUNCTION dsl.spvec_from_real_array(real[], integer, boolean) RETURNS dsl.spvec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_from_real_array(real[], integer, boolean) IS
	'cast real[] to spvec: the array length is the dimension, zeros are dropped';

CREATE FUNCTION dsl.spvec_to_real_array(dsl.spvec, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_to_real_array(dsl.spvec, integer, boolean) IS
	'cast spvec to real[]: the dense values';

CREATE CAST (real[] AS dsl.spvec)
	WITH FUNCTION dsl.spvec_from_real_array(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (dsl.spvec AS real[])
	WITH FUNCTION dsl.spvec_to_real_array(dsl.spvec, integer, boolean);

-- constructor from parallel arrays, same rules as the text input
CREATE FUNCTION dsl.spvec_from_arrays(indices integer[], vals real[], dim integer)
	RETURNS dsl.spvec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_from_arrays(integer[], real[], integer) IS
	'builds an spvec from 1-based indices (any order, no duplicates), their values and the dimension';

-- accessors and distances
CREATE FUNCTION dsl.dims(dsl.spvec) RETURNS integer
	AS 'MODULE_PATHNAME', 'spvec_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.dims(dsl.spvec) IS 'number of dimensions';

CREATE FUNCTION dsl.nnz(dsl.spvec) RETURNS integer
	AS 'MODULE_PATHNAME', 'spvec_nnz_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.nnz(dsl.spvec) IS 'number of non-zero entries';

CREATE FUNCTION dsl.inner_product(dsl.spvec, dsl.spvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'spvec_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.inner_product(dsl.spvec, dsl.spvec) IS 'inner product';

CREATE FUNCTION dsl.negative_inner_product(dsl.spvec, dsl.spvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'spvec_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.negative_inner_product(dsl.spvec, dsl.spvec) IS
	'negative inner product (operator <#>; ascending order puts the largest inner product first)';

CREATE FUNCTION dsl.l2_norm(dsl.spvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'spvec_l2_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.l2_norm(dsl.spvec) IS 'Euclidean norm';

CREATE FUNCTION dsl.l2_distance(dsl.spvec, dsl.spvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'spvec_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.l2_distance(dsl.spvec, dsl.spvec) IS 'Euclidean distance (operator <->)';

CREATE FUNCTION dsl.cosine_distance(dsl.spvec, dsl.spvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'spvec_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.cosine_distance(dsl.spvec, dsl.spvec) IS
	'cosine distance 1 - cos(a, b) (operator <=>); NaN if either vector is all zeros';

CREATE OPERATOR dsl.<#> (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.negative_inner_product,
	COMMUTATOR = OPERATOR(dsl.<#>)
);
COMMENT ON OPERATOR dsl.<#> (dsl.spvec, dsl.spvec) IS 'negative inner product';

CREATE OPERATOR dsl.<=> (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.cosine_distance,
	COMMUTATOR = OPERATOR(dsl.<=>)
);
COMMENT ON OPERATOR dsl.<=> (dsl.spvec, dsl.spvec) IS 'cosine distance';

CREATE OPERATOR dsl.<-> (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.l2_distance,
	COMMUTATOR = OPERATOR(dsl.<->)
);
COMMENT ON OPERATOR dsl.<-> (dsl.spvec, dsl.spvec) IS 'Euclidean distance';

-- equality (same dimension and entries), ordering and hashing
CREATE FUNCTION dsl.spvec_eq(dsl.spvec, dsl.spvec) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_eq(dsl.spvec, dsl.spvec) IS 'same dimension and same entries';

CREATE FUNCTION dsl.spvec_ne(dsl.spvec, dsl.spvec) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_ne(dsl.spvec, dsl.spvec) IS 'different dimension or entries';

CREATE FUNCTION dsl.spvec_hash(dsl.spvec) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_hash(dsl.spvec) IS 'hash of an spvec';

CREATE FUNCTION dsl.spvec_hash_extended(dsl.spvec, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_hash_extended(dsl.spvec, bigint) IS 'seeded 64-bit hash of an spvec';

CREATE OPERATOR dsl.= (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.spvec_eq,
	COMMUTATOR = OPERATOR(dsl.=), NEGATOR = OPERATOR(dsl.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel,
	HASHES, MERGES
);
COMMENT ON OPERATOR dsl.= (dsl.spvec, dsl.spvec) IS 'equal';

CREATE OPERATOR dsl.<> (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.spvec_ne,
	COMMUTATOR = OPERATOR(dsl.<>), NEGATOR = OPERATOR(dsl.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR dsl.<> (dsl.spvec, dsl.spvec) IS 'not equal';

CREATE OPERATOR CLASS dsl.spvec_hash_ops
	DEFAULT FOR TYPE dsl.spvec USING hash AS
	OPERATOR 1 dsl.= (dsl.spvec, dsl.spvec),
	FUNCTION 1 dsl.spvec_hash(dsl.spvec),
	FUNCTION 2 dsl.spvec_hash_extended(dsl.spvec, bigint);

-- A total order (by dimension, then dense values position by position) so
-- that DISTINCT, UNION, ORDER BY v and unique indexes work.  It says nothing
-- about distances.
CREATE FUNCTION dsl.spvec_cmp(dsl.spvec, dsl.spvec) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_cmp(dsl.spvec, dsl.spvec) IS
	'btree order of spvec: by dimension, then by dense values position by position';

CREATE FUNCTION dsl.spvec_lt(dsl.spvec, dsl.spvec) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_lt(dsl.spvec, dsl.spvec) IS 'less than in the btree order';

CREATE FUNCTION dsl.spvec_le(dsl.spvec, dsl.spvec) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_le(dsl.spvec, dsl.spvec) IS 'less than or equal in the btree order';

CREATE FUNCTION dsl.spvec_ge(dsl.spvec, dsl.spvec) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_ge(dsl.spvec, dsl.spvec) IS 'greater than or equal in the btree order';

CREATE FUNCTION dsl.spvec_gt(dsl.spvec, dsl.spvec) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.spvec_gt(dsl.spvec, dsl.spvec) IS 'greater than in the btree order';

CREATE OPERATOR dsl.< (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.spvec_lt,
	COMMUTATOR = OPERATOR(dsl.>), NEGATOR = OPERATOR(dsl.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
COMMENT ON OPERATOR dsl.< (dsl.spvec, dsl.spvec) IS 'less than';

CREATE OPERATOR dsl.<= (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.spvec_le,
	COMMUTATOR = OPERATOR(dsl.>=), NEGATOR = OPERATOR(dsl.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
COMMENT ON OPERATOR dsl.<= (dsl.spvec, dsl.spvec) IS 'less than or equal';

CREATE OPERATOR dsl.>= (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.spvec_ge,
	COMMUTATOR = OPERATOR(dsl.<=), NEGATOR = OPERATOR(dsl.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
COMMENT ON OPERATOR dsl.>= (dsl.spvec, dsl.spvec) IS 'greater than or equal';

CREATE OPERATOR dsl.> (
	LEFTARG = dsl.spvec, RIGHTARG = dsl.spvec,
	FUNCTION = dsl.spvec_gt,
	COMMUTATOR = OPERATOR(dsl.<), NEGATOR = OPERATOR(dsl.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
COMMENT ON OPERATOR dsl.> (dsl.spvec, dsl.spvec) IS 'greater than';

CREATE OPERATOR CLASS dsl.spvec_btree_ops
	DEFAULT FOR TYPE dsl.spvec USING btree AS
	OPERATOR 1 dsl.< (dsl.spvec, dsl.spvec),
	OPERATOR 2 dsl.<= (dsl.spvec, dsl.spvec),
	OPERATOR 3 dsl.= (dsl.spvec, dsl.spvec),
	OPERATOR 4 dsl.>= (dsl.spvec, dsl.spvec),
	OPERATOR 5 dsl.> (dsl.spvec, dsl.spvec),
	FUNCTION 1 dsl.spvec_cmp(dsl.spvec, dsl.spvec);
-- Trained models are ordinary table rows: transactional, dumped, replicated.

CREATE SEQUENCE dsl.models_model_id_seq;

-- The model types this version can train and serve (one list, in C).  It is
-- IMMUTABLE for a given library version; a version that adds a type adds it
-- here too, and none removes one.
CREATE FUNCTION dsl.model_types() RETURNS text[]
AS 'MODULE_PATHNAME', 'dsl_model_types'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dsl.model_types() IS 'the model types dsl.train() knows';

-- One row per model.  A retrain with replace => true deletes the old row (and,
-- by cascade, its parameters) and inserts a new one with a new model_id, all in
-- the caller's transaction; serving caches key on model_id.
CREATE TABLE dsl.models (
    model_id        bigint PRIMARY KEY DEFAULT nextval('dsl.models_model_id_seq'),
    name            text NOT NULL UNIQUE CHECK (name <> ''),
    model_type      text NOT NULL CHECK (model_type = ANY (dsl.model_types())),
    owner           regrole NOT NULL DEFAULT current_user::regrole,
    source          text NOT NULL,
    user_col        text NOT NULL,
    item_col        text NOT NULL,
    dim             integer NOT NULL CHECK (dim > 0),
    density         double precision NOT NULL CHECK (density > 0 AND density <= 1),
    hyperparams     jsonb NOT NULL,
    n_users         integer NOT NULL,
    n_items         integer NOT NULL,
    n_interactions  bigint NOT NULL,
    active_params   bigint NOT NULL,
    total_params    bigint NOT NULL,
    epochs          integer NOT NULL,
    best_epoch      integer,
    final_loss      double precision,
    trained_at      timestamptz NOT NULL DEFAULT now(),
    train_seconds   double precision NOT NULL,
    readers         regrole[] NOT NULL DEFAULT '{}',
    -- peak bytes the training held (its memory context at its high points)
    train_peak_bytes bigint
);
ALTER SEQUENCE dsl.models_model_id_seq OWNED BY dsl.models.model_id;

-- Model parameters, one spvec per (model, part, entity).  Parts 'user' and
-- 'item' always hold the serving embeddings: score(u, i) = inner_product of
-- the 'user' row of u and the 'item' row of i, so
--   ORDER BY i.vec <#> u.vec LIMIT k
-- over these rows ranks exactly as dsl.recommend does.  Models with more
-- parameters (LightGCN layer-0 embeddings, NeuMF/MultVAE weight rows) store
-- them under further part names.
CREATE TABLE dsl.parameters (
    model_id    bigint NOT NULL REFERENCES dsl.models ON DELETE CASCADE,
    part        text NOT NULL,
    entity_id   bigint NOT NULL,
    vec         dsl.spvec NOT NULL,
    PRIMARY KEY (model_id, part, entity_id)
);

-- The training interactions of each user (item ids ascending), used to exclude
-- already-seen items and to rank the popularity fallback.
CREATE TABLE dsl.seen_items (
    model_id    bigint NOT NULL REFERENCES dsl.models ON DELETE CASCADE,
    user_id     bigint NOT NULL,
    items       bigint[] NOT NULL,
    PRIMARY KEY (model_id, user_id)
);

-- Access control (docs/security.md).  Every role may use the tables, and
-- row-level security decides, per model, what it sees and changes:
--   * a dsl.models row is visible to members of its owner and to members of
--     any role in its readers array (dsl.grant_model / dsl.revoke_model);
--   * only members of the owner may insert, change or delete it;
--   * a dsl.parameters or dsl.seen_items row is visible iff its model row is,
--     and may be written only by members of its model's owner.
-- The UPDATE policies check the owner both before (USING: which rows may be
-- changed, or locked with SELECT ... FOR UPDATE) and after the change (WITH
-- CHECK): a model can be handed over only to a role its owner is a member of.
-- FORCE makes the policies apply to the tables' owner too; superusers and
-- BYPASSRLS roles are not subject to them (and foreign-key cascades never
-- are).
-- Policy expressions are bound to objects when the extension is created, so
-- the caller's search_path cannot redirect them.
GRANT USAGE ON SCHEMA dsl TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON dsl.models, dsl.parameters, dsl.seen_items TO PUBLIC;
GRANT USAGE ON SEQUENCE dsl.models_model_id_seq TO PUBLIC;

ALTER TABLE dsl.models ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsl.models FORCE ROW LEVEL SECURITY;
ALTER TABLE dsl.parameters ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsl.parameters FORCE ROW LEVEL SECURITY;
ALTER TABLE dsl.seen_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsl.seen_items FORCE ROW LEVEL SECURITY;

CREATE POLICY models_read ON dsl.models FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'MEMBER')
           OR EXISTS (SELECT FROM pg_catalog.unnest(readers) AS r(role)
                      WHERE pg_catalog.pg_has_role(r.role, 'MEMBER')));
CREATE POLICY models_insert ON dsl.models FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY models_update ON dsl.models FOR UPDATE
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY models_delete ON dsl.models FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'));

-- The USING clauses compare model_id with an array of the visible (or owned)
-- model ids, computed once per query by an initPlan (the models policies
-- filter that subquery).  Being a leakproof "= ANY (array)", the planner uses
-- it as an index condition next to the caller's "model_id = $1": loading a
-- model's parameter rows costs the same as without RLS (docs/security.md).
-- WITH CHECK clauses, evaluated per inserted row, use a hashed subplan, whose
-- cost does not grow with the number of models.
CREATE POLICY parameters_read ON dsl.parameters FOR SELECT
    USING (model_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.model_id FROM dsl.models m)));
CREATE POLICY parameters_insert ON dsl.parameters FOR INSERT
    WITH CHECK (model_id OPERATOR(pg_catalog.=) ANY (
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER')));
CREATE POLICY parameters_update ON dsl.parameters FOR UPDATE
    USING (model_id OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER'))))
    WITH CHECK (model_id OPERATOR(pg_catalog.=) ANY (
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER')));
CREATE POLICY parameters_delete ON dsl.parameters FOR DELETE
    USING (model_id OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER'))));
CREATE POLICY seen_items_read ON dsl.seen_items FOR SELECT
    USING (model_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.model_id FROM dsl.models m)));
CREATE POLICY seen_items_insert ON dsl.seen_items FOR INSERT
    WITH CHECK (model_id OPERATOR(pg_catalog.=) ANY (
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER')));
CREATE POLICY seen_items_update ON dsl.seen_items FOR UPDATE
    USING (model_id OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER'))))
    WITH CHECK (model_id OPERATOR(pg_catalog.=) ANY (
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER')));
CREATE POLICY seen_items_delete ON dsl.seen_items FOR DELETE
    USING (model_id OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT m.model_id FROM dsl.models m WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER'))));

SELECT pg_catalog.pg_extension_config_dump('dsl.models', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.parameters', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.seen_items', '');

COMMENT ON TABLE dsl.models IS 'one row per trained dsl_rec model';
COMMENT ON TABLE dsl.parameters IS 'model parameters as spvec rows keyed by (model_id, part, entity_id)';
COMMENT ON COLUMN dsl.models.owner IS 'role whose members may retrain, replace, drop and share the model';
COMMENT ON COLUMN dsl.models.readers IS 'roles whose members may read (serve, evaluate) the model; see dsl.grant_model';
COMMENT ON TABLE dsl.seen_items IS 'training items per user of each model (excluded from recommendations)';
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
LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 8;

COMMENT ON FUNCTION dsl.evaluate(text, regclass, text, text, integer) IS
    'full-ranking evaluation on the (user, item) test pairs of a relation, training items excluded: recall, ndcg, precision, hit_rate, mrr at k, users_evaluated, users_unknown, item_coverage';

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
    epochs          integer DEFAULT NULL,
    batch_size      integer DEFAULT NULL,
    lr              double precision DEFAULT NULL,
    reg             double precision DEFAULT NULL,
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
    eval_every      integer DEFAULT NULL,
    patience        integer DEFAULT 0,
    k               integer DEFAULT 20)
RETURNS SETOF dsl.train_epoch
AS 'MODULE_PATHNAME', 'dsl_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dsl.train(text, regclass, text, text, text, integer, double precision,
    integer, integer, double precision, double precision, double precision, integer, text,
    text, text, text, bigint, boolean, jsonb, regclass, integer, integer, integer)
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
