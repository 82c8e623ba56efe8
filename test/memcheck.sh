#!/usr/bin/env bash
# test/memcheck.sh - run pg_regress suites against a throwaway PostgreSQL
# server started under Valgrind (memcheck) and report the invalid reads and
# writes, uses of uninitialised memory and definite leaks that have a dsl_rec
# frame in their stack.  Not part of `make test`: it takes minutes.
#
#   test/memcheck.sh                 the default subset (see SUITES below)
#   test/memcheck.sh --full          every suite of the Makefile's REGRESS
#   test/memcheck.sh spvec_ops ...   the named suites
#
# Environment: PG_CONFIG (default: the newest server under /usr/lib/postgresql),
# MEMCHECK_PORT (default 55491), MEMCHECK_KEEP=1 keeps the work directory,
# MEMCHECK_LEAK_KINDS (default "definite"; "all" also reports the memory
# still reachable at exit, which shows that dsl_rec frames are recognised:
# the serving cache's blocks are allocated under dsl_rec functions).
# As root, the server runs as the unprivileged user "postgres".
#
# The server binaries are the distribution's: PostgreSQL is not built with
# USE_VALGRIND, so Valgrind sees malloc'd blocks, not palloc chunks.  Every
# allocation larger than a memory context's chunk limit (8 kB) is its own
# malloc block and is checked exactly; overruns inside a context block are
# not seen.  Memory that dsl_rec mallocs itself (worker threads, OpenBLAS)
# is checked exactly.
#
# Exit status: 0 when no report involves dsl_rec and every suite passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${MEMCHECK_PORT:-55491}
LEAK_KINDS=${MEMCHECK_LEAK_KINDS:-definite}

# The default subset: everything but the long training suites (train_mf and
# train_lightgcn run tens of epochs; under Valgrind they take most of an
# hour).  Training, storage, serving, evaluation and the spvec type are all
# exercised by these.
SUITES="spvec_input spvec_ops spvec_copy train_args train_storage recommend evaluate identifiers bad_calls security"

die() { printf 'memcheck: %s\n' "$*" >&2; exit 2; }
log() { printf '==> %s\n' "$*" >&2; }

if [ "${1:-}" = --full ]; then
	# the REGRESS list of the Makefile (a backslash-continued assignment)
	SUITES=$(sed -n '/^REGRESS *=/,/[^\\]$/p' "$ROOT/Makefile" | sed 's/^REGRESS *=//' | tr -d '\\' | xargs)
	shift
elif [ $# -gt 0 ]; then
	SUITES="$*"
fi

if [ -z "${PG_CONFIG:-}" ]; then
	PG_CONFIG=$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -1)
fi
[ -x "${PG_CONFIG:-}" ] || die "pg_config not found; set PG_CONFIG"
command -v valgrind >/dev/null || die "valgrind is not installed (Debian: apt-get install valgrind)"
PGBIN=$("$PG_CONFIG" --bindir)
PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress

# build and install the extension (debug info is on: PGXS compiles with -g)
make -s -C "$ROOT" PG_CONFIG="$PG_CONFIG" all >/dev/null
if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
	make -s -C "$ROOT" PG_CONFIG="$PG_CONFIG" install >/dev/null
else
	log "cannot write $("$PG_CONFIG" --pkglibdir); using the dsl_rec already installed there"
fi

if [ "$(id -u)" -eq 0 ]; then
	RUNNER=postgres
	as_runner() { runuser -u "$RUNNER" -- "$@"; }
else
	RUNNER=$(id -un)
	as_runner() { "$@"; }
fi

WORK=$(mktemp -d /tmp/dsl_memcheck.XXXXXX)
chmod 755 "$WORK"
[ "$(id -u)" -eq 0 ] && chown "$RUNNER" "$WORK"
DATA=$WORK/data
VGLOG=$WORK/valgrind
as_runner mkdir -p "$VGLOG" "$WORK/sock"
SERVER_PID=""

