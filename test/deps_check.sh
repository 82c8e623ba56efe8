#!/usr/bin/env bash
# test/deps_check.sh - tests the dependency detection of test/dev.sh.
#
# `test/dev.sh missing` prints the Debian packages that are missing, one a
# line, and installs nothing.  Here it is pointed at stub pg_config scripts
# whose directories hold, or lack, the files the build and the tests need,
# and at OpenBLAS flags that do or do not find a usable library.  Prints a
# TAP-like "ok N - ..." / "not ok N - ..." line per check and exits non-zero
# when one fails.  Needs only bash, a C compiler and the real OpenBLAS and
# PostgreSQL packages that `make test` has installed before it runs this.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/dsl_rec-depscheck.XXXXXX")
trap 'rm -rf "$T"' EXIT
N=0
FAILS=0

check() { # check DESCRIPTION EXPECTED ACTUAL
	N=$((N + 1))
	if [ "$2" = "$3" ]; then
		echo "ok $N - $1"
	else
		echo "not ok $N - $1"
		printf '#   expected: [%s]\n#   got:      [%s]\n' "$2" "$3"
		FAILS=$((FAILS + 1))
	fi
}

# A fake PostgreSQL installation under $1 that answers pg_config like the
# Debian layout; what exists in it is up to the caller.
make_stub() {
	local d=$1
	mkdir -p "$d/bin" "$d/lib/pgxs/src/makefiles" "$d/include/server"
	cat >"$d/bin/pg_config" <<-STUB
		#!/bin/sh
		case "\$1" in
		--version) echo "PostgreSQL 15.99" ;;
		--bindir) echo "$d/bin" ;;
		--pkglibdir) echo "$d/lib" ;;
		--includedir-server) echo "$d/include/server" ;;
		--pgxs) echo "$d/lib/pgxs/src/makefiles/pgxs.mk" ;;
		--cc) echo "${CC:-gcc}" ;;
		*) exit 1 ;;
		esac
	STUB
	chmod +x "$d/bin/pg_config"
}
# everything the build and the tests look for
complete_stub() {
	local d=$1
	make_stub "$d"
	printf '#!/bin/sh\n' >"$d/bin/postgres"
	printf '#!/bin/sh\n' >"$d/bin/initdb"
	printf '#!/bin/sh\n' >"$d/bin/pgbench"
	chmod +x "$d/bin/postgres" "$d/bin/initdb" "$d/bin/pgbench"
	touch "$d/lib/pgxs/src/makefiles/pgxs.mk" "$d/include/server/postgres.h"
	mkdir -p "$d/lib/pgxs/src/test/regress" "$d/lib/pgxs/src/test/perl/PostgreSQL/Test"
	printf '#!/bin/sh\n' >"$d/lib/pgxs/src/test/regress/pg_regress"
	chmod +x "$d/lib/pgxs/src/test/regress/pg_regress"
	touch "$d/lib/pgxs/src/test/perl/PostgreSQL/Test/Cluster.pm"
	touch "$d/lib/libpgcommon_shlib.a" "$d/lib/libpgport_shlib.a"
	touch "$d/lib/pg_cron.so"
}
# No Citus tarball unless a check asks for one: what the machine has in
# ../shared/vendor and /usr/include must not change the answers.
mkdir -p "$T/novendor" "$T/vendor" "$T/noinc" "$T/inc"
touch "$T/vendor/citus-13.0.5.tar.gz" "$T/inc/zstd.h" "$T/inc/lz4.h" "$T/inc/krb5.h"
missing() { # missing STUBDIR [build|test] -> the list on one line
	local d=$1
	shift
	env PG_CONFIG="$d/bin/pg_config" DSL_VENDOR="${DSL_VENDOR:-$T/novendor}" \
		DSL_SYSINCLUDE="${DSL_SYSINCLUDE:-$T/noinc}" bash "$ROOT/test/dev.sh" missing "$@" 2>&1 | tr '\n' ' ' | sed 's/ $//'
}

# 1. the reported bug: pgxs.mk present (it ships with the client package)
#    but no postgres.h (it ships with server-dev)
complete_stub "$T/nohdr"
rm "$T/nohdr/include/server/postgres.h"
check "server headers missing although pgxs.mk exists: server-dev reported" \
	"postgresql-server-dev-15" "$(missing "$T/nohdr" build)"

