#!/usr/bin/env bash
# test/bench.sh - the benchmark suite behind `make bench`.
#
# Trains every model type dsl.train() knows on the real data sets (Gowalla
# LightGCN split, MovieLens-1M with a seeded per-user 80/20 split, Last.fm
# LightGCN-PyTorch split) at several densities, measures quality, training
# speed, peak memory and storage; trains MF with the defaults alone (no
# tuning, no test data for stopping); times MF epochs against the implicit
# library's CPU BPR pair by pair; then serving latency (pgbench) and
# recommend_all, and writes docs/benchmarks.md with plots under docs/img/.
#
# Run through `make bench` (test/dev.sh builds, starts the private cluster and
# exports PGHOST/PGPORT/PGUSER, PGBIN and PG_CONFIG).  Never part of `make test`.
#
# Environment:
#   DSL_DATA        data directory (default: ../shared/data next to the repo);
#                   the bench skips with a message when it is absent
#   BENCH_QUICK=1   day-to-day mode, a few minutes: Gowalla MF only, few epochs,
#                   densities 1.0/0.5/0.2 + static 0.2, the defaults at 1.0/0.5
#                   capped at 4 epochs, 3 short pairs against implicit (its
#                   first build adds about 2 minutes), 5 s pgbench runs
#   BENCH_DB        database to (re)create for the bench (default dsl_bench)
#   BENCH_OUT       results directory (default .run/bench)
#   BENCH_DOCS=0|1  copy the report to docs/ (default: 1 for a full run, 0 for
#                   QUICK; the report is always in $BENCH_OUT/report/)
#   BENCH_DATASETS, BENCH_MODELS, BENCH_DENSITIES, BENCH_STATIC_DENSITIES,
#   BENCH_EPOCHS, BENCH_PGBENCH_SECONDS  override the lists/values below
#   BENCH_DEFAULTS_DATASETS, BENCH_DEFAULTS_DENSITIES  the "defaults" block
#                   (data sets among those loaded, densities; empty skips it)
#   BENCH_VS_IMPLICIT=0  skip the paired timing against implicit's BPR;
#   BENCH_VS_PAIRS, BENCH_VS_EPOCHS  its pairs and epochs per block
#   BENCH_FRESH=0   skip the "keeping fresh" block (continuation vs retraining)
#   BENCH_FOLD=0    skip the "new users" block (fold-in; MovieLens-1M strong
#                   generalization)
#   BENCH_SCALE=0   skip "serving vs catalogue size and density" (synthetic
#                   models up to 2M items)
#   BENCH_SERVE_VAE=0/1  skip / run the Gowalla MultVAE serving models (run
#                   by default in full runs, skipped in quick ones)
#   BENCH_SERVE_NEUMF=0/1  the same for the Gowalla NeuMF serving models and
#                   NeuMF's epoch time at the authors' shape
#   DSL_VENDOR      folder with implicit-0.7.3.tar.gz and its build script
#                   (default: ../shared/vendor next to the repo); the paired
#                   timing skips with a message without them
#   BENCH_PYTHON    the interpreter for implicit (default /usr/bin/python3,
#                   which Debian's python3-numpy etc. serve)
set -euo pipefail

# ============================================================================
# Settings: everything a run depends on is here.
# ============================================================================
MODEL_TYPES_ALL="mf lightgcn"      # probed at run time; missing ones are reported
# (MultVAE is benchmarked in the strong-generalization block, BENCH_FOLD:
# its Gowalla epoch costs about 45 s dense, see docs/multvae.md)
DATASETS_ALL="gowalla ml1m lastfm"
DENSITIES_ALL="1.0 0.5 0.2 0.1"    # sparsity => 'dynamic' (DSL); 1.0 = dense
STATIC_DENSITIES_ALL="0.2"         # sparsity => 'static' (fixed random mask)
SEED=1                             # training seed
SPLIT_SEED=1                       # dsl.split seed for MovieLens-1M
TEST_FRACTION=0.2
K=20
SERVE_DATASET=gowalla              # pgbench and recommend_all on this model
SERVE_MODEL=mf
SERVE_DENSITIES="1.0 0.5"
SERVE_MORE_DENSITIES="0.2 0.1"     # the grid's SERVE_MODEL models also served here
                                   # (dsl.recommend only: latency at every density)
SERVE_ALSO="lightgcn"              # the grid's models of these types served too, when trained
# A MultVAE trained in the serving block for its serving speed only (the
# Gowalla epoch costs about 40 s; its accuracy is docs/multvae.md's):
# SERVE_VAE_EPOCHS epochs at each of SERVE_DENSITIES (BENCH_SERVE_VAE=0
# skips it; a quick run skips it unless BENCH_SERVE_VAE=1)
SERVE_VAE_EPOCHS=5
QUICK_SERVE_VAE_EPOCHS=2
# The same for NeuMF (defaults otherwise: dim 64, MLP [64, 32, 16, 8]; its
# accuracy is docs/neumf.md's), and NeuMF's epoch time at the shape of the
# authors' NeuMF (GMF 16, MLP [32, 32, 16, 8], the log loss with 4 negatives
# per positive: the scored pairs per epoch of their code; our batch rule)
# over NEUMF_SPEED_EPOCHS epochs at d = NEUMF_SPEED_DENSITY
SERVE_NEUMF_EPOCHS=5
QUICK_SERVE_NEUMF_EPOCHS=2
NEUMF_SPEED_DIM=16
NEUMF_SPEED_OPTIONS='{"mlp_layers": [32, 32, 16, 8], "loss": "log", "negatives": 4}'
NEUMF_SPEED_DENSITY=0.5
NEUMF_SPEED_EPOCHS=4
SCALE_ITEMS="10000 100000 1000000 2000000"   # synthetic catalogues (serve_scale.sql)
SCALE_DENSITIES="1.0 0.5 0.2 0.1"
QUICK_SCALE_ITEMS="10000 100000"
QUICK_SCALE_DENSITIES="1.0 0.2"
PGBENCH_CLIENTS="1 2"
SPEED_DATASET=gowalla              # training-speed repeats (interleaved densities)
SPEED_MODEL=mf
SPEED_DENSITIES="1.0 0.5"
SPEED_REPS=3
SPEED_EPOCHS=10                    # MF default: DSL rounds after epochs 2, 4, 6, 8
PGBENCH_SECONDS=10
PGBENCH_WARMUP_SECONDS=3
# The "defaults" block: per loaded data set, MF trained with
#   dsl.train(name, '<ds>_train', density => d, seed => SEED)
# and nothing else (epochs NULL = the stopping rule on its own seeded
# hold-out of the training pairs; no validation relation, so no test pair
# decides when to stop), then evaluated on the test split.
DEFAULTS_MODEL=mf
DEFAULTS_DENSITIES_ALL="1.0 0.5 0.2 0.1"
# Paired timing against the implicit library's CPU BPR (built from its
# source tarball for this comparison only): P pairs of a K-epoch implicit
# block and a K-epoch dsl.train (defaults otherwise) on Gowalla, the order
# alternating, both with VS_THREADS threads and 64 factors.
VS_DATASET=gowalla                 # the script reads the LightGCN split format
VS_DENSITY=0.5
VS_FACTORS=64
VS_THREADS=2
VS_PAIRS=5
VS_EPOCHS=10                       # MF default: DSL rounds after epochs 2, 4, 6, 8
IMPLICIT_TARBALL_NAME=implicit-0.7.3.tar.gz
IMPLICIT_SETUP_NAME=implicit-build_setup.py

