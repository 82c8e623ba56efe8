-- dsl.spvec functions, operators, casts and storage
SET search_path = dsl, public;

-- Runs a query that returns one value; reports the value or the error.
CREATE FUNCTION pg_temp.try(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
	detail text;
BEGIN
	EXECUTE query INTO result;
	RETURN coalesce(result, 'NULL');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' | ' || detail, ' | '), '');
END
$$;

-- accessors
SELECT dims(v), nnz(v), l2_norm(v)
FROM (VALUES ('{1:3,4:4}/5'::spvec), ('{}/3'), ('{1:-2}/1'), ('{1:1,2:1,3:1,4:1}/4'),
			 ('{999999:1}/1000000')) t(v);
SELECT dims(NULL::spvec), nnz(NULL::spvec), l2_norm(NULL);

-- a = (1, 2, 0, -3), b = (0, 3, 4, 1): a.b = 3, |a|^2 = 14, |b|^2 = 26,
-- |a - b|^2 = 1 + 1 + 16 + 16 = 34
SELECT inner_product(a, b), negative_inner_product(a, b), a <#> b AS nip,
	   l2_distance(a, b) = sqrt(34::float8) AS l2_ok, a <-> b = sqrt(34::float8) AS l2_op_ok,
	   round(cosine_distance(a, b)::numeric, 12) AS cos,
	   round((1 - 3 / sqrt(14 * 26::float8))::numeric, 12) AS cos_expected,
	   a <=> b = cosine_distance(a, b) AS cos_op_ok
FROM (SELECT '{1:1,2:2,4:-3}/4'::spvec AS a, '{2:3,3:4,4:1}/4'::spvec AS b) t;
-- the same through the other argument order
SELECT inner_product(b, a), b <#> a, b <-> a = a <-> b AS l2_sym, b <=> a = a <=> b AS cos_sym
FROM (SELECT '{1:1,2:2,4:-3}/4'::spvec AS a, '{2:3,3:4,4:1}/4'::spvec AS b) t;

-- exact cases
SELECT '{1:3,2:4}/3'::spvec <-> '{}/3' AS l2_to_zero,          -- 5
	   '{1:3}/3'::spvec <-> '{2:4}/3' AS l2_disjoint,           -- 5
	   '{1:3,2:4}/3'::spvec <-> '{1:3,2:4}/3' AS l2_same,       -- 0
	   '{1:3,2:4}/3'::spvec <=> '{1:3,2:4}/3' AS cos_same,      -- 0
	   '{1:3,2:4}/3'::spvec <=> '{1:-6,2:-8}/3' AS cos_opposite,-- 2
	   '{1:3}/3'::spvec <=> '{2:4,3:1}/3' AS cos_orthogonal,    -- 1
	   '{1:2}/2'::spvec <=> '{1:5}/2' AS cos_parallel;          -- 0
SELECT round(('{1:3,2:4}/2'::spvec <=> '{1:4,2:3}/2')::numeric, 12) AS cos_0_04;
-- empty vectors: products are 0 (not -0), cosine distance is NaN
SELECT '{}/3'::spvec <#> '{1:1}/3' AS nip_empty, '{1:1}/3'::spvec <#> '{2:1}/3' AS nip_disjoint,
	   inner_product('{}/3', '{}/3') AS ip_empty, '{}/3'::spvec <-> '{}/3' AS l2_empty,
	   l2_norm('{}/3') AS norm_empty;
SELECT '{}/3'::spvec <=> '{1:1}/3' AS cos_zero_left, '{1:1}/3'::spvec <=> '{}/3' AS cos_zero_right,
	   '{}/3'::spvec <=> '{}/3' AS cos_zero_both;
-- products accumulate in double precision
SELECT inner_product('{1:3e38,2:3e38}/2', '{1:3e38,2:3e38}/2') = 2 * (3e38::real::float8)^2 AS no_overflow,
	   inner_product('{1:1e-45}/1', '{1:1e-45}/1') > 0 AS no_underflow,
	   '{1:3e38}/1'::spvec <-> '{1:-3e38}/1' = 2 * 3e38::real::float8 AS l2_no_overflow;
