-- Serving a NeuMF model (src/scorer_neumf.c): its score is not an inner
-- product of stored rows, so it has a scorer of its own.  The models here
-- are built by hand, part by part, as training stores them (known weights,
-- some entries not stored as DSL leaves them), with one to four hidden
-- layers: dsl.score must be the NeuMF forward pass computed here in SQL
-- from the stored parts, dsl.recommend must rank by dsl.score (equal scores
-- by lower item id), dsl.recommend_all and dsl.evaluate must agree with
-- them, a history is folded in, item-item similarity is refused, and a part
-- that does not fit the others is ERRCODE_DATA_CORRUPTED naming it.

\set VERBOSITY terse

-- A deterministic value in [-1, 1) for (seed, a, b, c): a hash in bigint
-- arithmetic (squared modulo a prime, so that rows are no progressions),
-- then an exact decimal: the same reals on every platform.
CREATE FUNCTION nm_val(seed int, a bigint, b bigint, c bigint) RETURNS real
LANGUAGE sql IMMUTABLE AS $$
    SELECT (((h * h + 12345) % 999983) / 999983.0 * 2 - 1)::real
    FROM (SELECT (((seed * 1000003 + a * 7919 + b * 104729 + c * 15485863) % 999983)
                  * 2654435761) % 999983 AS h) x
$$;
-- row r of tensor t, width w: those values times scale, about one in five
-- left out (not stored, as DSL leaves them)
CREATE FUNCTION nm_row(seed int, t int, r bigint, w int, scale real DEFAULT 1)
RETURNS dsl.spvec LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(CASE WHEN nm_val(seed + 1, t, r, c) < -0.6 THEN 0
                          ELSE nm_val(seed, t, r, c) * scale END ORDER BY c)::real[]::dsl.spvec
    FROM generate_series(1, w) c
$$;

-- A NeuMF model with users 10, 20, ..., items 1000, 1007, ..., GMF width
-- g, MLP embeddings of width dm and hidden layers of the given widths.
-- Items j and j + dup have the same rows: equal scores, ties.  A user's
-- training items (dsl.seen_items) are about a fifth of the catalogue.
CREATE FUNCTION nm_build(model text, n_users int, n_items int, g int, dm int,
                         widths int[], dup int, seed int)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    mid bigint;
    nh int := cardinality(widths);
BEGIN
    INSERT INTO dsl.models (name, model_type, source, user_col, item_col, dim,
                            density, hyperparams, n_users, n_items, n_interactions,
                            active_params, total_params, epochs, train_seconds)
    VALUES (model, 'neumf', 'fixture', 'user_id', 'item_id', g, 0.8,
            jsonb_build_object('mlp_layers', array[2 * dm] || widths),
            n_users, n_items, 0, 0, 0, 0, 0)
    RETURNING model_id INTO mid;
    INSERT INTO dsl.parameters
    SELECT mid, 'user', 10 * u, nm_row(seed, 1, u, g) FROM generate_series(1, n_users) u
    UNION ALL
    SELECT mid, 'mlp_user', 10 * u, nm_row(seed, 2, u, dm) FROM generate_series(1, n_users) u
    UNION ALL
    SELECT mid, 'item', 1000 + 7 * j, nm_row(seed, 3, j % dup, g)
    FROM generate_series(0, n_items - 1) j
    UNION ALL
    SELECT mid, 'mlp_item', 1000 + 7 * j, nm_row(seed, 4, j % dup, dm)
    FROM generate_series(0, n_items - 1) j
    UNION ALL
    SELECT mid, 'mlp_w1_user', k, nm_row(seed, 5, k, widths[1]) FROM generate_series(0, dm - 1) k
    UNION ALL
    SELECT mid, 'mlp_w1_item', k, nm_row(seed, 6, k, widths[1]) FROM generate_series(0, dm - 1) k
    UNION ALL
    SELECT mid, 'mlp_b1', 0, nm_row(seed, 7, 0, widths[1])
    UNION ALL
    SELECT mid, 'mlp_w' || l, k, nm_row(seed, 10 + l, k, widths[l])
    FROM generate_series(2, nh) l, generate_series(0, widths[l - 1] - 1) k
    UNION ALL
    SELECT mid, 'mlp_b' || l, 0, nm_row(seed, 20 + l, 0, widths[l]) FROM generate_series(2, nh) l
    UNION ALL
    SELECT mid, 'out', 0, nm_row(seed, 8, 0, widths[nh])
    UNION ALL
    SELECT mid, 'out_bias', 0, ARRAY[0.25]::real[]::dsl.spvec;
    INSERT INTO dsl.seen_items
    SELECT mid, 10 * u, array_agg(1000 + 7 * j ORDER BY j)
    FROM generate_series(1, n_users) u, generate_series(0, n_items - 1) j
    WHERE nm_val(seed + 2, u, j, 0) > 0.6
    GROUP BY u;
    RETURN mid;