# Per data set and model type.  update_interval NULL = one DSL round per
# epoch; options is the jsonb passed to dsl.train (model-specific keys).
# dataset model     dim batch lr     reg   epochs eval_every update_interval options
SETTINGS_FULL='
gowalla  mf        64  2048  0.002  0.01  30     5          NULL            {}
gowalla  lightgcn  64  8192  0.005  1e-4  8      2          NULL            {"layers":3}
ml1m     mf        64  2048  0.002  0.01  20     5          NULL            {}
ml1m     lightgcn  64  8192  0.005  1e-4  6      2          NULL            {"layers":3}
lastfm   mf        64  2048  0.002  0.01  100    10         NULL            {}
lastfm   lightgcn  64  8192  0.005  1e-4  60     10         NULL            {"layers":3}
'
SETTINGS_QUICK='
gowalla  mf        64  2048  0.002  0.01  4      2          NULL            {}
'
QUICK_DATASETS="gowalla"
QUICK_MODELS="mf"
QUICK_DENSITIES="1.0 0.5 0.2"
QUICK_STATIC_DENSITIES="0.2"
QUICK_PGBENCH_SECONDS=5
QUICK_PGBENCH_WARMUP_SECONDS=1
QUICK_SPEED_REPS=2
QUICK_SPEED_EPOCHS=4
QUICK_DEFAULTS_DATASETS="gowalla"
QUICK_DEFAULTS_DENSITIES="1.0 0.5"
QUICK_DEFAULTS_MAX_EPOCHS=4        # QUICK only: options => '{"max_epochs": 4}'
QUICK_VS_PAIRS=3
QUICK_VS_EPOCHS=4
# "New users": MF with the defaults on the DSL reference's MovieLens-1M
# strong-generalization split (../shared/data/ml-1m/dsl_multvae_pro_sg),
# evaluated by folding in held-out users' histories (test/bench/fold_in.sql).
SG_DENSITIES="1.0 0.5"
QUICK_SG_DENSITIES="1.0"
# "Keeping fresh": yesterday's model (FRESH_EPOCHS epochs at FRESH_DENSITY)
# continued on today's table with warm_start and the defaults, against a
# training from scratch on today's table with yesterday's settings
# (test/bench/keep_fresh.sql has the replay).
FRESH_DATASET=gowalla
FRESH_DENSITY=0.5
FRESH_EPOCHS=60                    # what the stopping rule chose for Gowalla MF
QUICK_FRESH_EPOCHS=6
# ============================================================================

T_START=$(date +%s.%N)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/test/bench

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- data -------------------------------------------------------------------
DATA=${DSL_DATA:-$ROOT/../shared/data}
if [ ! -d "$DATA" ]; then
	echo "bench: data directory $DATA not found (set DSL_DATA); skipping the benchmarks"
	exit 0
fi
DATA=$(cd "$DATA" && pwd)

QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = 0 ] || QUICK=1
if [ "$QUICK" = 1 ]; then
	SETTINGS=$SETTINGS_QUICK
	DATASETS=${BENCH_DATASETS:-$QUICK_DATASETS}
	MODELS=${BENCH_MODELS:-$QUICK_MODELS}
	DENSITIES=${BENCH_DENSITIES:-$QUICK_DENSITIES}
	STATIC_DENSITIES=${BENCH_STATIC_DENSITIES-$QUICK_STATIC_DENSITIES}
	PGBENCH_SECONDS=${BENCH_PGBENCH_SECONDS:-$QUICK_PGBENCH_SECONDS}
	PGBENCH_WARMUP_SECONDS=$QUICK_PGBENCH_WARMUP_SECONDS
	SPEED_REPS=$QUICK_SPEED_REPS
	SPEED_EPOCHS=$QUICK_SPEED_EPOCHS
	DEFAULTS_DATASETS=${BENCH_DEFAULTS_DATASETS-$QUICK_DEFAULTS_DATASETS}
	DEFAULTS_DENSITIES=${BENCH_DEFAULTS_DENSITIES-$QUICK_DEFAULTS_DENSITIES}
	DEFAULTS_MAX_EPOCHS=$QUICK_DEFAULTS_MAX_EPOCHS
	VS_PAIRS=${BENCH_VS_PAIRS:-$QUICK_VS_PAIRS}
	VS_EPOCHS=${BENCH_VS_EPOCHS:-$QUICK_VS_EPOCHS}
	FRESH_EPOCHS=$QUICK_FRESH_EPOCHS
	SG_DENSITIES=$QUICK_SG_DENSITIES
	SCALE_ITEMS=$QUICK_SCALE_ITEMS
	SCALE_DENSITIES=$QUICK_SCALE_DENSITIES
	SERVE_VAE_EPOCHS=$QUICK_SERVE_VAE_EPOCHS
	SERVE_VAE=${BENCH_SERVE_VAE:-0}
	SERVE_NEUMF_EPOCHS=$QUICK_SERVE_NEUMF_EPOCHS
	SERVE_NEUMF=${BENCH_SERVE_NEUMF:-0}
	WRITE_DOCS=${BENCH_DOCS:-0}
