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