END
$$;

-- The score from the stored parts, layer by layer in double precision:
-- p_u . q_i + h . x_L + b (GMF's output weights are 1), x_1 = relu(W1u^T p'_u + W1i^T q'_i + b_1),
-- x_l = relu(W_l^T x_(l-1) + b_l)
CREATE FUNCTION nm_vec(mid bigint, part text, e bigint) RETURNS real[]
LANGUAGE sql STABLE AS $$
    SELECT vec::real[] FROM dsl.parameters
    WHERE model_id = mid AND parameters.part = nm_vec.part AND entity_id = e
$$;
CREATE FUNCTION nm_ref(model text, u bigint, i bigint) RETURNS float8
LANGUAGE plpgsql STABLE AS $$
DECLARE
    mid bigint := (SELECT model_id FROM dsl.models WHERE name = model);
    p real[] := nm_vec(mid, 'user', u);
    q real[] := nm_vec(mid, 'item', i);
    pm real[] := nm_vec(mid, 'mlp_user', u);
    qm real[] := nm_vec(mid, 'mlp_item', i);
    h real[] := nm_vec(mid, 'out', 0);
    g int := cardinality(p);
    s float8 := 0;
    x float8[];
    y float8[];
    w real[];
    wi real[];
    l int := 2;
BEGIN
    FOR k IN 1 .. g LOOP
        s := s + p[k]::float8 * q[k];
    END LOOP;
    x := nm_vec(mid, 'mlp_b1', 0)::float8[];
    FOR k IN 1 .. cardinality(pm) LOOP
        w := nm_vec(mid, 'mlp_w1_user', k - 1);
        wi := nm_vec(mid, 'mlp_w1_item', k - 1);
        FOR o IN 1 .. cardinality(x) LOOP
            x[o] := x[o] + pm[k]::float8 * w[o] + qm[k]::float8 * wi[o];
        END LOOP;
    END LOOP;
    LOOP
        FOR o IN 1 .. cardinality(x) LOOP
            x[o] := greatest(x[o], 0);
        END LOOP;
        y := nm_vec(mid, 'mlp_b' || l, 0)::float8[];
        EXIT WHEN y IS NULL;
        FOR k IN 1 .. cardinality(x) LOOP
            w := nm_vec(mid, 'mlp_w' || l, k - 1);
            FOR o IN 1 .. cardinality(y) LOOP
                y[o] := y[o] + x[k] * w[o];
            END LOOP;
        END LOOP;
        x := y;
        l := l + 1;
    END LOOP;
    FOR k IN 1 .. cardinality(x) LOOP
        s := s + h[k]::float8 * x[k];
    END LOOP;
    RETURN s + (nm_vec(mid, 'out_bias', 0))[1];
END
$$;

-- one to four hidden layers; nm_b has more users than a round of
-- dsl.recommend_all and more items than a chunk, nm_big enough items for
-- dsl.recommend to share them between threads
SELECT nm_build('nm_a', 6, 40, 4, 3, ARRAY[5, 3], 30, 1) > 0 AS a,
       nm_build('nm_c', 5, 30, 3, 2, ARRAY[6], 30, 3) > 0 AS c,
       nm_build('nm_d', 5, 30, 5, 6, ARRAY[9, 7, 5, 3], 25, 4) > 0 AS d,
       nm_build('nm_b', 150, 1500, 8, 4, ARRAY[8, 6, 4], 1200, 2) > 0 AS b,
       nm_build('nm_big', 12, 9000, 3, 2, ARRAY[4, 3], 4500, 5) > 0 AS big;
CREATE VIEW nm_models AS
SELECT model_id, name FROM dsl.models WHERE name LIKE 'nm\_%';
-- the parts as training stores them (nm_d), some entries not stored
SELECT part, count(*) AS rows, min(dsl.dims(vec)) AS width, max(dsl.dims(vec)) AS max_width,
       sum(dsl.nnz(vec)) < count(*) * min(dsl.dims(vec)) AS sparse
FROM dsl.parameters JOIN nm_models USING (model_id)
WHERE name = 'nm_d' GROUP BY part ORDER BY part;

-- dsl.score is the forward pass over the stored parts: every pair of the
-- small models, a sample of the others
SELECT m.name, count(*) AS pairs,
       count(*) FILTER (WHERE abs(dsl.score(m.name, u.entity_id, i.entity_id)
                                  - nm_ref(m.name, u.entity_id, i.entity_id))
                              > 1e-5 * (1 + abs(nm_ref(m.name, u.entity_id, i.entity_id)))) AS off
FROM nm_models m
JOIN dsl.parameters u ON u.model_id = m.model_id AND u.part = 'user'
JOIN dsl.parameters i ON i.model_id = m.model_id AND i.part = 'item'
WHERE m.name IN ('nm_a', 'nm_c', 'nm_d')
   OR (u.entity_id % 370 = 10 AND i.entity_id % 259 = 1000 % 259)
GROUP BY m.name ORDER BY m.name;
-- unknown users and items, NULLs
SELECT dsl.score('nm_a', 15, 1000) AS unknown_user, dsl.score('nm_a', 10, 1001) AS unknown_item,
       dsl.score('nm_a', NULL, 1000) AS null_user;
-- equal rows, equal scores
SELECT dsl.score('nm_a', 20, 1000) = dsl.score('nm_a', 20, 1000 + 7 * 30) AS tie;

-- dsl.recommend ranks by dsl.score: its top k is every unseen item ordered
-- by dsl.score, equal scores by lower item id (with and without the
-- training items, for the small models' users and a sample of nm_b's; for
-- nm_big, whose catalogue the threads share, with a large k)
CREATE TABLE nm_expect AS
SELECT m.name, u.entity_id AS user_id, k, excl,
       (SELECT array_agg(item_id ORDER BY s DESC, item_id) FROM (
            SELECT i.entity_id AS item_id, dsl.score(m.name, u.entity_id, i.entity_id) AS s
            FROM dsl.parameters i
            WHERE i.model_id = m.model_id AND i.part = 'item'
              AND NOT (excl AND i.entity_id = ANY (
                  SELECT unnest(items) FROM dsl.seen_items s
                  WHERE s.model_id = m.model_id AND s.user_id = u.entity_id))
            ORDER BY s DESC, item_id LIMIT k) x) AS top
FROM nm_models m
JOIN dsl.parameters u ON u.model_id = m.model_id AND u.part = 'user'
CROSS JOIN (VALUES (true), (false)) e(excl)
CROSS JOIN LATERAL (SELECT CASE m.name WHEN 'nm_big' THEN 300 ELSE 7 END) kk(k)
WHERE m.name IN ('nm_a', 'nm_c', 'nm_d')
   OR (m.name = 'nm_b' AND u.entity_id % 170 = 10)
   OR (m.name = 'nm_big' AND u.entity_id IN (10, 70));
SELECT name, excl, count(*) AS users,
       count(*) FILTER (WHERE top = (SELECT array_agg(item_id ORDER BY rank)
                                     FROM dsl.recommend(name, user_id, k, excl))) AS same,
       count(*) FILTER (WHERE cardinality(top) = k) AS full_lists
FROM nm_expect GROUP BY name, excl ORDER BY name, excl;
-- one thread, the same lists
SET dsl_rec.threads = 1;
SELECT name, count(*) FILTER (WHERE top = (SELECT array_agg(item_id ORDER BY rank)
                                           FROM dsl.recommend(name, user_id, k, excl))) AS same
FROM nm_expect WHERE name = 'nm_big' GROUP BY name;
RESET dsl_rec.threads;
-- the scores are dsl.score's; a user the model does not know gets the
-- popular items
SELECT count(*) AS rows,
       count(*) FILTER (WHERE r.score IS DISTINCT FROM dsl.score('nm_b', 10, r.item_id)) AS score_differs
FROM dsl.recommend('nm_b', 10, 50) r;
SELECT item_id, score, rank, cold_start FROM dsl.recommend('nm_a', 15, 3);
-- a candidate list is scored by the same score
SELECT count(*) AS rows,
       count(*) FILTER (WHERE r.score IS DISTINCT FROM dsl.score('nm_a', 30, r.item_id)) AS score_differs,
       array_agg(r.item_id ORDER BY r.rank) =
       (SELECT array_agg(c ORDER BY dsl.score('nm_a', 30, c) DESC, c)
        FROM unnest(ARRAY[1000, 1007, 1014, 1210, 1217]::bigint[]) c) AS ranked
FROM dsl.recommend('nm_a', 30, 10, false, ARRAY[1000, 1007, 1014, 1210, 1217, 5]) r;

-- dsl.recommend_all gives every user's dsl.recommend list, scores
-- included: in rounds of users (nm_b), with a small work_mem (fewer
-- users a round), with k beyond the catalogue
CREATE FUNCTION nm_all_differs(model text, k int, excl boolean) RETURNS bigint
LANGUAGE sql AS $$
    WITH a AS (SELECT user_id, item_id, score, rank FROM dsl.recommend_all(model, k, excl)),
    r AS (SELECT u.entity_id AS user_id, x.item_id, x.score, x.rank
          FROM nm_models m JOIN dsl.parameters u ON u.model_id = m.model_id AND u.part = 'user',
               LATERAL dsl.recommend(model, u.entity_id, k, excl) x
          WHERE m.name = model)
    SELECT (SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM r) x) +
           (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM a) x)