else
	SETTINGS=$SETTINGS_FULL
	DATASETS=${BENCH_DATASETS:-$DATASETS_ALL}
	MODELS=${BENCH_MODELS:-$MODEL_TYPES_ALL}
	DENSITIES=${BENCH_DENSITIES:-$DENSITIES_ALL}
	STATIC_DENSITIES=${BENCH_STATIC_DENSITIES-$STATIC_DENSITIES_ALL}
	PGBENCH_SECONDS=${BENCH_PGBENCH_SECONDS:-$PGBENCH_SECONDS}
	DEFAULTS_DATASETS=${BENCH_DEFAULTS_DATASETS-$DATASETS_ALL}
	DEFAULTS_DENSITIES=${BENCH_DEFAULTS_DENSITIES-$DEFAULTS_DENSITIES_ALL}
	DEFAULTS_MAX_EPOCHS=""             # a full run never caps the stopping rule
	VS_PAIRS=${BENCH_VS_PAIRS:-$VS_PAIRS}
	VS_EPOCHS=${BENCH_VS_EPOCHS:-$VS_EPOCHS}
	SERVE_VAE=${BENCH_SERVE_VAE:-1}
	SERVE_NEUMF=${BENCH_SERVE_NEUMF:-1}
	WRITE_DOCS=${BENCH_DOCS:-1}
fi
VS_IMPLICIT=${BENCH_VS_IMPLICIT:-1}
VENDOR=${DSL_VENDOR:-$ROOT/../shared/vendor}
BENCH_PYTHON=${BENCH_PYTHON:-/usr/bin/python3}

# --- tools and connection ---------------------------------------------------
if [ -z "${PGBIN:-}" ]; then
	PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || true)}
	[ -n "$PG_CONFIG" ] || die "set PGBIN or PG_CONFIG (run through: make bench)"
	PGBIN=$("$PG_CONFIG" --bindir)
fi
[ -x "$PGBIN/psql" ] || die "no psql in $PGBIN"
PGBENCH=$PGBIN/pgbench
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench || true)
[ -n "$PGBENCH" ] || die "pgbench not found (Debian: postgresql-contrib)"
command -v gnuplot >/dev/null || die "gnuplot not found (Debian: gnuplot-nox)"
command -v python3 >/dev/null || die "python3 not found"
: "${PGHOST:?PGHOST not set (run through: make bench)}"
: "${PGPORT:?PGPORT not set}"
DB=${BENCH_DB:-dsl_bench}

OUT=${BENCH_OUT:-$ROOT/.run/bench}
rm -rf "$OUT"
mkdir -p "$OUT/runs" "$OUT/load" "$OUT/serve" "$OUT/report/img"

in_list() { # in_list WORD LIST... -> whether WORD is one of LIST
	local w=$1
	shift
	case " $* " in *" $w "*) return 0 ;; esac
	return 1
}
psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# run_block LABEL LOGFILE PSQL_ARGS...: one psql script of a block, timed;
# a failure is counted and logged, and the run goes on
run_block() {
	local label=$1 logfile=$2 t0
	shift 2
	t0=$(now)
	if psql_db --csv "$@" >"$logfile" 2>&1; then
		log "  done in $(elapsed "$t0" "$(now)")s"
	else
		n_fail=$((n_fail + 1))
		log "FAILED: $label (see $logfile)"
	fi
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# settings_for DATASET MODEL -> sets S_DIM S_BATCH S_LR S_REG S_EPOCHS S_EVAL S_UI S_OPTIONS
settings_for() {
	local line
	line=$(printf '%s\n' "$SETTINGS" | awk -v d="$1" -v m="$2" '$1 == d && $2 == m' | head -1)
	[ -n "$line" ] || return 1
	read -r _ _ S_DIM S_BATCH S_LR S_REG S_EPOCHS S_EVAL S_UI S_OPTIONS <<<"$line"
	if [ -n "${BENCH_EPOCHS:-}" ]; then
		S_EPOCHS=$BENCH_EPOCHS
		[ "$S_EVAL" -le "$S_EPOCHS" ] || S_EVAL=$S_EPOCHS
	fi
	return 0
}

# --- the database -------------------------------------------------------------
log "results go to $OUT; database $DB is recreated"
"$PGBIN/dropdb" --if-exists --force "$DB" >/dev/null 2>&1 ||
	die "cannot drop database $DB (in use?)"
"$PGBIN/createdb" "$DB"
psql_db -f "$BENCH/setup.sql" >"$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log" >&2; die "setup failed"; }

# --- machine description -------------------------------------------------------
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "mode=$([ "$QUICK" = 1 ] && echo QUICK || echo FULL)"
	echo "cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "cores=$(nproc)"
	echo "mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel=$(uname -sr)"
	echo "postgres=$(psql_db -Atc 'SELECT version()')"
	echo "openblas=$(dpkg-query -W -f '${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null | awk '$2 != "" { print $1 " " $2 }' | paste -sd ',' - | sed 's/,/, /g' || true)"
	echo "extension=$(psql_db -Atc "SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'")"
	echo "threads=$(psql_db -Atc "LOAD 'dsl_rec'; SELECT current_setting('dsl_rec.threads', true)" 2>/dev/null || true)"
	echo "shared_buffers=$(psql_db -Atc 'SHOW shared_buffers')"
	if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
		dirty=""
		[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty="-dirty"
		echo "commit=$(git -C "$ROOT" rev-parse --short HEAD)$dirty"
	else
		echo "commit=unknown"
	fi
	echo "data=$DATA"
	echo "seed=$SEED"
	echo "split_seed=$SPLIT_SEED"
	echo "k=$K"
	echo "pgbench_seconds=$PGBENCH_SECONDS"
	echo "pgbench_clients=$PGBENCH_CLIENTS"
	echo "densities=$DENSITIES"
	echo "static_densities=$STATIC_DENSITIES"
	echo "speed_dataset=$SPEED_DATASET"
	echo "speed_model=$SPEED_MODEL"
	echo "speed_reps=$SPEED_REPS"
	echo "speed_epochs=$SPEED_EPOCHS"
	echo "defaults_model=$DEFAULTS_MODEL"
	echo "defaults_densities=$DEFAULTS_DENSITIES"
	echo "defaults_max_epochs=$DEFAULTS_MAX_EPOCHS"
	echo "vs_dataset=$VS_DATASET"
	echo "vs_density=$VS_DENSITY"
	echo "vs_factors=$VS_FACTORS"
	echo "vs_threads=$VS_THREADS"
	echo "vs_pairs=$VS_PAIRS"
	echo "vs_epochs=$VS_EPOCHS"
} >"$OUT/machine.txt"

