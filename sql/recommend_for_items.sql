-- dsl.recommend_for_items: top k for an ad-hoc history (src/fold_in.h,
-- docs/serving.md).  Embedding models fold the history in: the user row p
-- that solves
--     (sum_{i in H} q_i q_i^T + n beta Gbar + n lambda t I) p = sum_{i in H} q_i
-- with Gbar = Q^T Q / N, t = trace(Gbar) / dim, beta = 1, lambda = 10.
-- Checked here: the scores against that solve done in SQL, a training user's
-- own history ranking like the stored user (every model type), and the
-- rules for seen, unknown, duplicate and NULL ids, candidates and errors.

\set VERBOSITY terse

-- two tastes: users 1..20 take items from 0..19, users 21..40 from 20..39
CREATE TABLE rfi_pairs AS
SELECT DISTINCT u AS user_id,
       (u * 13 + j * 7 + (u * j * j) % 7) % 20 + CASE WHEN u > 20 THEN 20 ELSE 0 END AS item_id
FROM generate_series(1, 40) u, generate_series(0, 7) j;

SET client_min_messages = warning;
SELECT count(*) AS epochs FROM dsl.train('rfi_mf', 'rfi_pairs', dim => 4, density => 1,
                                         epochs => 100, seed => 5);
RESET client_min_messages;

-- the solve, in SQL: Gaussian elimination with partial pivoting
CREATE FUNCTION rfi_solve(a float8[], b float8[]) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n int := cardinality(b);
    p int; f float8; t float8;
BEGIN
    FOR c IN 1..n LOOP
        p := c;
        FOR r IN c + 1..n LOOP
            IF abs(a[r][c]) > abs(a[p][c]) THEN p := r; END IF;
        END LOOP;
        FOR k IN 1..n LOOP
            t := a[c][k]; a[c][k] := a[p][k]; a[p][k] := t;
        END LOOP;
        t := b[c]; b[c] := b[p]; b[p] := t;
        FOR r IN c + 1..n LOOP
            f := a[r][c] / a[c][c];
            FOR k IN c..n LOOP a[r][k] := a[r][k] - f * a[c][k]; END LOOP;
            b[r] := b[r] - f * b[c];
        END LOOP;
    END LOOP;
    FOR r IN REVERSE n..1 LOOP
        t := b[r];
        FOR k IN r + 1..n LOOP t := t - a[r][k] * b[k]; END LOOP;
        b[r] := t / a[r][r];
    END LOOP;
    RETURN b;
END
$$;

-- the fold-in's scores of every item for a history, computed in SQL
CREATE TEMP TABLE rfi_q (id bigint, q float8[]);
CREATE FUNCTION rfi_expected(model text, hist bigint[])
RETURNS TABLE (item_id bigint, score float8) LANGUAGE plpgsql AS $$
DECLARE
    d int; nn int; n int; tr float8 := 0; x float8;
    g float8[]; a float8[]; b float8[]; p float8[];
BEGIN
    TRUNCATE rfi_q;
    INSERT INTO rfi_q
    SELECT x.entity_id, x.vec::real[]::float8[]
      FROM dsl.parameters x JOIN dsl.models m USING (model_id)
     WHERE m.name = model AND x.part = 'item';
    SELECT m.dim INTO d FROM dsl.models m WHERE m.name = model;
    SELECT count(*) INTO nn FROM rfi_q;
    SELECT count(DISTINCT h) INTO n FROM unnest(hist) h WHERE h IN (SELECT id FROM rfi_q);
    g := array_fill(0::float8, ARRAY[d, d]);
    a := g;
    b := array_fill(0::float8, ARRAY[d]);
    FOR r IN 1..d LOOP
        FOR c IN 1..d LOOP
            SELECT sum(q[r] * q[c]) / nn INTO STRICT x FROM rfi_q;
            g[r][c] := x;
            SELECT coalesce(sum(q[r] * q[c]), 0) INTO STRICT x
              FROM rfi_q WHERE id IN (SELECT unnest(hist));
            a[r][c] := x;
        END LOOP;
        tr := tr + g[r][r];
        SELECT coalesce(sum(q[r]), 0) INTO STRICT x FROM rfi_q WHERE id IN (SELECT unnest(hist));
        b[r] := x;
    END LOOP;
    FOR r IN 1..d LOOP
        FOR c IN 1..d LOOP
            a[r][c] := a[r][c] + n * 1.0 * g[r][c];
        END LOOP;
        a[r][r] := a[r][r] + n * 10.0 * tr / d;
    END LOOP;
    p := rfi_solve(a, b);
    RETURN QUERY
    SELECT rfi_q.id, (SELECT sum(p[c] * rfi_q.q[c]) FROM generate_series(1, d) c)
      FROM rfi_q;