$$;
SELECT name, nm_all_differs(name, 5, true) AS differs, nm_all_differs(name, 100, false) AS differs_all,
       (SELECT count(*) FROM dsl.recommend_all(name, 5)) AS rows
FROM nm_models WHERE name IN ('nm_a', 'nm_b', 'nm_d') ORDER BY name;
SET work_mem = '64kB';
SELECT nm_all_differs('nm_b', 1000, false) AS differs_small_work_mem;
RESET work_mem;
SELECT count(*) AS rows FROM dsl.recommend_all('nm_a', 2147483647, false);   -- 6 x 40

-- dsl.evaluate ranks with the same scorer: its recall@5 is that of the
-- dsl.recommend_all lists
CREATE TABLE nm_test AS
SELECT 10 * u AS user_id, 1000 + 7 * j AS item_id
FROM generate_series(1, 150) u, generate_series(0, 1499) j
WHERE nm_val(9, u, j, 0) > 0.99
EXCEPT
SELECT s.user_id, unnest(s.items) FROM dsl.seen_items s JOIN nm_models m USING (model_id)
WHERE m.name = 'nm_b';
WITH lists AS (SELECT user_id, item_id FROM dsl.recommend_all('nm_b', 5)),
per_user AS (
    SELECT t.user_id, count(l.item_id)::float8 / count(*) AS recall
    FROM nm_test t
    LEFT JOIN lists l ON l.user_id = t.user_id AND l.item_id = t.item_id
    GROUP BY t.user_id)