# --- which model types exist -----------------------------------------------------
: >"$OUT/model_types.txt"
psql_db -c "SELECT * FROM dsl.train('bench_probe', 'bench_tiny', model_type => 'no such type', epochs => 1)" \
	>/dev/null 2>"$OUT/probe_unknown.log" || true
known=$(sed -n 's/^DETAIL: *Valid values: \(.*\)\.$/\1/p' "$OUT/probe_unknown.log" | tr -d ',')
echo "extension_types=$known" >>"$OUT/machine.txt"
AVAILABLE=""
for mt in $MODELS; do
	opts='{}'
	for ds in $DATASETS; do
		if settings_for "$ds" "$mt"; then opts=$S_OPTIONS; break; fi
	done
	if psql_db -v mt="$mt" -v opts="$opts" >"$OUT/probe_$mt.log" 2>&1 <<-'EOF'; then
		SET client_min_messages = warning;
		SET dsl_rec.progress = off;
		BEGIN;
		SELECT count(*) FROM dsl.train('bench_probe', 'bench_tiny', model_type => :'mt',
		    dim => 4, density => 1.0, epochs => 1, batch_size => 8, options => :'opts'::jsonb);
		ROLLBACK;
	EOF
		AVAILABLE="$AVAILABLE $mt"
		echo "$mt available" >>"$OUT/model_types.txt"
	else
		reason=$(grep -m1 'ERROR' "$OUT/probe_$mt.log" | sed 's/^.*ERROR: *//')
		echo "$mt unavailable: $reason" >>"$OUT/model_types.txt"
		log "model type $mt is not available: $reason"
	fi
done
for t in $known; do
	case " $MODELS " in
	*" $t "*) ;;
	*)
		# MultVAE and NeuMF have no accuracy grid here (docs/multvae.md and
		# docs/neumf.md hold their accuracy); their serving sections run
		case "$t:$SERVE_VAE:$SERVE_NEUMF" in
		multvae:1:* | neumf:*:1) echo "$t in the serving sections" >>"$OUT/model_types.txt" ;;
		*) echo "$t not benchmarked (no settings in bench.sh or excluded)" >>"$OUT/model_types.txt" ;;
		esac ;;
	esac
done
[ -n "$AVAILABLE" ] || die "no model type could be trained; see $OUT/probe_*.log"
log "model types:$AVAILABLE"

# --- load the data sets ---------------------------------------------------------
LOADED=""
for ds in $DATASETS; do
	t0=$(now)
	case $ds in
	gowalla)
		if [ ! -f "$DATA/gowalla/train.txt" ] || [ ! -f "$DATA/gowalla/test.txt" ]; then
			log "skipping gowalla: $DATA/gowalla/{train,test}.txt missing"; continue
		fi
		psql_db -v datadir="$DATA/gowalla" -v prefix=gowalla -f "$ROOT/test/bench/load_lightgcn_split.sql" \
			>"$OUT/load/gowalla.log" 2>&1 || { cat "$OUT/load/gowalla.log" >&2; die "loading gowalla failed"; }
		;;
	ml1m)
		if [ ! -f "$DATA/ml-1m/ml-1m_implicit_pairs.tsv" ]; then
			log "skipping ml1m: $DATA/ml-1m/ml-1m_implicit_pairs.tsv missing"; continue
		fi
		psql_db -v pairsfile="$DATA/ml-1m/ml-1m_implicit_pairs.tsv" -v split_seed="$SPLIT_SEED" \
			-v test_fraction="$TEST_FRACTION" -f "$BENCH/load_ml1m.sql" \
			>"$OUT/load/ml1m.log" 2>&1 || { cat "$OUT/load/ml1m.log" >&2; die "loading ml1m failed"; }
		;;
	lastfm)
		if [ ! -f "$DATA/lastfm/lightgcn_lastfm/data1.txt" ] || [ ! -f "$DATA/lastfm/lightgcn_lastfm/test1.txt" ]; then
			log "skipping lastfm: $DATA/lastfm/lightgcn_lastfm/{data1,test1}.txt missing"; continue
		fi
		psql_db -v trainfile="$DATA/lastfm/lightgcn_lastfm/data1.txt" \
			-v testfile="$DATA/lastfm/lightgcn_lastfm/test1.txt" -f "$BENCH/load_lastfm.sql" \
			>"$OUT/load/lastfm.log" 2>&1 || { cat "$OUT/load/lastfm.log" >&2; die "loading lastfm failed"; }
		;;
	*) die "unknown data set $ds" ;;
	esac
	psql_db --csv -c "SELECT '$ds' AS dataset,
	        (SELECT count(*) FROM ${ds}_train) AS train_pairs,
	        (SELECT count(*) FROM ${ds}_test) AS test_pairs,
	        (SELECT count(DISTINCT user_id) FROM ${ds}_train) AS train_users,
	        (SELECT count(DISTINCT item_id) FROM ${ds}_train) AS train_items,
	        (SELECT count(DISTINCT user_id) FROM ${ds}_test) AS test_users,
	        $(elapsed "$t0" "$(now)") AS load_seconds" >"$OUT/load/$ds.csv"
	LOADED="$LOADED $ds"
	log "loaded $ds: $(tail -1 "$OUT/load/$ds.csv")"