# 2. everything present: nothing reported, for the build and for the tests
complete_stub "$T/full"
check "complete installation: nothing missing for the build" "" "$(missing "$T/full" build)"
check "complete installation: nothing missing for the tests" "" "$(missing "$T/full" test)"

# 3. the client's files: pgxs.mk, pg_regress, the TAP modules
complete_stub "$T/noclient"
rm "$T/noclient/lib/pgxs/src/makefiles/pgxs.mk"
check "pgxs.mk missing: client package reported" "postgresql-client-15" "$(missing "$T/noclient" build)"
complete_stub "$T/nopgregress"
rm "$T/nopgregress/lib/pgxs/src/test/regress/pg_regress"
check "pg_regress missing: client reported for the tests only" \
	"|postgresql-client-15" "$(missing "$T/nopgregress" build)|$(missing "$T/nopgregress" test)"

# 4. no server binaries
complete_stub "$T/noserver"
rm "$T/noserver/bin/postgres"
check "postgres binary missing: server package reported" "postgresql-15" "$(missing "$T/noserver" build)"

# 5. the static libraries the fuzz harnesses link
complete_stub "$T/nostatic"
rm "$T/nostatic/lib/libpgcommon_shlib.a"
check "libpgcommon_shlib.a missing: server-dev reported for the tests" \
	"postgresql-server-dev-15" "$(missing "$T/nostatic" test)"

# 6. pg_cron, for the scheduled-continuation TAP test only
complete_stub "$T/nocron"
rm "$T/nocron/lib/pg_cron.so"
check "pg_cron missing: postgresql-15-cron reported for the tests only" \
	"|postgresql-15-cron" "$(missing "$T/nocron" build)|$(missing "$T/nocron" test)"

# 7. Citus, for the Citus TAP test: built from the vendored tarball when
#    its library is not installed, which needs three more -dev packages
check "Citus tarball, no citus.so, no headers: its build packages reported for the tests only" \
	"|libzstd-dev liblz4-dev libkrb5-dev" \
	"$(DSL_VENDOR=$T/vendor missing "$T/full" build)|$(DSL_VENDOR=$T/vendor missing "$T/full" test)"
check "Citus tarball, headers present: nothing reported" \
	"" "$(DSL_VENDOR=$T/vendor DSL_SYSINCLUDE=$T/inc missing "$T/full" test)"
complete_stub "$T/citus"
touch "$T/citus/lib/citus.so"
check "Citus tarball, citus.so installed: no build packages reported" \
	"" "$(DSL_VENDOR=$T/vendor missing "$T/citus" test)"

# 8. OpenBLAS found by compiling and linking with the Makefile's flags:
#    a header directory without cblas.h, or a library that does not exist
mkdir -p "$T/badinc"
printf '#error not the OpenBLAS header\n' >"$T/badinc/cblas.h"
check "OpenBLAS header unusable with OPENBLAS_CFLAGS: libopenblas-dev reported" \
	"libopenblas-dev" "$(OPENBLAS_CFLAGS="-I$T/badinc" missing "$T/full" build)"
check "OpenBLAS library not found with OPENBLAS_LIBS: libopenblas-dev reported" \
	"libopenblas-dev" "$(OPENBLAS_LIBS=-lno_such_blas_library missing "$T/full" build)"

# 9. a PG_CONFIG that names nothing: a clear error, not a guess
out=$(env PG_CONFIG="$T/none/bin/pg_config" bash "$ROOT/test/dev.sh" missing 2>&1)
rc=$?
check "PG_CONFIG naming no executable: exit 1 with a message" \
	"1|error: PG_CONFIG names no executable pg_config" "$rc|$out"

# 10. not root: `dev.sh deps` prints the one apt-get line and stops before
#    any build step (as root, checked as the unprivileged user nobody)
chmod 755 "$T"
if [ "$(id -u)" -eq 0 ]; then
	as_user() { runuser -u nobody -- "$@"; }
else
	as_user() { "$@"; }
fi
# (a copy of dev.sh: the clone may sit where that user cannot read)
cp "$ROOT/test/dev.sh" "$T/dev.sh"
chmod 644 "$T/dev.sh"
out=$(cd / && as_user env PG_CONFIG="$T/nohdr/bin/pg_config" bash "$T/dev.sh" deps build 2>&1)
rc=$?
check "not root: one apt-get line, exit 1, nothing built" \
	"1|error: missing packages; run as root:  apt-get install -y --no-install-recommends postgresql-server-dev-15" \
	"$rc|$out"

echo "# $N checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