cleanup() {
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		as_runner "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t 300 stop >/dev/null 2>&1 || kill -9 "$SERVER_PID" 2>/dev/null || true
	fi
	if [ "${MEMCHECK_KEEP:-0}" = 1 ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

log "throwaway cluster in $DATA"
as_runner "$PGBIN/initdb" -D "$DATA" -A trust -U "$RUNNER" -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$DATA/postgresql.conf" <<-EOF
	port = $PORT
	listen_addresses = ''
	unix_socket_directories = '$WORK/sock'
	max_connections = 20
	shared_buffers = 32MB
	huge_pages = off
	fsync = off
	autovacuum = off
	maintenance_work_mem = 256MB
	lc_messages = 'C'
	log_min_messages = warning
EOF

log "starting postgres under valgrind (logs: $VGLOG)"
# OpenBLAS picks its kernels from CPUID; Valgrind emulates AVX2 but not AVX-512.
as_runner env OPENBLAS_CORETYPE=Haswell \
	valgrind --quiet --trace-children=yes --track-origins=yes --num-callers=40 \
	--leak-check=full --show-leak-kinds="$LEAK_KINDS" --errors-for-leak-kinds="$LEAK_KINDS" \
	--read-var-info=no --suppressions="$ROOT/test/valgrind.supp" \
	--error-markers=VALGRIND-ERROR-BEGIN,VALGRIND-ERROR-END \
	--log-file="$VGLOG/%p.log" \
	"$PGBIN/postgres" -D "$DATA" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
	"$PGBIN/pg_isready" -q -h "$WORK/sock" -p "$PORT" && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server did not start"; }
	sleep 1
done
"$PGBIN/pg_isready" -q -h "$WORK/sock" -p "$PORT" || die "the server did not start within 300 s"

log "pg_regress: $SUITES"
START=$(date +%s)
REGRESS_RC=0
OURS=0
as_runner "$PG_REGRESS" --inputdir="$ROOT" --outputdir="$WORK/regress" --bindir="$PGBIN" \
	--host="$WORK/sock" --port="$PORT" --user="$RUNNER" --load-extension=dsl_rec \
	--dbname=contrib_regression $SUITES || REGRESS_RC=$?
log "pg_regress took $(( $(date +%s) - START )) s"
[ $REGRESS_RC -eq 0 ] || { [ -f "$WORK/regress/regression.diffs" ] && head -100 "$WORK/regress/regression.diffs"; }

log "stopping the server (backends write their leak reports at exit)"
as_runner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 600 stop >/dev/null
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

# Split every log into reports; a report involves dsl_rec when a frame is in
# dsl_rec.so or in one of its source files.
SRCS=$(cd "$ROOT/src" && ls *.c | sed 's/\.c$//' | paste -sd'|')
perl -e '
	my ($srcs, @files) = @ARGV;
	my $ours = qr{dsl_rec\.so|\b(?:$srcs)\.c:\d+};
	my (%kind, $total, $ourn, @show);
	for my $f (@files) {
		open my $fh, "<", $f or next;
		my ($in, $block) = (0, "");
		while (<$fh>) {
			if (/VALGRIND-ERROR-BEGIN/) { ($in, $block) = (1, ""); next; }
			if (/VALGRIND-ERROR-END/) {
				$in = 0; $total++;
				next unless $block =~ $ours;
				$ourn++;
				my ($what) = $block =~ /==\d+== (\S[^\n]*)/;
				$what =~ s/ of size \d+//; $what =~ s/ in loss record .*//;
				$what =~ s/^.*?\d[\d,]* blocks/N blocks/;
				$kind{$what}++;
				push @show, "--- $f\n$block" if @show < 20;
				next;
			}
			$block .= $_ if $in;
		}
	}
	printf "valgrind reports: %d in all, %d involving dsl_rec\n", $total // 0, $ourn // 0;
	printf "  %4d  %s\n", $kind{$_}, $_ for sort keys %kind;
	print @show;
	exit($ourn ? 1 : 0);
' "$SRCS" "$VGLOG"/*.log >"$WORK/summary.txt" || OURS=$?
cat "$WORK/summary.txt"
NLOGS=$(ls "$VGLOG" | wc -l)
log "$NLOGS processes ran under valgrind; suites: $SUITES"
if [ $REGRESS_RC -ne 0 ]; then
	log "pg_regress FAILED under valgrind"
fi
if [ "$OURS" -ne 0 ]; then
	log "memcheck FAILED: reports involving dsl_rec above"
	MEMCHECK_KEEP=1
fi
[ $REGRESS_RC -eq 0 ] && [ "$OURS" -eq 0 ]
