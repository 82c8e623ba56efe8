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
    train_peak_bytes bigint,
    -- a continuation (dsl.train(warm_start => ...)): the model_id it started
    -- from (usually the version it replaced, so no foreign key) and the
    -- pairs of its source that model had not trained on; NULL otherwise
    continued_from  bigint,
    new_interactions bigint
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

-- The policies hold no subqueries (Citus refuses those on the reference
-- tables these become on a cluster, docs/scale-out.md): two C functions
-- (src/model_access.c) answer "is the caller a member of one of these
-- roles" and "does the caller see (or own) this model".  The second reads
-- the visible model ids once per statement and searches them per row, so a
-- policy costs the same with one model or thousands, whatever the plan.
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

CREATE POLICY models_read ON dsl.models FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'MEMBER') OR dsl.member_of_any(readers));
CREATE POLICY models_insert ON dsl.models FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY models_update ON dsl.models FOR UPDATE
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY models_delete ON dsl.models FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY parameters_read ON dsl.parameters FOR SELECT
    USING (dsl.model_visible(model_id, false));
CREATE POLICY parameters_insert ON dsl.parameters FOR INSERT
    WITH CHECK (dsl.model_visible(model_id, true));
CREATE POLICY parameters_update ON dsl.parameters FOR UPDATE
    USING (dsl.model_visible(model_id, true))
    WITH CHECK (dsl.model_visible(model_id, true));
CREATE POLICY parameters_delete ON dsl.parameters FOR DELETE
    USING (dsl.model_visible(model_id, true));
CREATE POLICY seen_items_read ON dsl.seen_items FOR SELECT
    USING (dsl.model_visible(model_id, false));
CREATE POLICY seen_items_insert ON dsl.seen_items FOR INSERT
    WITH CHECK (dsl.model_visible(model_id, true));
CREATE POLICY seen_items_update ON dsl.seen_items FOR UPDATE
    USING (dsl.model_visible(model_id, true))
    WITH CHECK (dsl.model_visible(model_id, true));
CREATE POLICY seen_items_delete ON dsl.seen_items FOR DELETE
    USING (dsl.model_visible(model_id, true));

SELECT pg_catalog.pg_extension_config_dump('dsl.models', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.parameters', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.seen_items', '');

COMMENT ON TABLE dsl.models IS 'one row per trained dsl_rec model';
COMMENT ON TABLE dsl.parameters IS 'model parameters as spvec rows keyed by (model_id, part, entity_id)';
COMMENT ON COLUMN dsl.models.owner IS 'role whose members may retrain, replace, drop and share the model';
COMMENT ON COLUMN dsl.models.readers IS 'roles whose members may read (serve, evaluate) the model; see dsl.grant_model';
COMMENT ON TABLE dsl.seen_items IS 'training items per user of each model (excluded from recommendations)';