done
[ -n "$LOADED" ] || die "no data set could be loaded from $DATA"

# --- training runs --------------------------------------------------------------
echo "run,dataset,model_type,density,sparsity,dim,batch,lr,reg,epochs,eval_every,update_interval,options,status,wall_seconds" >"$OUT/runs.csv"
n_fail=0
for ds in $LOADED; do
	for mt in $AVAILABLE; do
		if ! settings_for "$ds" "$mt"; then
			log "no settings for $ds/$mt in bench.sh; skipped"
			continue
		fi
		configs=""
		for d in $DENSITIES; do configs="$configs $d:dynamic"; done
		for d in $STATIC_DENSITIES; do configs="$configs $d:static"; done
		for c in $configs; do
			d=${c%%:*}
			sp=${c##*:}
			run="${ds}_${mt}_d${d}_${sp}"
			dir=$OUT/runs/$run
			mkdir -p "$dir"
			log "training $run (dim $S_DIM, $S_EPOCHS epochs, eval every $S_EVAL)"
			t0=$(now)
			status=ok
			if ! psql_db --csv -v outdir="$dir" -v model="$run" -v source="${ds}_train" -v test="${ds}_test" \
				-v model_type="$mt" -v dim="$S_DIM" -v density="$d" -v epochs="$S_EPOCHS" \
				-v batch="$S_BATCH" -v lr="$S_LR" -v reg="$S_REG" -v update_interval="$S_UI" \
				-v sparsity="$sp" -v seed="$SEED" -v options="$S_OPTIONS" -v eval_every="$S_EVAL" -v k="$K" \
				-f "$BENCH/train_run.sql" >"$dir/psql.log" 2>&1; then
				status=failed
				n_fail=$((n_fail + 1))
				log "FAILED: $run (see $dir/psql.log)"
				sed 's/^/    /' "$dir/psql.log" | tail -5 >&2
			fi
			wall=$(elapsed "$t0" "$(now)")
			echo "$run,$ds,$mt,$d,$sp,$S_DIM,$S_BATCH,$S_LR,$S_REG,$S_EPOCHS,$S_EVAL,$S_UI,\"${S_OPTIONS//\"/\"\"}\",$status,$wall" >>"$OUT/runs.csv"
			if [ "$status" = ok ]; then
				log "  done in ${wall}s: $(grep -E '^recall,' "$dir/eval.csv" || true)"
			fi
		done
	done
done

# --- the defaults: what a user gets with no tuning ---------------------------------
# dsl.train(name, '<ds>_train', density => d, seed => SEED) and nothing else,
# each in a fresh connection; only QUICK adds options => '{"max_epochs": N}'.
mkdir -p "$OUT/defaults"
echo "run,dataset,model_type,density,max_epochs,status,wall_seconds" >"$OUT/defaults/runs.csv"
case " $AVAILABLE " in *" $DEFAULTS_MODEL "*) defaults_ok=1 ;; *) defaults_ok=0 ;; esac
if [ "$defaults_ok" = 0 ]; then
	log "defaults block skipped: model type $DEFAULTS_MODEL not available"
	DEFAULTS_DATASETS=""
fi
capped=false
defaults_options='{}'
if [ -n "$DEFAULTS_MAX_EPOCHS" ]; then
	capped=true
	defaults_options="{\"max_epochs\": $DEFAULTS_MAX_EPOCHS}"
fi
for ds in $DEFAULTS_DATASETS; do
	case " $LOADED " in *" $ds "*) ;; *) log "defaults: $ds not loaded; skipped"; continue ;; esac
	for d in $DEFAULTS_DENSITIES; do
		run="defaults_${ds}_${DEFAULTS_MODEL}_d${d}"
		dir=$OUT/defaults/$run
		mkdir -p "$dir"
		log "defaults: $run (epochs NULL, no validation$([ "$capped" = true ] && echo ", QUICK cap max_epochs $DEFAULTS_MAX_EPOCHS"))"
		t0=$(now)
		status=ok
		if ! psql_db --csv -v outdir="$dir" -v model="$run" -v source="${ds}_train" -v test="${ds}_test" \
			-v model_type="$DEFAULTS_MODEL" -v density="$d" -v sparsity=dynamic -v seed="$SEED" -v capped="$capped" \
			-v options="$defaults_options" -v k="$K" -f "$BENCH/train_defaults.sql" >"$dir/psql.log" 2>&1; then
			status=failed
			n_fail=$((n_fail + 1))
			log "FAILED: $run (see $dir/psql.log)"
			sed 's/^/    /' "$dir/psql.log" | tail -5 >&2
		fi
		wall=$(elapsed "$t0" "$(now)")
		echo "$run,$ds,$DEFAULTS_MODEL,$d,$DEFAULTS_MAX_EPOCHS,$status,$wall" >>"$OUT/defaults/runs.csv"
		if [ "$status" = ok ]; then
			log "  done in ${wall}s, $(($(wc -l <"$dir/epochs.csv") - 1)) epochs: $(grep -E '^recall,' "$dir/eval.csv" || true)"
		fi
	done
done

# --- new users: the fold-in (dsl.recommend_for_items, dsl.evaluate_histories) ---------
# The defaults block's models: each test user's training items folded in
# against the user's stored row; and MF with the defaults on the DSL
# reference's MovieLens-1M strong-generalization split when it is there.
mkdir -p "$OUT/fold"
rm -f "$OUT/fold/"*.csv
fold_models=""
for ds in $DEFAULTS_DATASETS; do
	for d in $DEFAULTS_DENSITIES; do
		fold_models="${fold_models:+$fold_models,}defaults_${ds}_${DEFAULTS_MODEL}_d${d}:$ds"
	done
done
SG_DIR=$DATA/ml-1m/dsl_multvae_pro_sg
sg=false
if [ "${BENCH_FOLD:-1}" != 0 ] && [ -f "$SG_DIR/train.csv" ] && [ -f "$SG_DIR/test_tr.csv" ] &&
	[ -f "$SG_DIR/test_te.csv" ]; then
	sg=true
fi
if [ "${BENCH_FOLD:-1}" = 0 ]; then
	echo "BENCH_FOLD=0" >"$OUT/fold/skipped.txt"