SELECT count(*) AS users,
       round(avg(recall)::numeric, 12) =
       round((SELECT value FROM dsl.evaluate('nm_b', 'nm_test', k => 5)
              WHERE metric = 'recall')::numeric, 12) AS recall_matches
FROM per_user;

-- no item-item similarity: refused, naming the model and its type
\set VERBOSITY default
SELECT * FROM dsl.similar_items('nm_a', 1000);
\set VERBOSITY terse
DO $$
BEGIN
    PERFORM dsl.similar_items('nm_a', 1000, 5, 'inner_product');
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'feature_not_supported: %', SQLERRM;
END $$;

-- An ad-hoc history is folded in (a few steps of BPR from a fixed start,
-- negatives drawn from a seed of the history).  nm_cl's items fall into
-- three groups by j % 3: GMF rows one-hot on the group, an MLP of small
-- weights; its users each like one group.  A history of one group's items
-- must bring that group's other items to the top.
SELECT nm_build('nm_cl', 9, 60, 3, 2, ARRAY[4, 3], 60, 6) > 0 AS cl;
UPDATE dsl.parameters p SET vec =
    CASE p.part
        WHEN 'item' THEN dsl.spvec_from_arrays(ARRAY[((p.entity_id - 1000) / 7 % 3 + 1)::int],
                                               ARRAY[1]::real[], 3)
        WHEN 'user' THEN dsl.spvec_from_arrays(ARRAY[(p.entity_id / 10 % 3 + 1)::int],
                                               ARRAY[1]::real[], 3)
        WHEN 'out' THEN nm_row(6, 8, 0, 3, 0.1)
        ELSE nm_row(6, 40, p.entity_id + length(p.part), dsl.dims(p.vec), 0.2)
    END
