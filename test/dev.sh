#!/usr/bin/env bash
# test/dev.sh - the developer workflow behind `make demo`, `make test`,
# `make bench`, `make stop` and `make clean-cluster`.
#
#   deps    install what is missing (Debian packages; as root only, otherwise
#           print the exact command and stop), then check again
#   missing [build|test|bench]  print the Debian packages that are missing,
#           one a line, and install nothing (test/deps_check.sh tests it)
#   build   compile and install the extension into the server's directories
#   start   start (or reuse) a private cluster under .run/, owned by an
#           unprivileged OS user, on its own port and socket directory
#   test    deps + build + start, then pg_regress and the TAP tests; prints
#           "summary: N passed, M failed" and exits non-zero on any failure
#   demo    deps + build + start, then runs test/demo.sql end to end
#   bench   deps + build + start, then test/bench.sh (needs ../shared/data)
#   stop    stop the private cluster;  clean  stop it and delete .run/
#
# Environment: DSL_PGPORT (default 54329), PG_CONFIG (default: the newest
# server found under /usr/lib/postgresql), CI=true adds -Werror to the build,
# DSL_VENDOR (default ../shared/vendor: where the Citus tarball is looked
# for), DSL_SYSINCLUDE (default /usr/include: where `missing` looks for the
# headers Citus's build needs; test/deps_check.sh points it elsewhere).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${DSL_PGPORT:-54329}
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- which PostgreSQL -------------------------------------------------------
detect_pg() {
	if [ -n "${PG_CONFIG:-}" ]; then
		PG_CONFIG_GIVEN=1
		[ -x "$PG_CONFIG" ] || PG_CONFIG=$(command -v "$PG_CONFIG" || true)
		[ -n "$PG_CONFIG" ] && [ -x "$PG_CONFIG" ] || die "PG_CONFIG names no executable pg_config"
		PGMAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
		return
	fi
	# the newest PostgreSQL whose server or client is installed
	PGMAJOR=""
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/postgres" ] || [ -x "$d/pg_config" ] || continue
		v=$(basename "$(dirname "$d")")
		if [ -z "$PGMAJOR" ] || [ "$v" -gt "$PGMAJOR" ]; then PGMAJOR=$v; fi
	done
	if [ -n "$PGMAJOR" ]; then
		PG_CONFIG=/usr/lib/postgresql/$PGMAJOR/bin/pg_config
	elif command -v pg_config >/dev/null; then
		PG_CONFIG=$(command -v pg_config)
		PGMAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
	else
		# none at all: the one this project is made for (Debian 12's)
		PGMAJOR=15
		PG_CONFIG=/usr/lib/postgresql/$PGMAJOR/bin/pg_config
	fi
}

# --- dependencies -----------------------------------------------------------
# Each dependency is detected by the very file or ability that the build or
# the tests use, never by a proxy (pgxs.mk, for one, ships with the client
# package while postgres.h needs the server-dev package).  missing_packages
# prints one Debian package name per line for what is absent.
DEPS_TMP=""
deps_tmp() {
	[ -n "$DEPS_TMP" ] || DEPS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dsl_rec-deps.XXXXXX")
	printf '%s' "$DEPS_TMP"
}
cleanup_deps_tmp() { [ -z "$DEPS_TMP" ] || rm -rf "$DEPS_TMP"; }
trap cleanup_deps_tmp EXIT

# The OpenBLAS flags exactly as the Makefile derives them.
openblas_flags() {
	if [ -n "${OPENBLAS_CFLAGS+set}" ]; then
		OB_CFLAGS=$OPENBLAS_CFLAGS
	else
		OB_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || true)
	fi
	if [ -n "${OPENBLAS_LIBS+set}" ]; then
		OB_LIBS=$OPENBLAS_LIBS
	else
		OB_LIBS=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
	fi
}

