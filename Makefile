# dsl_rec - Dynamic Sparse Learning recommenders inside PostgreSQL (PGXS build)

EXTENSION = dsl_rec
EXTVERSION = 0.2.0

MODULE_big = dsl_rec
# every C file under src/ is part of the library
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script of the version in development is assembled from one
# SQL file per concept, in order.  A released version's script is frozen in
# sql/ (sql/dsl_rec--0.1.0.sql) and never changes; it is installed as it is,
# with every upgrade script sql/dsl_rec--A--B.sql.  A frozen copy of the
# version being built would be installed twice: it is left out.
SQL_PARTS = $(sort $(wildcard src/sql/*.sql))
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out sql/$(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

# pg_regress suites, run in this order against a running server
REGRESS = \
	spvec_input spvec_ops spvec_copy \
	train_args train_mf train_stopping train_storage train_lightgcn train_multvae train_neumf train_warm \
	recommend recommend_for_items evaluate serve_scorer serve_neumf \
	identifiers bad_calls security
REGRESS_OPTS = --load-extension=$(EXTENSION)

# OpenBLAS through pkg-config; packagers may override OPENBLAS_CFLAGS/LIBS.
OPENBLAS_CFLAGS ?= $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_LIBS ?= $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

override PG_CPPFLAGS += -I$(srcdir)/src $(OPENBLAS_CFLAGS)
# Safe auto-vectorisation (not -ffast-math: NaN/Inf checks must keep working;
# -fno-math-errno only stops sqrtf() from setting errno).
# No -march=native: wide SIMD paths are dispatched at run time.
override PG_CFLAGS += -O3 -ftree-vectorize -fassociative-math -fno-signed-zeros -fno-trapping-math -fno-math-errno
SHLIB_LINK += $(OPENBLAS_LIBS) -lpthread -lm

# Header dependencies: gcc writes src/*.d beside each object; the LLVM
# bitcode (JIT inlining) is rebuilt whenever its object is.
override PG_CFLAGS += -MMD -MP
DEPS = $(OBJS:.o=.d)

EXTRA_CLEAN = $(DATA_built) results regression.diffs regression.out $(DEPS)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(SQL_PARTS)
	cat $^ > $@

-include $(DEPS)
$(OBJS:.o=.bc): %.bc: %.o

# Developer workflow: deps, private cluster, tests, demo, benchmarks.
.PHONY: demo test stop clean-cluster bench bench-lightgcn tap memcheck fuzz
demo:
	@bash test/dev.sh demo
test:
	@bash test/dev.sh test
tap:
	@bash test/dev.sh tap
bench:
	@bash test/dev.sh bench
# LightGCN with its defaults to the end on Gowalla (about 2.5 hours; not in bench)
bench-lightgcn:
	@bash test/dev.sh bench-lightgcn
stop:
	@bash test/dev.sh stop
clean-cluster:
	@bash test/dev.sh clean
# valgrind over the regression suites on a throwaway cluster (slow; not in test)
memcheck:
	@bash test/memcheck.sh
# 1,000,000 libFuzzer executions per spvec harness (not in test)
fuzz:
	@$(MAKE) -C test/fuzz run PG_CONFIG=$(PG_CONFIG)