FROM nm_models m WHERE m.model_id = p.model_id AND m.name = 'nm_cl';
CREATE TABLE nm_hist AS
SELECT grp, array_agg(1000 + 7 * j ORDER BY j) AS items
FROM generate_series(0, 2) grp, generate_series(0, 59) j
WHERE j % 3 = grp AND j % 4 = 1
GROUP BY grp;
SELECT h.grp, cardinality(h.items) AS history,
       count(*) FILTER (WHERE (r.item_id - 1000) / 7 % 3 = h.grp) AS of_its_group,
       count(*) FILTER (WHERE r.item_id = ANY (h.items)) AS from_history
FROM nm_hist h, LATERAL dsl.recommend_for_items('nm_cl', h.items, 8) r
GROUP BY h.grp, h.items ORDER BY h.grp;
-- without exclusion too (the history's items have their group's GMF rows)
SELECT h.grp, count(*) FILTER (WHERE (r.item_id - 1000) / 7 % 3 = h.grp) AS of_its_group
FROM nm_hist h, LATERAL dsl.recommend_for_items('nm_cl', h.items, 12, false) r
GROUP BY h.grp ORDER BY h.grp;
-- the scores are those of the folded-in representation, ranked as
-- dsl.recommend ranks (best first, ties by id)
SELECT count(*) AS rows,
       bool_and(a.score > b.score OR (a.score = b.score AND a.item_id < b.item_id)) AS in_order
FROM dsl.recommend_for_items('nm_cl', (SELECT items FROM nm_hist WHERE grp = 1), 20) a
JOIN dsl.recommend_for_items('nm_cl', (SELECT items FROM nm_hist WHERE grp = 1), 20) b
  ON b.rank = a.rank + 1;