else
	log "new users: fold-in of the defaults models' test users${fold_models:+ ($fold_models)}$([ "$sg" = true ] && echo "; MovieLens-1M strong generalization, MF d = $SG_DENSITIES")"
	run_block "new users" "$OUT/fold/psql.log" -v outdir="$OUT/fold" -v models="$fold_models" \
		-v sg="$sg" -v sgdir="$SG_DIR" -v sg_densities="${SG_DENSITIES// /,}" \
		-v sg_options="$defaults_options" -v seed="$SEED" -v k="$K" -f "$BENCH/fold_in.sql"
fi
{
	echo "sg_densities=$SG_DENSITIES"
	echo "sg_split=$sg"
} >>"$OUT/machine.txt"

# --- keeping fresh: a continuation against a training from scratch ------------------
mkdir -p "$OUT/fresh"
rm -f "$OUT/fresh/"*.csv
case " $LOADED " in *" $FRESH_DATASET "*) fresh_ok=1 ;; *) fresh_ok=0 ;; esac
case " $AVAILABLE " in *" mf "*) ;; *) fresh_ok=0 ;; esac
if [ "${BENCH_FRESH:-1}" = 0 ]; then
	echo "BENCH_FRESH=0" >"$OUT/fresh/skipped.txt"
elif [ "$fresh_ok" = 0 ]; then
	echo "$FRESH_DATASET or MF not available" >"$OUT/fresh/skipped.txt"
	log "keeping fresh: skipped ($FRESH_DATASET or MF not available)"
else
	rm -f "$OUT/fresh/skipped.txt"
	log "keeping fresh: $FRESH_DATASET MF d = $FRESH_DENSITY, $FRESH_EPOCHS epochs, continued vs retrained"
	run_block "keeping fresh" "$OUT/fresh/psql.log" -v outdir="$OUT/fresh" \
		-v source="${FRESH_DATASET}_train" -v test="${FRESH_DATASET}_test" \
		-v density="$FRESH_DENSITY" -v epochs="$FRESH_EPOCHS" -v seed="$SEED" -v k="$K" \
		-f "$BENCH/keep_fresh.sql"
fi
{
	echo "fresh_dataset=$FRESH_DATASET"
	echo "fresh_density=$FRESH_DENSITY"
	echo "fresh_epochs=$FRESH_EPOCHS"
} >>"$OUT/machine.txt"

# --- training speed: the densities alternated and repeated --------------------------
# Single long runs on a shared VM catch its slow and fast spells unevenly;
# alternating short runs gives every density the same share of both.
mkdir -p "$OUT/speed"
echo "rep,density,status" >"$OUT/speed/runs.csv"
case " $LOADED " in *" $SPEED_DATASET "*) speed_ok=1 ;; *) speed_ok=0 ;; esac
case " $AVAILABLE " in *" $SPEED_MODEL "*) ;; *) speed_ok=0 ;; esac
if [ "$speed_ok" = 1 ] && settings_for "$SPEED_DATASET" "$SPEED_MODEL"; then
	for rep in $(seq 1 "$SPEED_REPS"); do
		for d in $SPEED_DENSITIES; do
			log "speed: $SPEED_DATASET $SPEED_MODEL d = $d, repeat $rep ($SPEED_EPOCHS epochs)"
			status=ok
			psql_db --csv -v out="$OUT/speed/d${d}_r${rep}.csv" -v model_type="$SPEED_MODEL" \
				-v source="${SPEED_DATASET}_train" -v dim="$S_DIM" -v density="$d" \
				-v epochs="$SPEED_EPOCHS" -v batch="$S_BATCH" -v lr="$S_LR" -v reg="$S_REG" \
				-v seed="$SEED" -v options="$S_OPTIONS" -f "$BENCH/speed_run.sql" \
				>"$OUT/speed/d${d}_r${rep}.log" 2>&1 || { status=failed; n_fail=$((n_fail + 1)); }
			echo "$rep,$d,$status" >>"$OUT/speed/runs.csv"
		done
	done
else
	log "speed repeats skipped: $SPEED_DATASET or $SPEED_MODEL not available"
fi

# --- paired timing against implicit's CPU BPR ------------------------------------------
# implicit is built from its release tarball into .run/implicit (ignored),
# for this comparison only.  test/bench/implicit_bpr.py alternates a K-epoch
# block of implicit's BPR with a K-epoch dsl.train (vs_implicit_dsl.sql),
# pair by pair, the order alternating; report.py takes the ratio per pair.
VS=$OUT/vs_implicit
mkdir -p "$VS"
vs_skip() { echo "$*" >"$VS/skipped.txt"; log "paired timing against implicit skipped: $*"; }
if [ "$VS_IMPLICIT" = 0 ]; then
	vs_skip "BENCH_VS_IMPLICIT=0"
elif ! in_list "$VS_DATASET" $LOADED; then
	vs_skip "$VS_DATASET not loaded"
elif ! in_list mf $AVAILABLE; then
	vs_skip "model type mf not available"
elif [ ! -f "$VENDOR/$IMPLICIT_TARBALL_NAME" ] || [ ! -f "$VENDOR/$IMPLICIT_SETUP_NAME" ]; then
	vs_skip "$VENDOR/$IMPLICIT_TARBALL_NAME or $IMPLICIT_SETUP_NAME not found (set DSL_VENDOR)"
elif [ ! -x "$BENCH_PYTHON" ]; then
	vs_skip "$BENCH_PYTHON not found (set BENCH_PYTHON)"
