
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
