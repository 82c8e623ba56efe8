/*
 * model_registry.c - the model types dsl.train() knows
 *
 * The one list of model types: a new type adds its ModelOps here (see
 * model_ops.h); training and serving (ModelOps.scorer) both look types up
 * here.  dsl.models.model_type takes whatever this list names.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "model_ops.h"

static const ModelOps *const model_types[] = {
	&mf_ops,
	&lightgcn_ops,
	&multvae_ops,
	&neumf_ops,
};

/*
 * The ModelOps of model_type `type`, or NULL: serving reports an unknown
 * type of a stored model in its own words (model_cache.c).
 */
const ModelOps *
dsl_model_type_find(const char *type)
{
	for (int i = 0; i < lengthof(model_types); i++)
		if (strcmp(type, model_types[i]->type) == 0)
			return model_types[i];
	return NULL;
}

/*
 * Find the ModelOps of model_type `type`.  An unknown type is an error that
 * names it and lists the registered types.
 */
const ModelOps *
dsl_model_type_lookup(const char *type)
{
	const ModelOps *ops = dsl_model_type_find(type);
	StringInfoData known;

	if (ops != NULL)
		return ops;

	initStringInfo(&known);
	for (int i = 0; i < lengthof(model_types); i++)
		appendStringInfo(&known, "%s%s", i ? ", " : "", model_types[i]->type);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for model_type: \"%s\"", type),
			 errdetail("Valid values: %s.", known.data)));
	return NULL;				/* keep the compiler quiet */
}

/*
 * The value of option `key` of dsl.train's options jsonb as a double; an
 * error naming the key unless it is a JSON number.
 */
double
dsl_option_float(const char *key, const JsonbValue *v)
{
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", key)));
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											  NumericGetDatum(v->val.numeric)));
}

/*
 * Option `key` as a number in the range lo..hi (each end included or not);
 * `valid` describes the range in the error's detail.
 */
double
dsl_option_number(const char *key, const JsonbValue *v,
				  double lo, bool lo_incl, double hi, bool hi_incl,
				  const char *valid)
{
	double		x = dsl_option_float(key, v);

	if (isnan(x) || isinf(x) || (lo_incl ? x < lo : x <= lo) || (hi_incl ? x > hi : x >= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option %s: %g", key, x),
				 errdetail("Valid values: %s.", valid)));
	return x;
}

/* option `key` as an integer from lo to hi */
int
dsl_option_int(const char *key, const JsonbValue *v, int lo, int hi)
{
	double		x = dsl_option_float(key, v);

	if (isnan(x) || x < lo || x > hi || x != floor(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option %s: %g", key, x),
				 errdetail("Valid values: integers from %d to %d.", lo, hi)));
	return (int) x;
}

PG_FUNCTION_INFO_V1(dsl_model_types);

/*
 * dsl.model_types(): the model types this version of dsl_rec can train and
 * serve, in registry order.  dsl.models' CHECK on model_type uses it, so the
 * list above is the only place that names them.
 */
Datum
dsl_model_types(PG_FUNCTION_ARGS)
{
	Datum		elems[lengthof(model_types)];

	for (int i = 0; i < lengthof(model_types); i++)
		elems[i] = CStringGetTextDatum(model_types[i]->type);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, lengthof(model_types), TEXTOID,
										  -1, false, TYPALIGN_INT));
}