else
	rc=0
	implicit_src=$(bash "$BENCH/build_implicit.sh" "$VENDOR/$IMPLICIT_TARBALL_NAME" \
		"$VENDOR/$IMPLICIT_SETUP_NAME" "$ROOT/.run/implicit" "$BENCH_PYTHON" 2>"$VS/build.log" | tail -1) || rc=$?
	if [ "$rc" -ne 0 ] || [ -z "$implicit_src" ]; then
		cat "$VS/build.log" >&2
		vs_skip "building implicit failed (see $VS/build.log)"
	else
		log "paired timing: $VS_PAIRS pairs of $VS_EPOCHS-epoch blocks, implicit BPR against dsl_rec MF at d = $VS_DENSITY"
		if (cd "$VS" && OPENBLAS_NUM_THREADS=1 PYTHONPATH="$implicit_src" "$BENCH_PYTHON" "$BENCH/implicit_bpr.py" \
			--train "$DATA/$VS_DATASET/train.txt" --factors "$VS_FACTORS" --threads "$VS_THREADS" \
			--seed "$SEED" --epochs "$VS_EPOCHS" --pairs "$VS_PAIRS" --out "$VS" -- \
			"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" --csv -v out="$VS/dsl_p{pair}.csv" \
			-v source="${VS_DATASET}_train" -v dim="$VS_FACTORS" -v density="$VS_DENSITY" \
			-v epochs="$VS_EPOCHS" -v seed="$SEED" -v threads="$VS_THREADS" \
			-f "$BENCH/vs_implicit_dsl.sql") 2>"$VS/run.log"; then
			sed 's/^/    /' "$VS/run.log" >&2
		else
			sed 's/^/    /' "$VS/run.log" | tail -10 >&2
			n_fail=$((n_fail + 1))
			log "paired timing against implicit FAILED (see $VS/run.log)"
		fi
	fi
fi

# --- stored size of every model ----------------------------------------------------
psql_db --csv -f "$BENCH/storage.sql" >"$OUT/storage.csv" 2>"$OUT/storage.log" ||
	{ cat "$OUT/storage.log" >&2; die "storage query failed"; }

# --- serving: pgbench and recommend_all ---------------------------------------------
echo "model,query,clients,seconds,pgbench_tps,log_prefix" >"$OUT/serve/pgbench.csv"
echo "model,k,rows,users,cold_seconds,warm_seconds" >"$OUT/serve/recommend_all.csv"
run_pgbench() { # name script clients seconds [log]
	local name=$1 script=$2 c=$3 secs=$4 logit=${5:-}
	local args=(-n -T "$secs" -c "$c" -j "$c" -f "$script")
	[ -z "$logit" ] || args+=(--log --log-prefix="$OUT/serve/$name")
	args+=("$DB")
	(cd "$OUT/serve" && PGOPTIONS='-c search_path=public,dsl -c client_min_messages=warning' \
		"$PGBENCH" "${args[@]}") >"$OUT/serve/$name.out" 2>&1
}
case " $LOADED " in *" $SERVE_DATASET "*) serve_ok=1 ;; *) serve_ok=0 ;; esac
case " $AVAILABLE " in *" $SERVE_MODEL "*) ;; *) serve_ok=0 ;; esac
if [ "$serve_ok" = 0 ]; then
	log "serving benchmarks skipped: $SERVE_DATASET/$SERVE_MODEL not trained"
else
	serve_models=""
	for d in $SERVE_DENSITIES; do
		for mt in $SERVE_MODEL $SERVE_ALSO; do
			serve_models="$serve_models ${SERVE_DATASET}_${mt}_d${d}_dynamic"
		done
	done
	more_models=""
	for d in $SERVE_MORE_DENSITIES; do
		more_models="$more_models ${SERVE_DATASET}_${SERVE_MODEL}_d${d}_dynamic"
	done
	serve_models="$serve_models $more_models"
	# model types without rows in the grid, trained here for their serving speed
	# only: serve_train TYPE EPOCHS (at each of SERVE_DENSITIES)
	serve_train() {
		local mt=$1 epochs=$2 d model
		case " $known " in *" $mt "*) ;; *) log "serving: $mt not available, skipped"; return 0 ;; esac
		for d in $SERVE_DENSITIES; do
			model="${SERVE_DATASET}_${mt}_d${d}_serve"
			log "serving: training $model ($epochs epochs, for its serving speed)"
			if psql_db -c "SET dsl_rec.progress = off" -c "SET maintenance_work_mem = '4GB'" \
				-c "SELECT epoch, seconds FROM dsl.train('$model', '${SERVE_DATASET}_train',
					model_type => '$mt', density => $d, epochs => $epochs,
					seed => $SEED, replace => true)" >"$OUT/serve/train_$model.log" 2>&1; then
				serve_models="$serve_models $model"
			else
				log "training $model failed: $OUT/serve/train_$model.log"
			fi
		done
	}
	[ "$SERVE_VAE" = 0 ] || serve_train multvae "$SERVE_VAE_EPOCHS"
	if [ "$SERVE_NEUMF" != 0 ]; then
		serve_train neumf "$SERVE_NEUMF_EPOCHS"
		case " $known " in *" neumf "*)
			log "NeuMF epoch time at the authors' shape ($NEUMF_SPEED_EPOCHS epochs, d = $NEUMF_SPEED_DENSITY)"
			psql_db --csv -c "SET dsl_rec.progress = off" -c "SELECT epoch, seconds, loss
				FROM dsl.train('${SERVE_DATASET}_neumf_speed', '${SERVE_DATASET}_train',
					model_type => 'neumf', dim => $NEUMF_SPEED_DIM, density => $NEUMF_SPEED_DENSITY,
					epochs => $NEUMF_SPEED_EPOCHS,
					seed => $SEED, replace => true, options => '$NEUMF_SPEED_OPTIONS')" \
				>"$OUT/serve/neumf_speed.csv" 2>"$OUT/serve/neumf_speed.log" ||
				log "NeuMF speed run failed: $OUT/serve/neumf_speed.log"
			psql_db -c "SELECT dsl.drop_model('${SERVE_DATASET}_neumf_speed')" >/dev/null 2>&1 || true
			;;
		esac
	fi
	for model in $serve_models; do
		info=$(psql_db -At -F ' ' -c "SELECT m.model_id, min(s.user_id), max(s.user_id), count(*)
			FROM dsl.models m JOIN dsl.seen_items s USING (model_id) WHERE m.name = '$model'
			GROUP BY m.model_id" 2>/dev/null || true)
		if [ -z "$info" ]; then
			log "serving benchmarks of $model skipped: model missing"
			continue
		fi
		read -r mid umin umax nusers <<<"$info"
		# user ids must be contiguous for "random(umin, umax)" to pick users of the model
		if [ $((umax - umin + 1)) -ne "$nusers" ]; then
			log "serving benchmarks of $model skipped: user ids are not contiguous"
			continue
		fi
		queries="recommend recommend_for_items"
		# plain SQL <#> over stored rows scores only the inner-product models
		case $model in *_mf_* | *_lightgcn_*) queries="$queries recommend_sql" ;; esac
		clients=$PGBENCH_CLIENTS
		case " $more_models " in *" $model "*) queries="recommend"; clients=1 ;; esac
		for q in $queries; do
			script=$OUT/serve/${model}_$q.pgbench
			sed -e "s/@MODEL@/$model/g" -e "s/@MID@/$mid/g" -e "s/@UMIN@/$umin/g" -e "s/@UMAX@/$umax/g" \
				"$BENCH/$q.pgbench" >"$script"
			for c in $clients; do
				log "pgbench $model $q, $c client(s), ${PGBENCH_SECONDS}s (after a ${PGBENCH_WARMUP_SECONDS}s warm-up)"
				run_pgbench "warmup_${model}_${q}_c$c" "$script" "$c" "$PGBENCH_WARMUP_SECONDS" ||
					log "warm-up failed: $OUT/serve/warmup_${model}_${q}_c$c.out"
				name="${model}_${q}_c$c"
				if run_pgbench "$name" "$script" "$c" "$PGBENCH_SECONDS" log; then
					tps=$(sed -n 's/^tps = \([0-9.]*\) .*without initial connection time.*/\1/p' "$OUT/serve/$name.out" | head -1)
					echo "$model,$q,$c,$PGBENCH_SECONDS,${tps:-},$name" >>"$OUT/serve/pgbench.csv"
				else
					log "pgbench failed: $OUT/serve/$name.out"
					tail -5 "$OUT/serve/$name.out" >&2
				fi
			done
		done
		log "recommend_all($model, $K)"
		if psql_db --csv -v model="$model" -v k="$K" -v outfile="$OUT/serve/recommend_all_$model.csv" \
			-f "$BENCH/recommend_all.sql" >"$OUT/serve/recommend_all_$model.log" 2>&1; then
			tail -n +2 "$OUT/serve/recommend_all_$model.csv" >>"$OUT/serve/recommend_all.csv"
		else
			log "recommend_all failed: $OUT/serve/recommend_all_$model.log"
		fi
	done