missing_packages() {
	local what=${1:-test}
	local client="postgresql-client-$PGMAJOR" serverdev="postgresql-server-dev-$PGMAJOR"
	if [ ! -x "$PG_CONFIG" ]; then
		# nothing below can be asked without pg_config
		echo "postgresql-$PGMAJOR"
		echo "$serverdev"
		return 0
	fi
	local bindir pkglibdir incserver pgxs cc
	bindir=$("$PG_CONFIG" --bindir)
	pkglibdir=$("$PG_CONFIG" --pkglibdir)
	incserver=$("$PG_CONFIG" --includedir-server)
	pgxs=$("$PG_CONFIG" --pgxs)
	cc=$("$PG_CONFIG" --cc | awk '{print $1}')
	[ -x "$bindir/postgres" ] && [ -x "$bindir/initdb" ] || echo "postgresql-$PGMAJOR"
	[ -f "$pgxs" ] || echo "$client"
	[ -f "$incserver/postgres.h" ] || echo "$serverdev"
	command -v make >/dev/null || echo make
	command -v "$cc" >/dev/null || echo gcc

	# OpenBLAS: the header and the library the Makefile will use, by
	# compiling and linking a call to cblas_sdot with exactly its flags.
	if [ -z "${OPENBLAS_CFLAGS+set}" ] || [ -z "${OPENBLAS_LIBS+set}" ]; then
		command -v pkg-config >/dev/null || echo pkg-config
	fi
	if command -v "$cc" >/dev/null; then
		local t
		t=$(deps_tmp)
		openblas_flags
		printf '#include <cblas.h>\nint main(void){float x=1;return (int)cblas_sdot(1,&x,1,&x,1)-1;}\n' >"$t/ob.c"
		# shellcheck disable=SC2086
		if ! "$cc" $OB_CFLAGS -c "$t/ob.c" -o "$t/ob.o" >/dev/null 2>&1 ||
			! "$cc" "$t/ob.o" -o "$t/ob" $OB_LIBS >/dev/null 2>&1; then
			echo libopenblas-dev
		fi
	fi

	[ "$what" = build ] && return 0

	# tests: pg_regress, the TAP framework and its Perl modules
	[ -x "$(dirname "$pgxs")/../test/regress/pg_regress" ] || echo "$client"
	[ -f "$(dirname "$pgxs")/../test/perl/PostgreSQL/Test/Cluster.pm" ] || echo "$client"
	command -v prove >/dev/null || echo perl
	perl -MIPC::Run -e 1 2>/dev/null || echo libipc-run-perl
	# the scheduled-continuation TAP test: pg_cron's library in this server
	[ -f "$pkglibdir/pg_cron.so" ] || echo "postgresql-$PGMAJOR-cron"
	# the Citus TAP test, when the vendored Citus is to be built (citus_install)
	if [ ! -f "$pkglibdir/citus.so" ] && [ -f "$(citus_tarball)" ]; then
		local inc=${DSL_SYSINCLUDE:-/usr/include}
		[ -f "$inc/zstd.h" ] || echo libzstd-dev
		[ -f "$inc/lz4.h" ] || echo liblz4-dev
		[ -f "$inc/krb5.h" ] || echo libkrb5-dev
	fi
	# the fuzz smoke run: clang, PostgreSQL's static libraries, libFuzzer
	[ -f "$pkglibdir/libpgcommon_shlib.a" ] && [ -f "$pkglibdir/libpgport_shlib.a" ] || echo "$serverdev"
	if ! command -v clang >/dev/null; then
		echo clang
		echo libclang-rt-dev
	else
		local t
		t=$(deps_tmp)
		printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' >"$t/fz.c"
		if ! clang -fsanitize=fuzzer,address,undefined "$t/fz.c" -o "$t/fz" >/dev/null 2>&1; then
			echo "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
		fi
	fi

	if [ "$what" = bench ]; then
		command -v gnuplot >/dev/null || echo gnuplot-nox
		[ -x "$bindir/pgbench" ] || echo "postgresql-$PGMAJOR"
		# the side-by-side timing against implicit's BPR, which the bench
		# builds from its source tarball (test/bench/build_implicit.sh) with
		# Debian's python3: its modules, Python.h, and a C++17 compiler with
		# OpenMP (what the Cython extensions are compiled with)
		local py=/usr/bin/python3
		if [ ! -x "$py" ]; then
			echo python3
		else
			"$py" -c 'import numpy' 2>/dev/null || echo python3-numpy
			"$py" -c 'import scipy.sparse' 2>/dev/null || echo python3-scipy
			"$py" -c 'import Cython.Build' 2>/dev/null || echo cython3
			"$py" -c 'import setuptools' 2>/dev/null || echo python3-setuptools
			"$py" -c 'import tqdm' 2>/dev/null || echo python3-tqdm
			"$py" -c 'import threadpoolctl' 2>/dev/null || echo python3-threadpoolctl
			"$py" -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
				2>/dev/null || echo python3-dev
		fi
		local t
		t=$(deps_tmp)
		printf '#include <vector>\n#include <omp.h>\nint main(){std::vector<int> v(2);return v[0]+omp_get_max_threads()*0;}\n' >"$t/cxx.cpp"
		if ! command -v g++ >/dev/null || ! g++ -std=c++17 -fopenmp "$t/cxx.cpp" -o "$t/cxx" >/dev/null 2>&1; then
			echo g++
		fi
	fi
	return 0
}