END
$$;

-- every item's score, for three histories, against the SQL solve
SELECT h.label, count(*) AS items,
       max(abs(r.score - e.score) / (1e-3 + abs(e.score))) < 1e-4 AS scores_match
  FROM (VALUES ('one item', ARRAY[3]::bigint[]),
               ('a taste', ARRAY[0, 3, 6, 9, 12]::bigint[]),
               ('both tastes', ARRAY[1, 2, 25, 30, 39]::bigint[])) h(label, items),
       LATERAL dsl.recommend_for_items('rfi_mf', h.items, 100, false) r
       JOIN LATERAL rfi_expected('rfi_mf', h.items) e USING (item_id)
 GROUP BY h.label ORDER BY h.label;

-- ranked by score, ties by lower id; the history left out by default
SELECT bool_and(r.score <= r.prev_score) AS ordered, count(*) AS rows,
       bool_or(r.item_id = ANY (ARRAY[0, 3, 6, 9, 12])) AS history_returned
  FROM (SELECT *, lag(score, 1, 'Infinity') OVER (ORDER BY rank) AS prev_score
          FROM dsl.recommend_for_items('rfi_mf', ARRAY[0, 3, 6, 9, 12], 100)) r;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE item_id = ANY (ARRAY[0, 3, 6, 9, 12])) AS history_returned
  FROM dsl.recommend_for_items('rfi_mf', ARRAY[0, 3, 6, 9, 12], 100, exclude_seen => false);
-- a history of one taste recommends that taste (a random list of 5 of the
-- 40 items would hold 2.5 of them): training users' histories, folded in,
-- against the stored users' lists
SELECT avg(f.same) >= 4 AS folded_in_same_taste, avg(f.same) >= avg(f.same_stored) AS as_good_as_stored
  FROM (SELECT u.user_id,
               (SELECT count(*) FILTER (WHERE (item_id < 20) = (u.user_id <= 20))
                  FROM dsl.recommend_for_items('rfi_mf', u.h, 5)) AS same,
               (SELECT count(*) FILTER (WHERE (item_id < 20) = (u.user_id <= 20))
                  FROM dsl.recommend('rfi_mf', u.user_id, 5)) AS same_stored
          FROM (SELECT user_id, array_agg(item_id) AS h FROM rfi_pairs GROUP BY user_id) u) f;

-- order, duplicates and NULLs of the history do not matter
SELECT (SELECT array_agg(item_id || ':' || score ORDER BY rank)
          FROM dsl.recommend_for_items('rfi_mf', ARRAY[12, 0, 6, 3, 9], 8)) =
       (SELECT array_agg(item_id || ':' || score ORDER BY rank)
          FROM dsl.recommend_for_items('rfi_mf', ARRAY[0, 3, 3, NULL, 6, 9, 12, 0], 8)) AS same;

-- unknown ids are ignored and counted; none known: the popular items
SELECT (SELECT array_agg(item_id ORDER BY rank)
          FROM dsl.recommend_for_items('rfi_mf', ARRAY[0, 3, 6, 9, 12, 7777, -1], 8)) =
       (SELECT array_agg(item_id ORDER BY rank)
          FROM dsl.recommend_for_items('rfi_mf', ARRAY[0, 3, 6, 9, 12], 8)) AS same;
SELECT item_id, score, rank, cold_start
  FROM dsl.recommend_for_items('rfi_mf', ARRAY[7777, 8888], 3);
SELECT (SELECT array_agg(item_id ORDER BY rank) FROM dsl.recommend_for_items('rfi_mf', '{}', 5)) =
       (SELECT array_agg(item_id ORDER BY rank) FROM dsl.recommend('rfi_mf', 424242, 5)) AS popular;
SELECT count(*) FROM dsl.recommend_for_items('rfi_mf', NULL, 5);

-- candidates: only those, the history still left out
SELECT item_id, rank FROM dsl.recommend_for_items('rfi_mf', ARRAY[0, 3, 6], 10,
                                                  candidates => ARRAY[3, 15, 25, 9999]);

