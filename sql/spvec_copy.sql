-- dsl.spvec binary I/O: COPY round trips and spvec_recv rejections
SET search_path = dsl, public;

-- Server-side COPY files go in the data directory, which the server can
-- always write to, whoever runs the tests (COPY to a file needs superuser).
CREATE FUNCTION pg_temp.copy_path(name text) RETURNS text
LANGUAGE sql AS $$ SELECT current_setting('data_directory') || '/' || name $$;

-- COPY query TO a file, then the file into table tab; reports 'ok' or the
-- error (without the CONTEXT, which would name the data directory).
CREATE FUNCTION pg_temp.copy_through(query text, tab text, options text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	path text := pg_temp.copy_path('dsl_rec_spvec_copy.dat');
BEGIN
	EXECUTE format('COPY (%s) TO %L %s', query, path, options);
	EXECUTE format('COPY %I FROM %L %s', tab, path, options);
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- the wire format: dim, nnz, reserved (0), 0-based indices, float4 values
SELECT spvec_send('{1:1,3:-2}/4'), spvec_send('{}/3');
SELECT spvec_send('{1:1,3:-2}/4'::text::spvec) = spvec_send(ARRAY[1,0,-2,0]::real[]::spvec) AS same_bytes;

-- binary COPY round trip with NULLs, every index encoding, extreme values
CREATE TEMP TABLE spvec_copy_src (id int, v spvec, w spvec(64));
INSERT INTO spvec_copy_src VALUES
	(1, '{1:0.5,3:-2}/64', '{1:1.1,64:-3.4028235e38}/64'),
	(2, NULL, '{}/64'),
	(3, '{}/1', NULL),
	(4, NULL, NULL),
	(5, '{1:1e-45,2:-1e-45,3:1.1754944e-38}/3', '{2:0.1,63:1e+10}/64'),
	(6, '{1000000:7}/1000000', '{64:1}/64');
INSERT INTO spvec_copy_src
SELECT 10 + step, spvec_from_arrays(array_agg(i), array_agg((i / 3.0)::real), d),
	   spvec_from_arrays(array_agg(i) FILTER (WHERE i <= 64),
						 array_agg((-i)::real) FILTER (WHERE i <= 64), 64)
FROM (VALUES (64, 1), (64, 2), (64, 4), (64, 30), (1000, 100), (70000, 23), (100000, 5000)) c(d, step),
	 generate_series(1, d, step) i
GROUP BY d, step;
SELECT id, dims(v), nnz(v), nnz(w) FROM spvec_copy_src ORDER BY id;

CREATE TEMP TABLE spvec_copy_dst (LIKE spvec_copy_src);
SELECT pg_temp.copy_through('SELECT * FROM spvec_copy_src ORDER BY id', 'spvec_copy_dst', '(FORMAT binary)');
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE s.v IS NOT DISTINCT FROM d.v AND s.w IS NOT DISTINCT FROM d.w
						AND s.v::text IS NOT DISTINCT FROM d.v::text
						AND s.w::text IS NOT DISTINCT FROM d.w::text) AS identical,
	   count(*) FILTER (WHERE d.v IS NULL) AS null_v, count(*) FILTER (WHERE d.w IS NULL) AS null_w
FROM spvec_copy_src s FULL JOIN spvec_copy_dst d USING (id);
SELECT id, v, w FROM spvec_copy_dst WHERE id < 10 ORDER BY id;

-- text COPY round trip
TRUNCATE spvec_copy_dst;
SELECT pg_temp.copy_through('SELECT * FROM spvec_copy_src', 'spvec_copy_dst', '');
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE s.v IS NOT DISTINCT FROM d.v AND s.w IS NOT DISTINCT FROM d.w) AS identical
FROM spvec_copy_src s FULL JOIN spvec_copy_dst d USING (id);

-- a typmod column checks binary input too
CREATE TEMP TABLE spvec_copy_dim3 (v spvec(3));
SELECT pg_temp.copy_through('SELECT v FROM spvec_copy_src WHERE id = 1', 'spvec_copy_dim3', '(FORMAT binary)');
SELECT pg_temp.copy_through('SELECT ''{3:1}/3''::dsl.spvec', 'spvec_copy_dim3', '(FORMAT binary)');
SELECT v FROM spvec_copy_dim3;