-- all index encodings meet (dim 64 with 64, 32, 13, 6, 0 entries; dim 100000)
WITH v AS (
	SELECT k, spvec_from_arrays(array_agg(i), array_agg((i % 7 - 3)::real), 64) AS v
	FROM unnest(ARRAY[64, 32, 13, 6, 0]) k, generate_series(1, 64) i
	WHERE i <= k AND i % 7 <> 3 OR k = 0 AND i = 0
	GROUP BY k
)
SELECT a.k AS ka, b.k AS kb, inner_product(a.v, b.v) AS ip,
	   inner_product(a.v, b.v) = (SELECT sum(x * y) FROM unnest(a.v::real[], b.v::real[]) u(x, y)) AS ip_ok,
	   abs((a.v <-> b.v) - (SELECT sqrt(sum((x - y)::float8 ^ 2)) FROM unnest(a.v::real[], b.v::real[]) u(x, y))) < 1e-12 AS l2_ok
FROM v a, v b WHERE a.k >= b.k ORDER BY 1, 2;
SELECT inner_product(a, b), a <-> b = sqrt(1 + 1 + 16 + 9::float8) AS l2_ok
FROM (SELECT '{1:1,50000:2,100000:3}/100000'::spvec AS a,
			 '{50000:1,99999:4}/100000'::spvec AS b) t;

-- dimension mismatch is an error for every binary function and operator
SELECT q, pg_temp.try(q) FROM (VALUES
	('SELECT dsl.inner_product(''{1:1}/3'', ''{1:1}/4'')'),
	('SELECT dsl.negative_inner_product(''{1:1}/3'', ''{1:1}/4'')'),
	('SELECT dsl.l2_distance(''{}/3'', ''{}/4'')'),
	('SELECT dsl.cosine_distance(''{1:1}/4'', ''{1:1}/3'')'),
	('SELECT ''{1:1}/3''::dsl.spvec OPERATOR(dsl.<#>) ''{1:1}/1000000'''),
	('SELECT ''{1:1}/3''::dsl.spvec OPERATOR(dsl.<->) ''{1:1}/2'''),
	('SELECT ''{}/3''::dsl.spvec OPERATOR(dsl.<=>) ''{}/2''')
) AS t(q);
SELECT '{1:1}/3'::spvec <-> '{1:1}/4';
-- strict: NULL in, NULL out
SELECT inner_product(NULL, '{}/1'), '{}/1'::spvec <#> NULL, NULL::spvec <-> NULL, NULL::spvec <=> '{}/1';

-- ORDER BY v <#> q returns the largest inner products first
CREATE TEMP TABLE spvec_items (id int, v spvec(4));
INSERT INTO spvec_items VALUES
	(1, '{1:1}/4'), (2, '{1:2,2:1}/4'), (3, '{2:-1}/4'), (4, '{3:5}/4'),
	(5, '{1:0.5,4:10}/4'), (6, '{}/4'), (7, NULL);
SELECT id, inner_product(v, '{1:1,4:0.125}/4') AS ip FROM spvec_items
ORDER BY v <#> '{1:1,4:0.125}/4', id LIMIT 3;
SELECT id, v <-> '{1:1}/4' AS l2 FROM spvec_items ORDER BY v <-> '{1:1}/4', id;
SELECT id FROM spvec_items ORDER BY v <=> '{1:1,2:1}/4', id;

-- equality: same dimension and same entries, however they were written
SELECT '{1:1,2:0}/3'::spvec = '{1:1}/3' AS eq_zero_dropped,
	   '{2:2,1:1}/3'::spvec = '{1:1,2:2}/3' AS eq_sorted,
	   '{1:1}/3'::spvec = '{1:1}/4' AS eq_other_dim,
	   '{1:1}/3'::spvec = '{1:-1}/3' AS eq_other_value,
	   '{1:1}/3'::spvec <> '{2:1}/3' AS ne_other_index,
	   '{}/3'::spvec = '{1:0}/3' AS eq_empty,
	   '{1:1.1}/1'::spvec = '{1:1.1000000001}/1' AS eq_same_float4,
	   ARRAY[1,0,2]::real[]::spvec = '{1:1,3:2}/3' AS eq_from_array;