fi

# --- serving vs catalogue size and density (synthetic models) ------------------------
# test/bench/serve_scale.sql builds each model (seeded random rows, dim 64, a
# share d of the item entries stored) and times its first call and a second
# connection's; then pgbench as above, then the model is dropped.
mkdir -p "$OUT/scale"
echo "model,n_items,density,clients,seconds,pgbench_tps,log_prefix" >"$OUT/scale/pgbench.csv"
if [ "${BENCH_SCALE:-1}" = 0 ]; then
	echo "BENCH_SCALE=0" >"$OUT/scale/skipped.txt"
else
	for n in $SCALE_ITEMS; do
		for d in $SCALE_DENSITIES; do
			model="scale_${n}_d${d}"
			log "serving scale: $model ($n items, d = $d)"
			if ! psql_db --csv -v outdir="$OUT/scale" -v model="$model" -v n_items="$n" -v fill="$d" \
				-v seed=0.5 -f "$BENCH/serve_scale.sql" >"$OUT/scale/$model.log" 2>&1; then
				n_fail=$((n_fail + 1))
				log "FAILED: $model (see $OUT/scale/$model.log)"
				continue
			fi
			script=$OUT/scale/$model.pgbench
			sed -e "s/@MODEL@/$model/g" "$BENCH/serve_scale.pgbench" >"$script"
			for c in $PGBENCH_CLIENTS; do
				run_pgbench "warmup_${model}_c$c" "$script" "$c" "$PGBENCH_WARMUP_SECONDS" || true
				name="scale_${model}_c$c"
				if run_pgbench "$name" "$script" "$c" "$PGBENCH_SECONDS" log; then
					tps=$(sed -n 's/^tps = \([0-9.]*\) .*without initial connection time.*/\1/p' "$OUT/serve/$name.out" | head -1)
					echo "$model,$n,$d,$c,$PGBENCH_SECONDS,${tps:-},$name" >>"$OUT/scale/pgbench.csv"
				else
					log "pgbench failed: $OUT/serve/$name.out"
				fi
			done
			psql_db -c "SELECT dsl.drop_model('$model')" >/dev/null 2>&1 || true
		done
	done
fi
{
	echo "scale_items=$SCALE_ITEMS"
	echo "scale_densities=$SCALE_DENSITIES"
} >>"$OUT/machine.txt"

# --- report ---------------------------------------------------------------------
T_END=$(now)
echo "total_seconds=$(elapsed "$T_START" "$T_END")" >>"$OUT/machine.txt"
echo "failed_runs=$n_fail" >>"$OUT/machine.txt"
log "writing the report"
python3 "$BENCH/report.py" "$OUT" "$OUT/report" || die "report generation failed"
if [ "$WRITE_DOCS" = 1 ]; then
	mkdir -p "$ROOT/docs/img"
	# make bench-lightgcn's section (test/bench_lightgcn.sh) is kept
	sed -n '/^<!-- bench-lightgcn -->$/,/^<!-- \/bench-lightgcn -->$/p' "$ROOT/docs/benchmarks.md" \
		>"$OUT/report/lightgcn_section.md" 2>/dev/null || true
	cp "$OUT/report/benchmarks.md" "$ROOT/docs/benchmarks.md"
	[ ! -s "$OUT/report/lightgcn_section.md" ] ||
		python3 "$BENCH/report_lightgcn.py" --merge "$OUT/report/lightgcn_section.md" "$ROOT/docs/benchmarks.md"
	cp "$OUT"/report/img/*.png "$ROOT/docs/img/"
	log "wrote docs/benchmarks.md and docs/img/*.png"
else
	log "report in $OUT/report/benchmarks.md (not copied to docs/; BENCH_DOCS=1 to copy)"
fi
log "bench finished in $(elapsed "$T_START" "$(now)")s, $n_fail failed run(s)"