-- the same history gives the same list: in any order, with duplicates and
-- NULLs, and with ids the model does not know (ignored, with a NOTICE)
SELECT (SELECT array_agg(item_id || ':' || score ORDER BY rank)
        FROM dsl.recommend_for_items('nm_cl', (SELECT items FROM nm_hist WHERE grp = 2), 6)) =
       (SELECT array_agg(item_id || ':' || score ORDER BY rank)
        FROM dsl.recommend_for_items('nm_cl',
                 (SELECT array_agg(i ORDER BY i DESC) || ARRAY[NULL, items[1]]::bigint[]
                  FROM nm_hist, unnest(items) i WHERE grp = 2 GROUP BY items), 6)) AS same;
SELECT (SELECT array_agg(item_id ORDER BY rank)
        FROM dsl.recommend_for_items('nm_cl', (SELECT items FROM nm_hist WHERE grp = 0) || ARRAY[5, 1001]::bigint[], 6)) =
       (SELECT array_agg(item_id ORDER BY rank)
        FROM dsl.recommend_for_items('nm_cl', (SELECT items FROM nm_hist WHERE grp = 0), 6)) AS same;
-- the fold-in's chunks of pairs go to the threads: one thread folds in the
-- same representation, to the bit (scores compared as text)
CREATE TEMP TABLE nm_two AS
SELECT h.grp, r.rank, r.item_id, r.score::text AS score
FROM nm_hist h, LATERAL dsl.recommend_for_items('nm_cl', h.items, 10) r;
SET dsl_rec.threads = 1;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE o.item_id IS DISTINCT FROM t.item_id OR o.score IS DISTINCT FROM t.score) AS differ
FROM nm_two t
LEFT JOIN (SELECT h.grp, r.rank, r.item_id, r.score::text AS score
           FROM nm_hist h, LATERAL dsl.recommend_for_items('nm_cl', h.items, 10) r) o
  USING (grp, rank);
RESET dsl_rec.threads;
-- no known item: the popular items, as for an unknown user
SELECT count(*) AS rows, bool_and(cold_start) AS cold
FROM dsl.recommend_for_items('nm_cl', ARRAY[5, 6], 3);
-- a history of the whole catalogue: nothing left to rank with exclusion
SELECT count(*) AS rows FROM dsl.recommend_for_items('nm_cl',
    ARRAY(SELECT 1000 + 7 * j FROM generate_series(0, 59) j), 5);
SELECT count(*) AS rows FROM dsl.recommend_for_items('nm_cl',
    ARRAY(SELECT 1000 + 7 * j FROM generate_series(0, 59) j), 5, false);
-- dsl.evaluate_histories folds in every test user's history: held-out
-- items of the history's group are found (random ranking: recall@5 near
-- 5 / 50)
CREATE TABLE nm_cl_hist AS
SELECT 100 + grp AS user_id, unnest(items) AS item_id FROM nm_hist;
CREATE TABLE nm_cl_test AS
SELECT 100 + grp AS user_id, 1000 + 7 * j AS item_id
FROM generate_series(0, 2) grp, generate_series(0, 59) j
WHERE j % 3 = grp AND j % 4 = 3;
SELECT metric, CASE WHEN metric = 'recall' THEN value > 0.4 ELSE value IS NOT NULL END AS ok
FROM dsl.evaluate_histories('nm_cl', 'nm_cl_hist', 'nm_cl_test', k => 5)
WHERE metric IN ('recall', 'users_evaluated', 'users_without_history');

