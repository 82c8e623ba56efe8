/*
 * dsl_rec.c - module entry: magic block and configuration parameters
 */
#include "postgres.h"

#include <cblas.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "dsl_rec.h"
#include "serve_shared.h"

PG_MODULE_MAGIC;

int			dsl_threads = 2;
bool		dsl_progress = true;
double		dsl_debug_epoch_seconds = 0;
double		dsl_debug_reg_trial_margin = 0.04;
bool		dsl_debug_bf16_products = true;
int			dsl_serving_kernel = DSL_KERNEL_AUTO;
int			dsl_serving_prescore = DSL_PRESCORE_AUTO;

static const struct config_enum_entry serving_kernel_options[] = {
	{"auto", DSL_KERNEL_AUTO, false},
	{"scalar", DSL_KERNEL_SCALAR, false},
	{"avx2", DSL_KERNEL_AVX2, false},
	{"avx512", DSL_KERNEL_AVX512, false},
	{NULL, 0, false}
};

static const struct config_enum_entry serving_prescore_options[] = {
	{"auto", DSL_PRESCORE_AUTO, false},
	{"on", DSL_PRESCORE_ON, false},
	{"off", DSL_PRESCORE_OFF, false},
	{NULL, 0, false}
};

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("dsl_rec.threads",
							"Worker threads used by training, evaluation and BLAS calls.",
							"Worker threads never call PostgreSQL functions; 1 disables threading.",
							&dsl_threads,
							2, 1, 64,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("dsl_rec.progress",
							 "Report the progress of dsl.train() with a NOTICE per epoch.",
							 NULL,
							 &dsl_progress,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("dsl_rec.debug_epoch_seconds",
							 "Seconds that each training epoch counts for against max_seconds, instead of the time it takes (a developer option, for tests).",
							 "0 uses the wall clock. Otherwise dsl.train() decides what fits in max_seconds as if an epoch on the training pairs took this long (an epoch of the refit in proportion to its pairs) and nothing else took any time, and its result rows show those seconds.",
							 &dsl_debug_epoch_seconds,
							 0, 0, 1e6,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE | GUC_UNIT_S,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("dsl_rec.debug_reg_trial_margin",
							 "How much better another reg's validation recall must be than the default's in dsl.train()'s reg trials (a developer option, for tests).",
							 "A share of the default's recall: 0.04 (the default) needs 4 % more; 0 takes any gain.",
							 &dsl_debug_reg_trial_margin,
							 0.04, 0, 10,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("dsl_rec.debug_bf16_products",
							 "Whether MultVAE's training multiplies its output layer in bfloat16 where the CPU has AVX512_BF16 (a developer option, for tests and comparisons).",
							 "On (the default) sums products of bfloat16-rounded operands in float32, twice as fast; off keeps float32 operands. The model differs by the rounding.",
							 &dsl_debug_bf16_products,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("dsl_rec.debug_serving_kernel",
							 "Kernel that scores sparse served rows (a developer option, for tests).",
							 "auto picks the best the CPU has; a kernel the CPU lacks falls back to scalar. Results are the same with every kernel.",
							 &dsl_serving_kernel,
							 DSL_KERNEL_AUTO,
							 serving_kernel_options,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("dsl_rec.debug_serving_prescore",
							 "Whether served tables loaded from now on get an int8 copy for a first pass (a developer option, for tests).",
							 "auto gives one to tables too big for the cache whose copy is at most half their size. Results are the same either way.",
							 &dsl_serving_prescore,
							 DSL_PRESCORE_AUTO,
							 serving_prescore_options,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	serve_shared_init();

	MarkGUCPrefixReserved("dsl_rec");
}

/*
 * Give OpenBLAS a thread count right before BLAS work (never from _PG_init,
 * which may run in the postmaster): dsl_rec.threads for big products, 1 for
 * small ones such as one user's scores, where waking threads costs more than
 * it saves and concurrent sessions would oversubscribe the cores.
 */
void
dsl_blas_prepare(bool big)
{
	static int	configured = 0;
	int			want = big ? dsl_threads : 1;

	if (configured != want)
	{
		openblas_set_num_threads(want);
		configured = want;
	}
}