-- spvec_recv on crafted input: a bytea written with binary COPY has exactly
-- the same field bytes, so reading the file back into an spvec column hands
-- those bytes to spvec_recv.
CREATE TEMP TABLE spvec_recv_any (v spvec);
CREATE TEMP TABLE spvec_recv_3 (v spvec(3));
CREATE FUNCTION pg_temp.recv(payload text, tab text DEFAULT 'spvec_recv_any') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	path text := pg_temp.copy_path('dsl_rec_spvec_recv.bin');
	result text;
	detail text;
BEGIN
	EXECUTE format('COPY (SELECT decode(%L, ''hex'')) TO %L (FORMAT binary)',
				   replace(payload, ' ', ''), path);
	EXECUTE format('TRUNCATE %I', tab);
	EXECUTE format('COPY %I FROM %L (FORMAT binary)', tab, path);
	EXECUTE format('SELECT v::text FROM %I', tab) INTO result;
	RETURN result;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' | ' || detail, ' | '), '');
END
$$;

-- valid input
SELECT payload, pg_temp.recv(payload) FROM (VALUES
	('00000004 00000002 00000000 00000000 00000002 3f800000 c0000000'),
	('00000003 00000000 00000000'),
	('000f4240 00000001 00000000 000f423f 00000001'),
	('00000002 00000002 00000000 00000000 00000001 00000001 80000001')
) AS t(payload);
SELECT pg_temp.recv('00000003 00000001 00000000 00000002 3f800000', 'spvec_recv_3');
SELECT count(*) AS mismatches FROM spvec_copy_src
WHERE v IS NOT NULL AND pg_temp.recv(encode(spvec_send(v), 'hex')) <> v::text;

-- rejected input
SELECT payload, pg_temp.recv(payload) FROM (VALUES
	('00000000 00000000 00000000'),                                      -- dim 0
	('ffffffff 00000000 00000000'),                                      -- dim -1
	('000f4241 00000000 00000000'),                                      -- dim 1000001
	('7fffffff 00000000 00000000'),                                      -- dim 2^31 - 1
	('00000001 00000002 00000000 00000000 00000001 3f800000 3f800000'),  -- nnz > dim
	('00000003 ffffffff 00000000'),                                      -- nnz -1
	('00000003 7fffffff 00000000'),                                      -- nnz 2^31 - 1
	('00000003 00000000 00000001'),                                      -- reserved 1
	('00000003 00000000 80000000'),                                      -- reserved high bit
	('00000003 00000001 00000000 ffffffff 3f800000'),                    -- index -1
	('00000003 00000001 00000000 00000003 3f800000'),                    -- index = dim
	('00000003 00000001 00000000 7fffffff 3f800000'),                    -- index 2^31 - 1
	('00000003 00000002 00000000 00000002 00000000 3f800000 3f800000'),  -- descending
	('00000003 00000002 00000000 00000001 00000001 3f800000 3f800000'),  -- duplicate
	('00000003 00000001 00000000 00000000 7fc00000'),                    -- NaN
	('00000003 00000001 00000000 00000000 7f800001'),                    -- signalling NaN
	('00000003 00000001 00000000 00000000 7f800000'),                    -- Infinity
	('00000003 00000001 00000000 00000000 ff800000'),                    -- -Infinity
	('00000003 00000001 00000000 00000000 00000000'),                    -- zero
	('00000003 00000001 00000000 00000000 80000000'),                    -- -0
	('00000003 00000001 00000000 00000000'),                             -- values missing
	('00000003 00000002 00000000 00000000 00000001 3f800000'),           -- one value missing
	('00000003 0000'),                                                   -- header cut short
	(''),                                                                -- no bytes at all
	('00000003 00000000 00000000 00')                                    -- trailing byte
) AS t(payload);
SELECT pg_temp.recv('00000004 00000002 00000000 00000000 00000002 3f800000 c0000000', 'spvec_recv_3');