-- A part that does not fit the others is ERRCODE_DATA_CORRUPTED naming it
-- (each change rolled back; the dsl.models row is touched so that the
-- model is loaded again).  A part whose rows disagree among themselves is
-- the rows reader's error.
CREATE FUNCTION nm_corrupt(model text, change text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    mid bigint := (SELECT model_id FROM dsl.models WHERE name = model);
BEGIN
    EXECUTE format(change, mid);
    UPDATE dsl.models SET epochs = epochs + 1 WHERE model_id = mid;
    PERFORM dsl.score(model, 10, 1000);
    RAISE EXCEPTION 'served';
EXCEPTION
    WHEN data_corrupted THEN
        RETURN 'data_corrupted: ' || SQLERRM;
    WHEN raise_exception THEN
        RETURN SQLERRM;
END
$$;
SELECT nm_corrupt('nm_c', $$UPDATE dsl.parameters SET vec = '{1:1}/4'
                             WHERE model_id = %s AND part = 'mlp_b1'$$);
SELECT nm_corrupt('nm_c', $$UPDATE dsl.parameters SET vec = (vec::real[] || ARRAY[0::real])::dsl.spvec
                             WHERE model_id = %s AND part = 'user'$$);
SELECT nm_corrupt('nm_c', $$UPDATE dsl.parameters SET vec = '{1:1}/8'
                             WHERE model_id = %s AND part = 'out'$$);
SELECT nm_corrupt('nm_c', $$DELETE FROM dsl.parameters
                             WHERE model_id = %s AND part = 'out_bias'$$);
SELECT nm_corrupt('nm_c', $$DELETE FROM dsl.parameters
                             WHERE model_id = %s AND part = 'mlp_w1_user'$$);
SELECT nm_corrupt('nm_c', $$DELETE FROM dsl.parameters
                             WHERE model_id = %s AND part = 'mlp_user' AND entity_id = 30$$);
SELECT nm_corrupt('nm_c', $$INSERT INTO dsl.parameters
                             VALUES (%s, 'mlp_item', 1002, '{1:1}/2')$$);
SELECT nm_corrupt('nm_c', $$UPDATE dsl.parameters SET entity_id = 7
                             WHERE model_id = %s AND part = 'mlp_w1_item' AND entity_id = 0$$);
SELECT nm_corrupt('nm_c', $$INSERT INTO dsl.parameters
                             VALUES (%s, 'mlp_b2', 0, '{1:1}/3')$$);
SELECT nm_corrupt('nm_d', $$DELETE FROM dsl.parameters
                             WHERE model_id = %s AND part = 'mlp_w3' AND entity_id = 6$$);
SELECT nm_corrupt('nm_d', $$INSERT INTO dsl.parameters
                             VALUES (%s, 'mlp_w5', 0, '{1:1}/2')$$);
SELECT nm_corrupt('nm_c', $$UPDATE dsl.parameters SET vec = '{1:1}/600'
                             WHERE model_id = %s AND part LIKE 'mlp_w1_%%'$$);
SELECT nm_corrupt('nm_c', $$UPDATE dsl.parameters SET vec = '{1:1}/4'
                             WHERE model_id = %s AND part = 'mlp_user' AND entity_id = 30$$);
-- and served again
SELECT abs(dsl.score('nm_c', 10, 1000) - nm_ref('nm_c', 10, 1000)) < 1e-5 AS served;

-- Another connection serves the same scores: with dsl_rec preloaded, from
-- the server's shared copy of each model
CREATE TABLE nm_before AS
SELECT m.name, r.user_id, r.item_id, r.score
FROM nm_models m, LATERAL dsl.recommend_all(m.name, 3) r;
\c
SELECT count(*) AS rows,
       count(*) FILTER (WHERE score IS DISTINCT FROM dsl.score(name, user_id, item_id)) AS differs
FROM nm_before;
SELECT count(*) > 0 AS cached,
       bool_and(shared = (current_setting('shared_preload_libraries') ~ 'dsl_rec')) AS shared_if_preloaded
FROM dsl.serving_cache() WHERE name LIKE 'nm\_%';
SELECT count(*) AS rows FROM dsl.recommend_for_items('nm_cl',
    (SELECT items FROM nm_hist WHERE grp = 1), 5);

DROP VIEW nm_models;
SELECT dsl.drop_model(name) FROM dsl.models WHERE name LIKE 'nm\_%' ORDER BY name;
DROP TABLE nm_expect, nm_test, nm_hist, nm_cl_hist, nm_cl_test, nm_before;
DROP FUNCTION nm_val, nm_row, nm_build, nm_vec, nm_ref, nm_all_differs, nm_corrupt;
