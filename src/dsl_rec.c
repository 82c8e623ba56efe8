/*
 * dsl_rec.c - module entry: magic block and configuration parameters
 */
#include "postgres.h"

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