-- bad arguments
SELECT * FROM dsl.recommend_for_items('rfi_mf', ARRAY[1], 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.recommend_for_items('no_such_model', ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.recommend_for_items(NULL, ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dsl.recommend_for_items('rfi_mf', ARRAY[1], 5, NULL);
\echo :LAST_ERROR_SQLSTATE

-- dsl.evaluate_histories: users given by a history (strong generalization)
-- rank as dsl.recommend_for_items ranks them.  Users 1..40 fold in all but
-- their highest item and are tested on it; user 900 has no history (the
-- popular items), user 901 a history of unknown items only, and its test
-- item 7777 is unknown too.
CREATE TABLE rfi_hist AS
SELECT p.user_id + 1000 AS user_id, p.item_id FROM rfi_pairs p
 WHERE p.item_id < (SELECT max(item_id) FROM rfi_pairs q WHERE q.user_id = p.user_id)
UNION ALL SELECT 1901, 8888;
CREATE TABLE rfi_held AS
SELECT user_id + 1000 AS user_id, max(item_id) AS item_id FROM rfi_pairs GROUP BY user_id
UNION ALL SELECT 1900, 0 UNION ALL SELECT 1901, 1 UNION ALL SELECT 1901, 7777;
CREATE TABLE rfi_ref AS
SELECT t.user_id, count(*) AS n_test,
       (SELECT count(*) FROM rfi_held x
          JOIN dsl.recommend_for_items('rfi_mf',
                 coalesce((SELECT array_agg(h.item_id) FROM rfi_hist h WHERE h.user_id = t.user_id), '{}'), 5) r
            ON r.item_id = x.item_id
         WHERE x.user_id = t.user_id) AS hits
  FROM rfi_held t GROUP BY t.user_id;
SELECT e.metric, round(e.value::numeric, 9) = round(r.value::numeric, 9) AS agree, r.value > 0 AS nonzero
  FROM dsl.evaluate_histories('rfi_mf', 'rfi_hist', 'rfi_held', k => 5) e
  JOIN (SELECT 'recall' AS metric, avg(hits::float8 / n_test) AS value FROM rfi_ref
        UNION ALL SELECT 'precision', avg(hits::float8 / 5) FROM rfi_ref
        UNION ALL SELECT 'hit_rate', avg((hits > 0)::int::float8) FROM rfi_ref
        UNION ALL SELECT 'recall_truncated', avg(hits::float8 / least(5, n_test)) FROM rfi_ref
        UNION ALL SELECT 'users_evaluated', count(*) FROM rfi_ref) r USING (metric)
 ORDER BY e.metric;
SELECT metric, value FROM dsl.evaluate_histories('rfi_mf', 'rfi_hist', 'rfi_held', k => 5)
 WHERE metric IN ('users_evaluated', 'users_without_history');
-- bad arguments
SELECT count(*) FROM dsl.evaluate_histories('rfi_mf', 'rfi_hist', 'rfi_held', k => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM dsl.evaluate_histories('rfi_mf', 'rfi_hist', 'no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM dsl.evaluate_histories('rfi_mf', 'rfi_hist', 'rfi_held', 'no_col');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE rfi_hist, rfi_held, rfi_ref;

-- every model type: a training user's own history, folded in, ranks like
-- the stored user (top 5 of 40 items, training items excluded)
SET client_min_messages = warning;
SELECT t AS model_type,
       (SELECT count(*) FROM dsl.train('rfi_t_' || t, 'rfi_pairs', model_type => t,
                                       dim => 8, density => 0.5, epochs => 100,
                                       seed => 3)) AS epochs
FROM unnest(dsl.model_types()) AS t;
RESET client_min_messages;
SELECT t AS model_type, avg(o.overlap) >= 0.6 AS close_to_stored
  FROM unnest(dsl.model_types()) AS t,
       LATERAL (SELECT u.user_id,
                       (SELECT count(*) FROM
                          (SELECT item_id FROM dsl.recommend_for_items('rfi_t_' || t, u.h, 5)
                           INTERSECT
                           SELECT item_id FROM dsl.recommend('rfi_t_' || t, u.user_id, 5)) x)::numeric / 5 AS overlap
                  FROM (SELECT user_id, array_agg(item_id) AS h FROM rfi_pairs GROUP BY user_id) u) o
 GROUP BY t ORDER BY t;

SELECT dsl.drop_model(name) FROM dsl.models WHERE name LIKE 'rfi\_%' ORDER BY name;
DROP FUNCTION rfi_expected(text, bigint[]);
DROP FUNCTION rfi_solve(float8[], float8[]);
DROP TABLE rfi_pairs;
