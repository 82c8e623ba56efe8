/*
 * dsl_rec.c - module entry: magic block and configuration parameters
 */
#include "postgres.h"

#include <cblas.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "dsl_rec.h"

PG_MODULE_MAGIC;

int			dsl_threads = 2;
bool		dsl_progress = true;

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

	MarkGUCPrefixReserved("dsl_rec");
}

/*
 * Give OpenBLAS the configured thread count.  Called right before BLAS work
 * (never from _PG_init, which may run in the postmaster).
 */
void
dsl_blas_prepare(void)
{
	static int	configured = 0;

	if (configured != dsl_threads)
	{
		openblas_set_num_threads(dsl_threads);
		configured = dsl_threads;
	}
}