-- hashing and ordering: DISTINCT, GROUP BY, joins and indexes agree with =
SELECT count(DISTINCT v) FROM (VALUES ('{1:1,2:0}/3'::spvec), ('{1:1}/3'), ('{1:1}/4'), ('{}/3'), ('{2:0}/3'), (NULL)) t(v);
SELECT v FROM (VALUES ('{1:1}/3'::spvec), ('{}/3'), ('{1:-1}/3'), ('{2:1}/3'), ('{1:1,2:1}/3'),
	('{3:1}/3'), ('{2:-1}/3'), ('{}/1'), ('{1:2}/3'), ('{1:1}/3')) t(v) ORDER BY v;
SELECT '{1:1}/3'::spvec < '{1:2}/3' AS lt, '{1:1}/3'::spvec <= '{1:1}/3' AS le,
	   '{2:1}/3'::spvec > '{1:1}/3' AS gt, '{}/4'::spvec >= '{1:5}/3' AS ge_dim,
	   spvec_cmp('{1:1,2:0}/3', '{1:1}/3') AS cmp_eq, spvec_cmp('{}/3', '{3:-1}/3') AS cmp_gt;
SELECT v FROM (SELECT '{1:1}/3'::spvec UNION SELECT '{1:1,3:0}/3' UNION SELECT '{}/3') t(v) ORDER BY v;
CREATE TEMP TABLE spvec_unique (v spvec UNIQUE);
INSERT INTO spvec_unique VALUES ('{1:1,2:2}/3'), ('{}/3'), ('{}/4');
INSERT INTO spvec_unique VALUES ('{2:2,1:1,3:0}/3');
SET enable_seqscan = off;
SELECT v FROM spvec_unique WHERE v = '{2:2,1:1}/3';
RESET enable_seqscan;
SET enable_sort = off;
SELECT v, count(*) FROM (VALUES ('{1:1,2:0}/3'::spvec), ('{1:1}/3'), ('{1:1}/4'), ('{}/3'), ('{2:0}/3')) t(v)
GROUP BY v ORDER BY v::text;
RESET enable_sort;
SET enable_mergejoin = off;
SET enable_nestloop = off;
SELECT a.id, b.id FROM spvec_items a JOIN spvec_items b ON a.v = b.v ORDER BY 1, 2;
SET enable_mergejoin = on;
SET enable_hashjoin = off;
SELECT a.id, b.id FROM spvec_items a JOIN spvec_items b ON a.v = b.v ORDER BY 1, 2;
RESET enable_mergejoin;
RESET enable_hashjoin;
RESET enable_nestloop;
SELECT spvec_hash('{1:1,2:0}/3') = spvec_hash('{1:1}/3') AS hash_eq,
	   spvec_hash_extended('{2:2,1:1}/3', 7) = spvec_hash_extended('{1:1,2:2}/3', 7) AS hash_ext_eq,
	   spvec_hash_extended('{1:1}/3', 0) <> spvec_hash_extended('{1:1}/3', 1) AS seed_matters;

-- casts to and from real[]
SELECT ARRAY[1,0,-2.5]::real[]::spvec, '{0,0,0}'::real[]::spvec, '{7}'::real[]::spvec;
SELECT '[0:2]={1,2,3}'::real[]::spvec AS lower_bound_ignored;
SELECT '{2:3}/4'::spvec::real[], '{}/2'::spvec::real[], '{1:1,2:2,3:3}/3'::spvec::real[];
SELECT '{1:1.1,3:3.4028235e38,4:1e-45}/4'::spvec::real[];
SELECT ARRAY[1,2,3]::real[]::spvec(3);
-- to dense and back for every index encoding, against dense arrays built directly
WITH c(d, step) AS (VALUES (64, 1), (64, 2), (64, 4), (64, 10), (64, 30), (1000, 100),
						   (70000, 23), (100000, 5000), (1000000, 999999)),
src AS (SELECT d, step, spvec_from_arrays(array_agg(i), array_agg((i / 8.0)::real), d) AS v
		FROM c, generate_series(1, d, step) i GROUP BY d, step),
