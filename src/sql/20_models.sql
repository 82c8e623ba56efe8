-- Trained models are ordinary table rows: transactional, dumped, replicated.

CREATE SEQUENCE dsl.models_model_id_seq;

-- One row per model.  A retrain with replace => true deletes the old row (and,
-- by cascade, its parameters) and inserts a new one with a new model_id, all in
-- the caller's transaction; serving caches key on model_id.
CREATE TABLE dsl.models (
    model_id        bigint PRIMARY KEY DEFAULT nextval('dsl.models_model_id_seq'),
    name            text NOT NULL UNIQUE CHECK (name <> ''),
    model_type      text NOT NULL CHECK (model_type IN ('mf', 'lightgcn', 'neumf', 'multvae')),
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
    train_seconds   double precision NOT NULL
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

SELECT pg_catalog.pg_extension_config_dump('dsl.models', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.parameters', '');
SELECT pg_catalog.pg_extension_config_dump('dsl.seen_items', '');

COMMENT ON TABLE dsl.models IS 'one row per trained dsl_rec model';
COMMENT ON TABLE dsl.parameters IS 'model parameters as spvec rows keyed by (model_id, part, entity_id)';
COMMENT ON TABLE dsl.seen_items IS 'training items per user of each model (excluded from recommendations)';
