#!/usr/bin/env bash
# test/dev.sh - the developer workflow behind `make demo`, `make test`,
# `make bench`, `make stop` and `make clean-cluster`.
#
#   deps    install what is missing (Debian packages; as root only, otherwise
#           print the exact command and stop)
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
# server found under /usr/lib/postgresql), CI=true adds -Werror to the build.
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
		PGMAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
		return
	fi
	PGMAJOR=""
	for d in /usr/lib/postgresql/*/bin/postgres; do
		[ -x "$d" ] || continue
		v=$(basename "$(dirname "$(dirname "$d")")")
		if [ -z "$PGMAJOR" ] || [ "$v" -gt "$PGMAJOR" ]; then PGMAJOR=$v; fi
	done
	if [ -n "$PGMAJOR" ]; then
		PG_CONFIG=/usr/lib/postgresql/$PGMAJOR/bin/pg_config
	elif command -v pg_config >/dev/null; then
		PG_CONFIG=$(command -v pg_config)
		PGMAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
	else
		die "no PostgreSQL server found; install one first (Debian: apt-get install postgresql)"
	fi
}

# --- dependencies -----------------------------------------------------------
deps() {
	detect_pg
	local missing=()
	if [ ! -x "$PG_CONFIG" ] || [ ! -f "$("$PG_CONFIG" --pgxs 2>/dev/null || echo /nonexistent)" ]; then
		missing+=("postgresql-server-dev-$PGMAJOR")
	fi
	command -v pkg-config >/dev/null || missing+=(pkg-config)
	if ! pkg-config --exists openblas 2>/dev/null; then missing+=(libopenblas-dev); fi
	perl -MIPC::Run -e 1 2>/dev/null || missing+=(libipc-run-perl)
	command -v prove >/dev/null || missing+=(perl)
	# the fuzz smoke run (test/fuzz) needs clang's libFuzzer runtime
	command -v clang >/dev/null || missing+=(clang)
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
		missing+=(libclang-rt-14-dev)
	if [ "${1:-}" = bench ]; then
		command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
		command -v pgbench >/dev/null || missing+=("postgresql-contrib")
	fi
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ $IS_ROOT -eq 1 ]; then
		log "installing: ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		die "missing packages; run as root:  apt-get install -y ${missing[*]}"
	fi
	# pg_config may only now exist
	[ -x "$PG_CONFIG" ] || die "pg_config not found at $PG_CONFIG after installing"
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

start() {
	setup_runner
	if [ -f "$PGDATA/postmaster.pid" ] && as_runner pg_ctl -D "$PGDATA" status >/dev/null 2>&1; then
		log "reusing the private cluster on port $PORT ($PGDATA)"
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

run_fuzz_smoke() {
	log "fuzz smoke run (libFuzzer, 20,000 inputs per harness)"
	if make -C "$ROOT/test/fuzz" -s smoke PG_CONFIG="$PG_CONFIG"; then
		echo "ok: fuzz smoke"
		PASSED=$((PASSED + 1))
	else
		echo "not ok: fuzz smoke (see test/fuzz/build/smoke-*.log)"
		FAILED=$((FAILED + 1))
	fi
}

cmd_test() {
	deps
	build
	start
	run_regress
	if [ "${1:-}" != regress-only ]; then
		run_tap
		run_fuzz_smoke
	fi
	echo "summary: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

cmd_demo() {
	deps
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

case "${1:-}" in
deps) deps ;;
build) deps; build ;;
start) deps; start ;;
stop) stop ;;
clean) stop; setup_runner; rm -rf "$RUN"; log "removed $RUN" ;;
test) cmd_test ;;
regress) cmd_test regress-only ;;
tap) deps; build; start; run_tap; echo "summary: $PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ] ;;
demo) cmd_demo ;;
bench) cmd_bench ;;
*) die "usage: $0 {deps|build|start|stop|clean|test|regress|tap|demo|bench}" ;;
esac
