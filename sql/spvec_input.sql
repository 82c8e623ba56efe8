-- dsl.spvec text input and output
SET search_path = dsl, public;

-- Reports what text input does with a string: the canonical output, or the
-- SQLSTATE, message and detail of the error.
CREATE FUNCTION pg_temp.try_in(input text, typmod int DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
	detail text;
BEGIN
	IF typmod IS NULL THEN
		result := input::dsl.spvec::text;
	ELSE
		EXECUTE format('SELECT %L::dsl.spvec(%s)::text', input, typmod) INTO result;
	END IF;
	RETURN result;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' | ' || detail, ' | '), '');
END
$$;

-- canonical output
SELECT '{1:0.5,3:-2}/64'::spvec;
SELECT '{}/3'::spvec;
SELECT '{}/1'::spvec;
SELECT '{1:1}/1'::spvec;
SELECT '{3:3,1:1,2:2}/3'::spvec;               -- sorted on input
SELECT '{5:5,1:1,4:4,2:2}/5'::spvec;
SELECT '{1:0,2:1,3:-0,4:0.0,5:0e10}/5'::spvec;    -- zeros dropped
SELECT '{1:0,2:0}/2'::spvec;
SELECT '  {  1 : 1.5 ,  2:-2  }  /  5  '::spvec; -- whitespace
SELECT E'\t{\n1:1\r,\f2:2 }\n/\t2\n'::spvec;
SELECT '{ }/2'::spvec;
SELECT '{+1:+1,2:1e2,3:1.5E-3,4:.5,5:5.}/+5'::spvec;  -- number spellings
SELECT '{1:001,002:2}/0003'::spvec;
SELECT '{1:1}/1000000'::spvec;                 -- largest dimension
SELECT '{1000000:-1}/1000000'::spvec;

-- shortest text that reads back to the same float4
SELECT '{1:1.1,2:3.4028235e38,3:1e-45,4:-3.4028235e38,5:1.17549435e-38,6:0.1,7:16777217,8:-2.5e-7}/8'::spvec;
SELECT '{1:1.100000023841858}/1'::spvec;       -- the float4 nearest 1.1
SELECT '{1:3.40282347e+38}/1'::spvec;
SELECT '{1:1.4e-45,2:8e-46,3:-1.5e-45}/3'::spvec; -- denormals round to nearest
SELECT '{1:0.30000001192092896}/1'::spvec;
-- same text as real's own output
SELECT x, ('{1:' || x || '}/1')::spvec
FROM unnest('{1.1,3.4028235e38,1e-45,-0.1,123456.79,1e10,1e-10,65504}'::real[]) AS x;
-- text round trip is exact (through real[] to compare the float4 bits)
SELECT count(*) AS mismatches
FROM (SELECT setseed(0.42)) s,
	 LATERAL (SELECT ((random() - 0.5) * 10 ^ (random() * 70 - 35))::real AS x
			  FROM generate_series(1, 2000)) r
WHERE ('{1:' || x || '}/1')::spvec::text::spvec::real[] <> ARRAY[x];
SELECT v::text::spvec = v AS same, v::text = v::text::spvec::text AS same_text
FROM (VALUES ('{1:1.1,7:-3.4028235e38,64:1e-45}/64'::spvec), ('{}/7')) t(v);

-- text casts
SELECT '{2:3}/4'::spvec::text, '{2:3}/4'::text::spvec;
SELECT NULL::spvec, NULL::text::spvec;

-- malformed input: syntax (22P02)
SELECT input, pg_temp.try_in(input) FROM (VALUES
	(''), (' '), ('{'), ('}'), ('{}'), ('{}/'), ('{:}/1'), ('{1:}/1'), ('{:1}/1'),
	('{1}/1'), ('{1:1a}/1'), ('{1:1,}/1'), ('{,1:1}/1'), ('{1:1,,2:1}/2'),
	('{1:1 2:1}/2'), ('{1:1}'), ('{1:1}/'), ('{1:1}/1x'), ('{1:1}/1.0'),
	('{1:1}/a'), ('{1:1}1'), ('[1,2]'), ('{1.5:1}/2'), ('{0x1:1}/2'),
	('{1:1}/3/3'), ('{1:1}}/1'), ('{{1:1}/1'), ('{1:1'), ('{1:'), ('{1'),
	('1:1/1'), ('{1;1}/1'), ('{1:1;2:2}/2'), ('{1::1}/1'), ('{1:1:1}/1'),
	('{a:1}/1'), ('{1:1}/ 1 1'), ('{1:--1}/1'), ('{1:1}/1e3')
) AS t(input);

-- malformed input: values and dimensions
SELECT input, pg_temp.try_in(input) FROM (VALUES
	('{0:1}/3'), ('{-1:1}/3'), ('{4:1}/3'), ('{4:0}/3'), ('{1:1,1:2}/3'),
	('{2:1,1:1,2:0}/3'), ('{1:0,1:0}/3'), ('{1:NaN}/3'), ('{1:nan}/3'),
	('{1:Infinity}/3'), ('{1:-Infinity}/3'), ('{1:inf}/3'), ('{2:-inf}/3'),
	('{1:1e39}/3'), ('{1:-1e39}/3'), ('{1:3.5e38}/3'), ('{1:1e-50}/3'),
	('{99999999999:1}/3'), ('{99999999999999999999:1}/3'),
	('{-99999999999999999999:1}/3'), ('{}/0'), ('{}/-1'), ('{1:1}/-3'),
	('{1:1}/1000001'), ('{1:1}/99999999999'), ('{1:1}/99999999999999999999999'),
	('{1:1}/-99999999999999999999999'), ('{1:1,2:1}/1'), ('{1:1,2:2,3:3}/2')
) AS t(input);

-- errors as users see them
SELECT '{1:1,}/1'::spvec;
SELECT '{1:1}'::spvec;
SELECT '{1:1}/1x'::spvec;
SELECT '{4:1}/3'::spvec;
SELECT '{1:1,1:2}/3'::spvec;
SELECT '{1:NaN}/3'::spvec;
SELECT '{1:1e39}/3'::spvec;
SELECT '{1:1}/1000001'::spvec;
SELECT '{}/0'::spvec;

-- type modifier
SELECT '{1:1}/3'::spvec(3);
SELECT '{}/1000000'::spvec(1000000);
SELECT input, typmod, pg_temp.try_in(input, typmod) FROM (VALUES
	('{1:1}/3', 64), ('{}/65', 64), ('{1:1}/1', 2), ('{1:1}/4', 3)
) AS t(input, typmod);
SELECT '{1:1}/3'::spvec(64);
SELECT '{1:1}/3'::spvec::spvec(64);
SELECT '{1:1}/3'::spvec(0);
SELECT '{1:1}/3'::spvec(-1);
SELECT '{1:1}/3'::spvec(1000001);
SELECT '{1:1}/3'::spvec(3, 4);
SELECT '{1:1}/3'::spvec('a');
CREATE TEMP TABLE spvec_typmod (v spvec(3));
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'spvec_typmod'::regclass AND attname = 'v';
INSERT INTO spvec_typmod VALUES ('{1:1}/3'), ('{3:-1,2:0}/3'), (NULL);
INSERT INTO spvec_typmod VALUES ('{1:1}/4');
INSERT INTO spvec_typmod SELECT '{1:1}/2'::spvec;
UPDATE spvec_typmod SET v = '{}/5';
SELECT v FROM spvec_typmod ORDER BY v::text;
CREATE TEMP TABLE spvec_bad_typmod (v spvec(0));
CREATE TEMP TABLE spvec_bad_typmod (v spvec(1000001));
