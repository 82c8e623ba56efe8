#!/usr/bin/env bash
# test/bench_lightgcn.sh - `make bench-lightgcn`: LightGCN with its defaults,
# trained to the end on Gowalla (LightGCN split).
#
# Each run is one call dsl.train(name, 'gowalla_train', model_type =>
# 'lightgcn', density => d, seed => 1) with nothing else: the stopping rule
# on its own hold-out, the refit when it fits in max_seconds (3600), no test
# data before dsl.evaluate afterwards.  The runs take 35-55 minutes each on
# the project's 2-core machine, so they are not part of `make bench`.  The
# report is its own section of docs/benchmarks.md (between the markers
# "<!-- bench-lightgcn -->" and "<!-- /bench-lightgcn -->", which `make
# bench` keeps) and a plot, docs/img/lightgcn_curve.png: validation
# Recall@20 against wall time, the test Recall@20 of each stored model and
# the published LightGCN figure.
#
# Run through `make bench-lightgcn` (test/dev.sh builds, starts the private
# cluster and exports PGHOST/PGPORT/PGUSER and PGBIN).
#
# Environment:
#   DSL_DATA              data directory (default ../shared/data); skips
#                         with a message when Gowalla is absent
#   BENCH_LGCN_DENSITIES  DSL densities (default "1.0 0.5 0.2")
#   BENCH_LGCN_STATIC     densities of the static-mask baseline (default none)
#   BENCH_LGCN_OUT        results directory (default .run/bench_lightgcn)
#   BENCH_LGCN_MAX_EPOCHS a smoke run of the pipeline: options => '{"max_epochs":
#                         N}' (the report says so; docs/ is then left alone)
#   BENCH_DOCS=0          leave docs/ alone (the report stays in the results)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/test/bench
SEED=1
K=20
DENSITIES=${BENCH_LGCN_DENSITIES:-1.0 0.5 0.2}
STATIC=${BENCH_LGCN_STATIC:-}
OUT=${BENCH_LGCN_OUT:-$ROOT/.run/bench_lightgcn}
DB=dsl_bench_lightgcn
MAX_EPOCHS=${BENCH_LGCN_MAX_EPOCHS:-}
capped=false
options='{}'
if [ -n "$MAX_EPOCHS" ]; then
	capped=true
	options="{\"max_epochs\": $MAX_EPOCHS}"
fi

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

DATA=${DSL_DATA:-$ROOT/../shared/data}
if [ ! -f "$DATA/gowalla/train.txt" ] || [ ! -f "$DATA/gowalla/test.txt" ]; then
	echo "bench-lightgcn: $DATA/gowalla/{train,test}.txt not found (set DSL_DATA); skipping"
	exit 0
fi
DATA=$(cd "$DATA" && pwd)
[ -n "${PGBIN:-}" ] || die "PGBIN not set (run through: make bench-lightgcn)"
: "${PGHOST:?PGHOST not set (run through: make bench-lightgcn)}"
command -v gnuplot >/dev/null || die "gnuplot not found (Debian: gnuplot-nox)"
psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

rm -rf "$OUT"
mkdir -p "$OUT/runs" "$OUT/report/img"
"$PGBIN/dropdb" --if-exists --force "$DB" >/dev/null 2>&1 || die "cannot drop database $DB"
"$PGBIN/createdb" "$DB"
psql_db -f "$BENCH/setup.sql" >"$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log" >&2; die "setup failed"; }
psql_db -v datadir="$DATA/gowalla" -v prefix=gowalla -f "$BENCH/load_lightgcn_split.sql" \
	>"$OUT/load.log" 2>&1 || { cat "$OUT/load.log" >&2; die "loading gowalla failed"; }
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "cores=$(nproc)"
	echo "threads=$(psql_db -Atc "LOAD 'dsl_rec'; SELECT current_setting('dsl_rec.threads', true)")"
	echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "seed=$SEED"
	echo "max_epochs=$MAX_EPOCHS"
} >"$OUT/machine.txt"

echo "run,density,sparsity,status,wall_seconds,load_avg_after" >"$OUT/runs.csv"
configs=""
for d in $DENSITIES; do configs="$configs $d:dynamic"; done
for d in $STATIC; do configs="$configs $d:static"; done
for c in $configs; do
	d=${c%%:*}
	sp=${c##*:}
	run="gowalla_lightgcn_d${d}_${sp}"
	dir=$OUT/runs/$run
	mkdir -p "$dir"
	log "$run: dsl.train(..., model_type => 'lightgcn', density => $d$([ "$sp" = static ] && echo ", sparsity => 'static'"), seed => $SEED)"
	t0=$(now)
	status=ok
	psql_db --csv -v outdir="$dir" -v model="$run" -v source=gowalla_train -v test=gowalla_test \
		-v model_type=lightgcn -v density="$d" -v sparsity="$sp" -v seed="$SEED" -v capped="$capped" \
		-v options="$options" -v k="$K" -f "$BENCH/train_defaults.sql" >"$dir/psql.log" 2>&1 || status=failed
	wall=$(elapsed "$t0" "$(now)")
	echo "$run,$d,$sp,$status,$wall,$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/runs.csv"
	log "  $status in ${wall}s: $(grep -E '^recall,' "$dir/eval.csv" 2>/dev/null || true)"
done

python3 "$BENCH/report_lightgcn.py" "$OUT" "$OUT/report" || die "report generation failed"
if [ "${BENCH_DOCS:-1}" = 1 ] && [ -z "$MAX_EPOCHS" ]; then
	python3 "$BENCH/report_lightgcn.py" --merge "$OUT/report/section.md" "$ROOT/docs/benchmarks.md"
	cp "$OUT/report/img/lightgcn_curve.png" "$ROOT/docs/img/"
	log "wrote its section of docs/benchmarks.md and docs/img/lightgcn_curve.png"
else
	log "report in $OUT/report/section.md (docs/ left alone: BENCH_DOCS=0 or a smoke run)"
fi
