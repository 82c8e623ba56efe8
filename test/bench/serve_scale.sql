-- test/bench/serve_scale.sql - one synthetic model of the bench's "serving vs
-- catalogue size and density" block: :n_items items and 1000 users, dim 64,
-- each item entry stored with probability :fill (the rest zero), values
-- uniform in [-0.5, 0.5), user rows dense; two training items per user.
-- Seeded, so every run serves the same model.  The rows are then written out
-- (CHECKPOINT: writing them is the insert's cost, not the load's), and the
-- first call (load and share), a second connection's first call (the shared
-- copy mapped), and dsl.recommend_all for the 1,000 users, and the sizes
-- (the vectors', and the rows' as stored, headers and keys included), into
-- :outdir/<model>_load.csv.
-- Variables: outdir model n_items fill seed
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SELECT setseed(:seed);
DELETE FROM dsl.models WHERE name = :'model';
WITH m AS (
    INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim, density,
                            hyperparams, n_users, n_items, n_interactions, active_params,
                            total_params, epochs, train_seconds)
    VALUES (:'model', 'mf', 'synthetic', 'user_id', 'item_id', 64, :fill, '{}', 1000,
            :n_items, 2000, 0, 0, 0, 0)
    RETURNING model_id)
SELECT model_id AS mid FROM m \gset
INSERT INTO dsl.parameters
SELECT :mid, 'user', u, (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, 64) WHERE u > 0)::dsl.spvec
  FROM generate_series(1, 1000) u;
INSERT INTO dsl.parameters
SELECT :mid, 'item', i, (SELECT array_agg(CASE WHEN random() < :fill THEN (random() - 0.5)::real ELSE 0 END)
                           FROM generate_series(1, 64) WHERE i > 0)::dsl.spvec
  FROM generate_series(1, :n_items) i;
INSERT INTO dsl.seen_items SELECT :mid, u, ARRAY[u, u + 1]::bigint[] FROM generate_series(1, 1000) u;
ANALYZE dsl.parameters;
CHECKPOINT;

-- the first call loads (and shares, with the preload); a new connection maps
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM dsl.recommend(:'model', 1, 20) \gset
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS load_seconds \gset
SELECT shared AS shared_copy, bytes AS served_bytes FROM dsl.serving_cache() WHERE name = :'model' \gset
\connect
SET client_min_messages = warning;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM dsl.recommend(:'model', 2, 20) \gset
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS second_seconds \gset
-- every user's top 20 (the model is mapped by now), best of two calls
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS all_rows FROM dsl.recommend_all(:'model', 20) \gset
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS all_seconds \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS all_rows FROM dsl.recommend_all(:'model', 20) \gset
SELECT least(:all_seconds, extract(epoch FROM clock_timestamp()) - :t0) AS all_seconds \gset
\set f :outdir '/' :model '_load.csv'
\o :f
SELECT :'model' AS model, :n_items AS n_items, :fill AS fill, :load_seconds AS load_seconds,
       :second_seconds AS second_connection_seconds, :all_seconds AS recommend_all_seconds,
       :all_rows AS recommend_all_rows, :'shared_copy' AS shared, :served_bytes AS served_bytes,
       (SELECT sum(pg_column_size(p.vec)) FROM dsl.parameters p WHERE p.model_id = :mid) AS stored_bytes,
       (SELECT sum(pg_column_size(p.*)) FROM dsl.parameters p WHERE p.model_id = :mid) AS stored_row_bytes,
       (SELECT sum(dsl.nnz(p.vec)) FROM dsl.parameters p
         WHERE p.model_id = :mid AND p.part = 'item') AS stored_item_entries,
       (SELECT model_id FROM dsl.models WHERE name = :'model') AS model_id;
\o