dense AS (SELECT d, step, array_agg(CASE WHEN (g - 1) % step = 0 THEN (g / 8.0)::real ELSE 0 END
									ORDER BY g) AS a
		  FROM c, generate_series(1, d) g GROUP BY d, step)
SELECT d, nnz(v), v::real[] = a AS to_dense_ok, a::spvec = v AS from_dense_ok,
	   v::text::spvec = v AS text_ok
FROM src JOIN dense USING (d, step) ORDER BY d, nnz(v);
-- assignment cast into a column
INSERT INTO spvec_items VALUES (8, ARRAY[0,0,0,1]::real[]);
SELECT v FROM spvec_items WHERE id = 8;
INSERT INTO spvec_items VALUES (9, ARRAY[1,2,3]::real[]);
-- bad arrays
SELECT q, pg_temp.try(q) FROM (VALUES
	('SELECT ''{}''::real[]::dsl.spvec'),
	('SELECT ''{{1,2},{3,4}}''::real[]::dsl.spvec'),
	('SELECT ''{1,NULL,3}''::real[]::dsl.spvec'),
	('SELECT ''{NULL}''::real[]::dsl.spvec'),
	('SELECT ''{1,NaN}''::real[]::dsl.spvec'),
	('SELECT ''{Infinity,1}''::real[]::dsl.spvec'),
	('SELECT ''{0,-Infinity}''::real[]::dsl.spvec'),
	('SELECT ''{1,2,3}''::real[]::dsl.spvec(4)'),
	('SELECT array_fill(1::real, ARRAY[1000001])::dsl.spvec')
) AS t(q);

-- spvec_from_arrays: 1-based indices in any order, like the text input
SELECT spvec_from_arrays('{3,1}', '{3,1}', 3), spvec_from_arrays('{}', '{}', 5),
	   spvec_from_arrays('{2,1}', '{0,1}', 2), spvec_from_arrays('{1000000}', '{-1}', 1000000);
SELECT spvec_from_arrays(ARRAY[1,2], ARRAY[1,2]::real[], 2) = '{1:1,2:2}/2' AS same_as_text;
SELECT q, pg_temp.try(q) FROM (VALUES
	('SELECT dsl.spvec_from_arrays(''{1,2}'', ''{1}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{0}'', ''{1}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{4}'', ''{1}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{-1}'', ''{1}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{2,1,2}'', ''{1,1,1}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{1,2}'', ''{1,2}'', 1)'),
	('SELECT dsl.spvec_from_arrays(''{1}'', ''{NaN}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{1}'', ''{-Infinity}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{NULL}'', ''{1}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{1}'', ''{NULL}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{{1}}'', ''{{1}}'', 3)'),
	('SELECT dsl.spvec_from_arrays(''{}'', ''{}'', 0)'),
	('SELECT dsl.spvec_from_arrays(''{}'', ''{}'', 1000001)')
) AS t(q);

-- storage: pg_column_size of stored rows, dimension 64, against real[64]
CREATE TEMP TABLE spvec_size (nnz int, v spvec(64), a real[]);
INSERT INTO spvec_size
SELECT k, d, d FROM unnest(ARRAY[64, 32, 13, 6, 1, 0]) k,
	LATERAL (SELECT array_agg(CASE WHEN i <= k THEN (i * 0.25)::real ELSE 0 END ORDER BY i) AS d
			 FROM generate_series(1, 64) i) s;
SELECT nnz(v), pg_column_size(v) AS spvec_bytes, pg_column_size(a) AS real_array_bytes
FROM spvec_size ORDER BY 1 DESC;
-- the same density spread out (bitmap) or kept at the start: same size
SELECT pg_column_size('{1:1,9:1,17:1,25:1,33:1,41:1}/64'::spvec) = pg_column_size('{1:1,2:1,3:1,4:1,5:1,6:1}/64'::spvec) AS same_size;
-- larger dimensions: uint16 indices, bitmap, int32 indices
SELECT d, n, pg_column_size(spvec_from_arrays(array_agg(i), array_agg(1::real), d)) AS bytes
FROM (VALUES (1000, 10), (1000, 500), (70000, 3000), (100000, 20), (1000000, 1)) c(d, n),
	 LATERAL generate_series(1, d, d / n) i
GROUP BY d, n ORDER BY d, n;