# deps [test|build|bench]: install what is missing (as root), then check
# again; as another user print the one apt-get line and stop.
deps() {
	detect_pg
	local what=${1:-test} missing
	missing=$(missing_packages "$what" | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//')
	[ -z "$missing" ] && return 0
	if [ $IS_ROOT -ne 1 ]; then
		die "missing packages; run as root:  apt-get install -y --no-install-recommends $missing"
	fi
	log "installing: $missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		die "apt-get install failed for: $missing"
	# pg_config may only now exist
	[ -n "${PG_CONFIG_GIVEN:-}" ] || { unset PG_CONFIG; detect_pg; }
	missing=$(missing_packages "$what" | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//')
	[ -z "$missing" ] || die "still missing after apt-get install: $missing"
	log "installed; every dependency is present"
}

# --- build and install ------------------------------------------------------
build() {
	local extra=""
	[ "${CI:-}" = true ] && extra="-Werror"
	log "building with $PG_CONFIG"
	make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" PG_CFLAGS="$extra" all
	local libdir sharedir
	libdir=$("$PG_CONFIG" --pkglibdir)
	sharedir=$("$PG_CONFIG" --sharedir)
	if [ -w "$libdir" ] && [ -w "$sharedir/extension" ]; then
		make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" PG_CFLAGS="$extra" install >/dev/null
	else
		die "cannot write $libdir; run as root:  make -C $ROOT install PG_CONFIG=$PG_CONFIG"
	fi
}

# --- the private cluster ----------------------------------------------------
# Owned by an unprivileged user: the invoking user, or (as root) "postgres",
# which the Debian server package creates.
setup_runner() {
	if [ $IS_ROOT -eq 1 ]; then
		RUNNER=${DSL_RUNNER:-postgres}
		id "$RUNNER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$RUNNER"
	else
		RUNNER=$(id -un)
	fi
	RUN=$ROOT/.run
	# The cluster lives under the repository unless the runner cannot reach
	# it (a clone under /root, say); then under /tmp, keyed by the path.
	if [ $IS_ROOT -eq 1 ] && ! runuser -u "$RUNNER" -- test -x "$ROOT"; then
		RUN=/tmp/dsl_rec-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
		log "$ROOT is not reachable by $RUNNER; cluster goes to $RUN"
	fi
	mkdir -p "$RUN"
	[ $IS_ROOT -eq 1 ] && chown "$RUNNER" "$RUN"
	PGBIN=$("$PG_CONFIG" --bindir)
	PGDATA=$RUN/pgdata
	SOCK=$RUN/sock
	export PGHOST=$SOCK PGPORT=$PORT PGUSER=$RUNNER
	unset PGDATABASE PGPASSWORD PGSERVICE
}

as_runner() {
	if [ $IS_ROOT -eq 1 ]; then
		runuser -u "$RUNNER" -- env PATH="$PGBIN:$PATH" "$@"
	else
		env PATH="$PGBIN:$PATH" "$@"
	fi
}

# Settings every start enforces, also on a cluster an older dev.sh made:
# dsl_rec preloaded, so that served models are shared (docs/serving.md).
cluster_conf() {
	echo "shared_preload_libraries = 'dsl_rec'" | as_runner tee "$PGDATA/dsl_rec.conf" >/dev/null
	grep -q "^include_if_exists = 'dsl_rec.conf'" "$PGDATA/postgresql.conf" ||
		echo "include_if_exists = 'dsl_rec.conf'" | as_runner tee -a "$PGDATA/postgresql.conf" >/dev/null
}

start() {
	setup_runner
	if [ -f "$PGDATA/postmaster.pid" ] && as_runner pg_ctl -D "$PGDATA" status >/dev/null 2>&1; then
		if "$PGBIN/psql" -X -At -h "$SOCK" -p "$PORT" -U "$RUNNER" -d postgres \
			-c 'SHOW shared_preload_libraries' 2>/dev/null | grep -q dsl_rec; then
			log "reusing the private cluster on port $PORT ($PGDATA)"
			return 0
		fi
		log "restarting the private cluster to preload dsl_rec"
		cluster_conf
		as_runner pg_ctl -D "$PGDATA" -l "$RUN/server.log" -w -t 60 restart >/dev/null ||
			{ tail -20 "$RUN/server.log" >&2; die "server did not restart"; }
		return 0
	fi
	if [ ! -f "$PGDATA/PG_VERSION" ]; then
		log "creating a private cluster in $PGDATA"
		as_runner mkdir -p "$SOCK"
		as_runner initdb -D "$PGDATA" -A trust -U "$RUNNER" -E UTF8 --locale=C.UTF-8 >/dev/null
		cat >>"$PGDATA/postgresql.conf" <<-EOF
			# dsl_rec private cluster
			port = $PORT
			listen_addresses = ''
			unix_socket_directories = '$SOCK'
			shared_buffers = 256MB
			maintenance_work_mem = 1GB
			work_mem = 64MB
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			max_wal_size = 4GB
			log_min_messages = warning
			lc_messages = 'C'
		EOF
	fi
	cluster_conf
	as_runner mkdir -p "$SOCK"
	log "starting the private cluster on port $PORT"
	as_runner pg_ctl -D "$PGDATA" -l "$RUN/server.log" -w -t 60 start >/dev/null ||
		{ tail -20 "$RUN/server.log" >&2; die "server did not start"; }
}

stop() {
	detect_pg
	setup_runner
	if [ -f "$PGDATA/postmaster.pid" ]; then
		as_runner pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null && log "stopped"
	else
		log "no private cluster running"
	fi
}

psql_run() { "$PGBIN/psql" -X -v ON_ERROR_STOP=1 "$@"; }

# --- tests ------------------------------------------------------------------
PASSED=0
FAILED=0

run_regress() {
	log "pg_regress"
	rm -rf "$ROOT/results"
	local out rc=0
	out=$(make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" installcheck 2>&1) || rc=$?
	printf '%s\n' "$out"
	local n_ok n_fail
	n_ok=$(printf '%s\n' "$out" | grep -cE '^(ok|test) .* ok( |$)|^ok [0-9]+ ' || true)
	n_fail=$(printf '%s\n' "$out" | grep -cE 'FAILED|^not ok' || true)
	if [ $rc -ne 0 ]; then
		[ "$n_fail" -eq 0 ] && n_fail=1
		[ -f "$ROOT/regression.diffs" ] && head -200 "$ROOT/regression.diffs"
	fi
	PASSED=$((PASSED + n_ok))
	FAILED=$((FAILED + n_fail))
}

run_tap() {
	local tests=("$ROOT"/test/t/*.pl)
	[ -e "${tests[0]}" ] || return 0
	log "TAP tests (PostgreSQL::Test::Cluster)"
	local tapdir=$RUN/tap
	rm -rf "$tapdir"
	as_runner mkdir -p "$tapdir"
	local perllib
	perllib=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/perl
	local out rc=0
	# Run as the unprivileged user from a directory it owns (initdb refuses
	# root); the test scripts are read from the repository or a copy.
	local tdir=$ROOT/test/t
	if [ $IS_ROOT -eq 1 ] && ! runuser -u "$RUNNER" -- test -r "$tdir/$(basename "${tests[0]}")"; then
		cp -r "$ROOT/test/t" "$tapdir/t"
		chown -R "$RUNNER" "$tapdir/t"
		tdir=$tapdir/t
	fi
	out=$(cd "$tapdir" && as_runner env TESTDIR="$tapdir" PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
		DSL_ROOT="$ROOT" PG_CONFIG="$PG_CONFIG" \
		prove -I "$perllib" -I "$ROOT/test/perl" "$tdir"/*.pl 2>&1) || rc=$?
	printf '%s\n' "$out"
	local files_ok files_fail
	files_ok=$(printf '%s\n' "$out" | grep -cE '\.pl \.+ ok' || true)
	files_fail=$(printf '%s\n' "$out" | grep -cE '\.pl \.+ (Failed|Dubious)|\.pl \.+ *$' || true)
	if [ $rc -ne 0 ]; then
		[ "$files_fail" -eq 0 ] && files_fail=1
		for f in "$tapdir"/tmp_check/log/regress_log_*; do
			[ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; }
		done
	fi
	PASSED=$((PASSED + files_ok))
	FAILED=$((FAILED + files_fail))
}

# --- Citus, for test/t/009_citus.pl ----------------------------------------
# Third-party (AGPL-3.0), never part of the extension: built from the
# vendored release when it is there, into build/citus (ignored, reused while
# present), and installed into this server's library directory.  Without the
# tarball the test skips itself and says why.
citus_tarball() { echo "${DSL_VENDOR:-$ROOT/../shared/vendor}/citus-13.0.5.tar.gz"; }

citus_install() {
	local tarball pkglibdir dir=$ROOT/build/citus
	tarball=$(citus_tarball)
	pkglibdir=$("$PG_CONFIG" --pkglibdir)
	[ -f "$pkglibdir/citus.so" ] && return 0
	if [ ! -f "$tarball" ]; then
		log "Citus: no $tarball, so the Citus test will skip"
		return 0
	fi
	if [ ! -f "$dir/citus-13.0.5/src/backend/distributed/citus.so" ]; then
		log "building Citus 13.0.5 from $tarball in build/citus (about 2 minutes)"
		rm -rf "$dir"
		mkdir -p "$dir"
		if ! tar -xzf "$tarball" -C "$dir" ||
			! (cd "$dir/citus-13.0.5" &&
				./configure --without-libcurl PG_CONFIG="$PG_CONFIG" >"$dir/configure.log" 2>&1 &&
				make -j"$(nproc)" with_llvm=no >"$dir/make.log" 2>&1); then
			echo "not ok: Citus build (see $dir/configure.log and $dir/make.log)"
			FAILED=$((FAILED + 1))
			return 0
		fi
	fi
	if [ ! -w "$pkglibdir" ]; then
		echo "not ok: Citus install (cannot write $pkglibdir; run as root)"
		FAILED=$((FAILED + 1))
		return 0
	fi
	make -C "$dir/citus-13.0.5" -s with_llvm=no install >"$dir/install.log" 2>&1 || {
		echo "not ok: Citus install (see $dir/install.log)"
		FAILED=$((FAILED + 1))
	}
}

# One check that is a make target: counts as one test, passed or failed.
run_make_check() {
	local title=$1 label=$2 dir=$3 target=$4 hint=$5
	log "$title"
	if make -C "$ROOT/$dir" -s "$target" PG_CONFIG="$PG_CONFIG"; then
		echo "ok: $label"
		PASSED=$((PASSED + 1))
	else
		echo "not ok: $label${hint:+ ($hint)}"
		FAILED=$((FAILED + 1))
	fi
}

run_fuzz_smoke() {
	run_make_check "fuzz smoke run (libFuzzer, 20,000 inputs per harness)" \
		"fuzz smoke" test/fuzz smoke "see test/fuzz/build/smoke-*.log"
}

run_unit() {
	run_make_check "unit checks (test/unit: lazy Adam + catch-up against dense Adam)" \
		"unit checks" test/unit run ""
}

run_deps_check() {
	log "dependency detection (test/deps_check.sh)"
	local out rc=0
	out=$(bash "$ROOT/test/deps_check.sh" 2>&1) || rc=$?
	printf '%s\n' "$out"
	PASSED=$((PASSED + $(printf '%s\n' "$out" | grep -c '^ok ' || true)))
	local n_fail
	n_fail=$(printf '%s\n' "$out" | grep -c '^not ok ' || true)
	[ $rc -ne 0 ] && [ "$n_fail" -eq 0 ] && n_fail=1
	FAILED=$((FAILED + n_fail))
}

cmd_test() {
	deps
	build
	start
	run_deps_check
	run_regress
	if [ "${1:-}" != regress-only ]; then
		citus_install
		run_tap
		run_unit
		run_fuzz_smoke
	fi
	echo "summary: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

cmd_demo() {
	deps build
	build
	start
	# a fresh database each time: the tour starts from CREATE EXTENSION
	"$PGBIN/dropdb" --if-exists dsl_demo
	"$PGBIN/createdb" dsl_demo
	log "running test/demo.sql in database dsl_demo (psql: $PGBIN/psql -h $PGHOST -p $PGPORT -U $PGUSER dsl_demo)"
	psql_run -d dsl_demo -f "$ROOT/test/demo.sql"
}

cmd_bench() {
	deps bench
	build
	start
	PGBIN=$PGBIN PG_CONFIG=$PG_CONFIG bash "$ROOT/test/bench.sh"
}

cmd_bench_lightgcn() {
	deps bench
	build
	start
	PGBIN=$PGBIN bash "$ROOT/test/bench_lightgcn.sh"
}

case "${1:-}" in
deps) deps "${2:-test}" ;;
missing) detect_pg; missing_packages "${2:-test}" | awk '!seen[$0]++' ;;
build) deps build; build ;;
start) deps build; start ;;
stop) stop ;;
clean) stop; setup_runner; rm -rf "$RUN"; log "removed $RUN" ;;
test) cmd_test ;;
regress) cmd_test regress-only ;;
tap) deps; build; start; citus_install; run_tap; echo "summary: $PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ] ;;
demo) cmd_demo ;;
bench) cmd_bench ;;
bench-lightgcn) cmd_bench_lightgcn ;;
*) die "usage: $0 {deps|missing [build|test|bench]|build|start|stop|clean|test|regress|tap|demo|bench|bench-lightgcn}" ;;
esac
