#!/usr/bin/env python3
"""test/bench/report.py - turn the results of test/bench.sh into the report.

Usage: report.py RESULTS_DIR REPORT_DIR

Reads only the files bench.sh wrote under RESULTS_DIR (CSV and logs) and
writes REPORT_DIR/benchmarks.md and REPORT_DIR/img/*.png (gnuplot).  Standard
library only, so it can be re-run on saved results without a database.
"""
import glob
import math
import os
import subprocess
import sys

from bench_common import f4, num, read_csv, read_kv

RES, REP = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
IMG = os.path.join(REP, "img")
GP = os.path.join(RES, "gnuplot")
os.makedirs(IMG, exist_ok=True)
os.makedirs(GP, exist_ok=True)

DS_NAMES = {
    "gowalla": "Gowalla (LightGCN split)",
    "ml1m": "MovieLens-1M (dsl.split 80/20)",
    "lastfm": "Last.fm (LightGCN-PyTorch split)",
}
MT_NAMES = {"mf": "MF-BPR", "lightgcn": "LightGCN", "multvae": "MultVAE", "neumf": "NeuMF"}

# Published anchors on the Gowalla LightGCN split (docs: /work/shared/DSL.md)
ANCHORS = [
    ("MF-BPR", "NGCF paper", "1.0", 0.1291, 0.1109),
    ("MF-BPR", "well-tuned, freerec", "1.0", 0.1491, 0.1235),
    ("MF-BPR", "authors' DSL code, measured (dense)", "1.0", 0.1393, 0.1172),
    ("MF-BPR", "authors' DSL code, measured (DSL)", "0.5", 0.0892, 0.0783),
    ("MF-BPR", "authors' DSL code, measured (DSL)", "0.2", 0.0297, 0.0268),
    ("LightGCN", "LightGCN paper", "1.0", 0.1830, 0.1554),
    ("LightGCN", "official PyTorch (gusye1234)", "1.0", 0.1824, 0.1547),
]
AUTHORS_DSL_MF = [(1.0, 0.1393), (0.5, 0.0892), (0.2, 0.0297)]


def f1(x):
    return "–" if x is None else f"{x:.1f}"


def f2(x):
    return "–" if x is None else f"{x:.2f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


def mb(b):
    return None if b is None else b / 1048576.0


def big(x):
    return "–" if x is None else f"{int(x):,}"


def rate(x):
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    return f"{x / 1e3:.0f} k"


def hms(s):
    s = int(round(s))
    h, r = divmod(s, 3600)
    m, sec = divmod(r, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else f"{m} min {sec:02d} s"


machine = read_kv(os.path.join(RES, "machine.txt"))
runs = read_csv(os.path.join(RES, "runs.csv"))
storage = {r["name"]: r for r in read_csv(os.path.join(RES, "storage.csv"))}
loads = {}
for p in sorted(glob.glob(os.path.join(RES, "load", "*.csv"))):
    rows = read_csv(p)
    if rows:
        loads[rows[0]["dataset"]] = rows[0]
model_types = [l.strip() for l in open(os.path.join(RES, "model_types.txt"))] \
    if os.path.exists(os.path.join(RES, "model_types.txt")) else []

# ---------------------------------------------------------------------------
# per-run results
R = []
for r in runs:
    d = os.path.join(RES, "runs", r["run"])
    x = dict(r)
    x["density_f"] = float(r["density"])
    x["ok"] = r["status"] == "ok"
    model = read_csv(os.path.join(d, "model.csv"))
    model = model[0] if model else {}
    ev = {e["metric"]: num(e["value"]) for e in read_csv(os.path.join(d, "eval.csv"))}
    et = read_csv(os.path.join(d, "eval_time.csv"))
    epochs = read_csv(os.path.join(d, "epochs.csv"))
    mb0 = read_csv(os.path.join(d, "mem_before.csv"))
    mb1 = read_csv(os.path.join(d, "mem_after.csv"))
    x["recall"] = ev.get("recall")
    x["ndcg"] = ev.get("ndcg")
    x["users_evaluated"] = ev.get("users_evaluated")
    x["eval_seconds"] = num(et[0]["eval_seconds"]) if et else None
    x["best_epoch"] = num(model.get("best_epoch"))
    x["epochs_run"] = len(epochs)
    x["train_seconds"] = num(model.get("train_seconds"))
    x["peak"] = num(model.get("train_peak_bytes"))
    x["n_inter"] = num(model.get("n_interactions"))
    x["n_users"] = num(model.get("n_users"))
    x["n_items"] = num(model.get("n_items"))
    x["active"] = num(model.get("active_params"))
    x["total"] = num(model.get("total_params"))
    secs = [num(e["seconds"]) for e in epochs if num(e["seconds"]) is not None]
    x["epoch_s"] = sum(secs) / len(secs) if secs else None
    x["throughput"] = x["n_inter"] / x["epoch_s"] if x["epoch_s"] and x["n_inter"] else None
    x["curve"] = [(int(e["epoch"]), num(e["recall"]), num(e["ndcg"]))
                  for e in epochs if num(e["recall"]) is not None]
    x["active_end"] = num(epochs[-1]["active_params"]) if epochs else None
    x["hwm0"] = num(mb0[0]["vmhwm_kb"]) * 1024 if mb0 and num(mb0[0]["vmhwm_kb"]) else None
    x["hwm"] = num(mb1[0]["vmhwm_kb"]) * 1024 if mb1 and num(mb1[0]["vmhwm_kb"]) else None
    x["shmem"] = num(mb1[0]["rss_shmem_kb"]) * 1024 if mb1 and num(mb1[0]["rss_shmem_kb"]) else None
    if x["active"] is not None and x["n_users"] is not None:
        x["est"] = x["active"] * 14 + (x["n_users"] + x["n_items"]) * 8
    else:
        x["est"] = None
    st = storage.get(r["run"], {})
    x["vec_bytes"] = num(st.get("vec_bytes"))
    sh = [num(st.get("param_table_share")), num(st.get("seen_table_share"))]
    x["table_bytes"] = sum(v for v in sh if v is not None) if st else None
    x["param_share"] = sh[0]
    if not x["ok"] or x["recall"] is None:
        x["ok"] = False
    R.append(x)


def find(ds, mt, density, sp):
    for x in R:
        if x["dataset"] == ds and x["model_type"] == mt and x["sparsity"] == sp \
                and abs(x["density_f"] - density) < 1e-9 and x["ok"]:
            return x
    return None


datasets = []
for x in R:
    if x["dataset"] not in datasets:
        datasets.append(x["dataset"])
mtypes = []
for x in R:
    if x["model_type"] not in mtypes:
        mtypes.append(x["model_type"])

# ---------------------------------------------------------------------------
# the defaults block: dsl.train(name, '<ds>_train', density => d, seed => 1)
D = []
for r in read_csv(os.path.join(RES, "defaults", "runs.csv")):
    d = os.path.join(RES, "defaults", r["run"])
    x = dict(r)
    x["density_f"] = float(r["density"])
    model = read_csv(os.path.join(d, "model.csv"))
    model = model[0] if model else {}
    ev = {e["metric"]: num(e["value"]) for e in read_csv(os.path.join(d, "eval.csv"))}
    tt = read_csv(os.path.join(d, "train_time.csv"))
    epochs = read_csv(os.path.join(d, "epochs.csv"))
    x["recall"] = ev.get("recall")
    x["ndcg"] = ev.get("ndcg")
    x["epochs_run"] = num(model.get("epochs"))
    if x["epochs_run"] is None and epochs:
        x["epochs_run"] = len(epochs)
    x["best_epoch"] = num(model.get("best_epoch"))
    x["batch_size"] = num(model.get("batch_size"))
    x["total_steps"] = num(model.get("total_steps"))
    x["held_out_pairs"] = num(model.get("held_out_pairs"))
    x["held_out_users"] = num(model.get("held_out_users"))
    x["refit_epochs"] = num(model.get("refit_epochs"))
    x["train_seconds"] = num(model.get("train_seconds"))
    x["call_seconds"] = num(tt[0]["call_seconds"]) if tt else None
    x["peak"] = num(model.get("train_peak_bytes"))
    x["active"] = num(model.get("active_params"))
    secs = [num(e["seconds"]) for e in epochs if num(e["seconds"]) is not None]
    x["epoch_s"] = sum(secs) / len(secs) if secs else None
    # the validation recalls the stopping rule saw (schedule ends)
    x["val"] = [(int(e["epoch"]), num(e["recall"])) for e in epochs if num(e["recall"]) is not None]
    x["ok"] = r["status"] == "ok" and x["recall"] is not None
    D.append(x)
defaults_datasets = []
for x in D:
    if x["dataset"] not in defaults_datasets:
        defaults_datasets.append(x["dataset"])


def find_default(ds, density):
    for x in D:
        if x["dataset"] == ds and abs(x["density_f"] - density) < 1e-9 and x["ok"]:
            return x
    return None


# ---------------------------------------------------------------------------
# paired timing against implicit's CPU BPR
VSD = os.path.join(RES, "vs_implicit")
vs_skipped = open(os.path.join(VSD, "skipped.txt")).read().strip() \
    if os.path.exists(os.path.join(VSD, "skipped.txt")) else None
vs_info = read_csv(os.path.join(VSD, "implicit_info.csv"))
vs_info = vs_info[0] if vs_info else {}
vs_pairs = []
_imp = {}
for e in read_csv(os.path.join(VSD, "implicit_epochs.csv")):
    _imp.setdefault(int(e["pair"]), []).append(num(e["seconds"]))
for pr in read_csv(os.path.join(VSD, "pairs.csv")):
    p = int(pr["pair"])
    ep = read_csv(os.path.join(VSD, f"dsl_p{p}.csv")) if pr["other_status"] == "ok" else []
    ds_secs = [num(e["seconds"]) for e in ep if num(e["seconds"]) is not None]
    im_secs = [v for v in _imp.get(p, []) if v is not None]
    if not ds_secs or not im_secs:
        vs_pairs.append(dict(pair=p, first=pr["first"], ok=False))
        continue
    rnd = [num(e["seconds"]) for e in ep if num(e["pruned"])]
    plain = [num(e["seconds"]) for e in ep if not num(e["pruned"])]
    dm, im = sum(ds_secs) / len(ds_secs), sum(im_secs) / len(im_secs)
    vs_pairs.append(dict(pair=p, first=pr["first"], ok=True, dsl=dm, imp=im, ratio=dm / im,
                         n_dsl=len(ds_secs), n_imp=len(im_secs), n_rnd=len(rnd),
                         rnd=sum(rnd) / len(rnd) if rnd else None,
                         plain=sum(plain) / len(plain) if plain else None,
                         imp_wall=num(pr["implicit_wall"]), dsl_wall=num(pr["other_wall"])))
vs_warm = _imp.get(0, [None])[0]

# ---------------------------------------------------------------------------
# serving
serve = []
for s in read_csv(os.path.join(RES, "serve", "pgbench.csv")):
    per_client = {}
    for f in glob.glob(os.path.join(RES, "serve", s["log_prefix"] + ".*")):
        if f.endswith(".out"):
            continue
        for line in open(f):
            p = line.split()
            if len(p) < 6:
                continue
            # client_id transaction_no time(us) script_no time_epoch time_us
            per_client.setdefault(int(p[0]), []).append(
                (int(p[1]), int(p[2]) / 1000.0, int(p[4]) + int(p[5]) / 1e6))
    lat, first = [], []
    for txs in per_client.values():
        txs.sort()
        first.append(txs[0][1])       # the connection's first call loads the model
        lat.extend(t[1] for t in txs[1:])
    lat.sort()

    def pct(q):
        if not lat:
            return None
        i = max(0, min(len(lat) - 1, int(math.ceil(q * len(lat))) - 1))
        return lat[i]

    warm_tps = 0.0
    for txs in per_client.values():
        ends = sorted(t[2] for t in txs)
        if len(ends) > 1 and ends[-1] > ends[0]:
            warm_tps += (len(ends) - 1) / (ends[-1] - ends[0])
    serve.append(dict(s, n=len(lat), p50=pct(0.50), p99=pct(0.99),
                      mean=(sum(lat) / len(lat)) if lat else None,
                      warm_tps=warm_tps if lat else None,
                      first=max(first) if first else None))
rec_all = read_csv(os.path.join(RES, "serve", "recommend_all.csv"))


def pgbench_latency(prefix):
    """Warm latencies of a pgbench --log run (the first call of each client left out)."""
    per_client = {}
    for f in glob.glob(os.path.join(RES, "serve", prefix + ".*")):
        if f.endswith(".out"):
            continue
        for line in open(f):
            p = line.split()
            if len(p) >= 6:
                per_client.setdefault(int(p[0]), []).append((int(p[1]), int(p[2]) / 1000.0))
    lat = []
    for txs in per_client.values():
        txs.sort()
        lat.extend(t[1] for t in txs[1:])
    lat.sort()
    if not lat:
        return None, None
    pick = lambda q: lat[max(0, min(len(lat) - 1, int(math.ceil(q * len(lat))) - 1))]
    return pick(0.5), pick(0.99)


scale = []
for r in read_csv(os.path.join(RES, "scale", "pgbench.csv")):
    p50, p99 = pgbench_latency(r["log_prefix"])
    ld = read_csv(os.path.join(RES, "scale", r["model"] + "_load.csv"))
    scale.append(dict(r, p50=p50, p99=p99, load=ld[0] if ld else {}))

# ---------------------------------------------------------------------------
# training speed: alternated, repeated short runs
speed = {}
for r in read_csv(os.path.join(RES, "speed", "runs.csv")):
    if r["status"] != "ok":
        continue
    ep = read_csv(os.path.join(RES, "speed", f"d{r['density']}_r{r['rep']}.csv"))
    secs = [num(e["seconds"]) for e in ep if num(e["seconds"]) is not None]
    if not secs:
        continue
    rnd = [num(e["seconds"]) for e in ep if num(e["pruned"])]
    plain = [num(e["seconds"]) for e in ep if not num(e["pruned"])]
    speed.setdefault(r["density"], []).append(dict(
        mean=sum(secs) / len(secs), n=len(secs),
        rnd=sum(rnd) / len(rnd) if rnd else None, n_rnd=len(rnd),
        plain=sum(plain) / len(plain) if plain else None))


def median(v):
    v = sorted(v)
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

# ---------------------------------------------------------------------------
# plots
term = "pngcairo"
try:
    out = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    if "pngcairo" not in out.stdout + out.stderr:
        term = "png"
except OSError:
    term = None
FONT = 'font "sans,10"' if term == "pngcairo" else ""
COLORS = {"mf": "#1f77b4", "lightgcn": "#d62728"}
images = []


def gnuplot(name, script):
    if term is None:
        return False
    path = os.path.join(GP, name + ".gp")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"gnuplot {name} failed:\n{r.stderr}\n")
        return False
    return os.path.exists(os.path.join(IMG, name + ".png"))


def write_dat(name, rows):
    path = os.path.join(GP, name + ".dat")
    with open(path, "w") as f:
        for row in rows:
            f.write(" ".join(str(v) for v in row) + "\n")
    return path


def panel_header(n, w=520, h=400):
    return (f'set terminal {term} size {w * n},{h} {FONT} noenhanced\n'
            f'set multiplot layout 1,{n}\n')


def density_axis():
    # the key goes below the panel in columns of up to 4 entries
    return ('set logscale x\nset xrange [0.085:1.15]\n'
            'set xtics ("0.1" 0.1, "0.2" 0.2, "0.5" 0.5, "1" 1.0)\n'
            'set xlabel "density (fraction of weights active)"\n'
            'set key below box opaque vertical maxrows 4\nset bmargin 9\nset grid\n')


def plot_recall():
    name = "recall_vs_density"
    s = panel_header(len(datasets), 600, 470)
    s = s.replace("\n", f'\nset output "{os.path.join(IMG, name + ".png")}"\n', 1)
    any_data = False
    for ds in datasets:
        plots = []
        for mt in mtypes:
            dyn = sorted((x["density_f"], x["recall"]) for x in R
                         if x["ok"] and x["dataset"] == ds and x["model_type"] == mt
                         and x["sparsity"] == "dynamic")
            sta = sorted((x["density_f"], x["recall"]) for x in R
                         if x["ok"] and x["dataset"] == ds and x["model_type"] == mt
                         and x["sparsity"] == "static")
            dense = find(ds, mt, 1.0, "dynamic")
            c = COLORS.get(mt, "black")
            lab = MT_NAMES.get(mt, mt)
            if dyn:
                any_data = True
                p = write_dat(f"recall_{ds}_{mt}_dyn", dyn)
                plots.append(f'"{p}" using 1:2 with linespoints lw 2 pt 7 ps 1.2 lc rgb "{c}" title "{lab} DSL"')
            if sta:
                p = write_dat(f"recall_{ds}_{mt}_sta", sta)
                plots.append(f'"{p}" using 1:2 with points pt 5 ps 1.6 lc rgb "{c}" title "{lab} static"')
            if dense:
                plots.append(f'{dense["recall"]} with lines dt 2 lw 1.5 lc rgb "{c}" title "{lab} dense"')
        if ds == "gowalla" and "mf" in mtypes:
            p = write_dat("recall_authors_dsl_mf", AUTHORS_DSL_MF)
            plots.append(f'"{p}" using 1:2 with linespoints dt 3 lw 1.5 pt 2 lc rgb "#555555" title "authors\' DSL code, MF"')
        s += density_axis()
        s += f'set title "{DS_NAMES.get(ds, ds)}"\nset ylabel "Recall@20 (test)"\nset yrange [0:*]\n'
        s += "plot " + ", \\\n     ".join(plots) + "\n" if plots else "plot 0 notitle\n"
    s += "unset multiplot\n"
    if any_data and gnuplot(name, s):
        images.append((name, "Recall@20 on the test split against density: DSL (dynamic mask), "
                       "the static random mask, and the dense model as a dashed line"))


def plot_scale():
    name = "serving_vs_catalogue"
    rows = [x for x in scale if x["clients"] == "1" and x["p50"] is not None]
    if not rows:
        return
    s = (f'set terminal {term} size 700,450 {FONT} noenhanced\n'
         f'set output "{os.path.join(IMG, name + ".png")}"\n'
         'set logscale xy\nset grid\nset key top left box opaque\n'
         'set xlabel "items in the catalogue (dim 64)"\nset ylabel "dsl.recommend p50 (ms), 1 client"\n')
    plots = []
    for n, d in enumerate(sorted({x["density"] for x in rows}, key=lambda v: -float(v))):
        pts = sorted((int(x["n_items"]), x["p50"]) for x in rows if x["density"] == d)
        p = write_dat(f"scale_d{d}", pts)
        plots.append(f'"{p}" using 1:2 with linespoints lw 2 pt 7 title "d = {d}"')
    s += "plot " + ", \\\n     ".join(plots) + "\n"
    if gnuplot(name, s):
        images.append((name, "dsl.recommend p50 against catalogue size, one line per density "
                       "(synthetic models, the sparse serving form below the dense size)"))


def plot_memory():
    name = "memory_vs_density"
    s = panel_header(len(datasets), 600, 470)
    s = s.replace("\n", f'\nset output "{os.path.join(IMG, name + ".png")}"\n', 1)
    any_data = False
    for ds in datasets:
        plots = []
        for mt in mtypes:
            xs = sorted((x["density_f"], mb(x["peak"]), mb(x["est"]))
                        for x in R if x["ok"] and x["dataset"] == ds and x["model_type"] == mt
                        and x["sparsity"] == "dynamic" and x["peak"] is not None)
            st = sorted((x["density_f"], mb(x["peak"]), mb(x["est"]))
                        for x in R if x["ok"] and x["dataset"] == ds and x["model_type"] == mt
                        and x["sparsity"] == "static" and x["peak"] is not None)
            c = COLORS.get(mt, "black")
            lab = MT_NAMES.get(mt, mt)
            if xs:
                any_data = True
                p = write_dat(f"mem_{ds}_{mt}", xs)
                plots.append(f'"{p}" using 1:2 with linespoints lw 2 pt 7 lc rgb "{c}" title "{lab} training peak"')
                plots.append(f'"{p}" using 1:3 with linespoints dt 2 lw 1.5 pt 6 lc rgb "{c}" title "{lab} state estimate"')
            if st:
                p = write_dat(f"mem_{ds}_{mt}_static", st)
                plots.append(f'"{p}" using 1:2 with points pt 5 ps 1.4 lc rgb "{c}" title "{lab} static, training peak"')
        s += density_axis()
        s += (f'set title "{DS_NAMES.get(ds, ds)}"\nset ylabel "MiB"\nset yrange [0:*]\n')
        s += "plot " + ", \\\n     ".join(plots) + "\n" if plots else "plot 0 notitle\n"
    s += "unset multiplot\n"
    if any_data and gnuplot(name, s):
        images.append((name, "Training memory against density: the training's peak by its own "
                       "accounting (dsl.models.train_peak_bytes) and the model-state part, "
                       "active × 14 B + rows × 8 B"))


def plot_curves():
    name = "training_curve"
    ds = "gowalla" if "gowalla" in datasets else (datasets[0] if datasets else None)
    if ds is None:
        return
    mts = [mt for mt in mtypes if any(x["ok"] and x["curve"] and x["dataset"] == ds
                                       and x["model_type"] == mt for x in R)]
    if not mts:
        return
    s = panel_header(len(mts), 600, 400)
    s = s.replace("\n", f'\nset output "{os.path.join(IMG, name + ".png")}"\n', 1)
    styles = [((1.0, "dynamic"), "dense (d = 1)", "#000000", 'dt 2'),
              ((0.5, "dynamic"), "DSL d = 0.5", "#1f77b4", ''),
              ((0.2, "dynamic"), "DSL d = 0.2", "#2ca02c", ''),
              ((0.1, "dynamic"), "DSL d = 0.1", "#9467bd", ''),
              ((0.2, "static"), "static d = 0.2", "#ff7f0e", 'dt 4')]
    for mt in mts:
        plots = []
        for (d, sp), lab, c, dt in styles:
            x = find(ds, mt, d, sp)
            if not x or not x["curve"]:
                continue
            p = write_dat(f"curve_{ds}_{mt}_{d}_{sp}", [(e, r) for e, r, _ in x["curve"]])
            lw = 2.5 if d in (1.0, 0.5) and sp == "dynamic" else 1.2
            plots.append(f'"{p}" using 1:2 with linespoints {dt} lw {lw} pt 7 ps 0.8 lc rgb "{c}" title "{lab}"')
        s += ('set key top left box opaque\nset xrange [0:*]\nset grid\nset xlabel "epoch"\n'
              'set ylabel "validation Recall@20 (= test split)"\nset yrange [0:*]\n'
              f'set title "{MT_NAMES.get(mt, mt)} on {DS_NAMES.get(ds, ds)}"\n')
        s += "plot " + ", \\\n     ".join(plots) + "\n"
    s += "unset multiplot\n"
    if gnuplot(name, s):
        images.append((name, "Training curves: validation Recall@20 by epoch, DSL at d = 0.5 "
                       "against the dense model (other densities thinner)"))


plot_recall()
plot_memory()
plot_curves()
plot_scale()

# ---------------------------------------------------------------------------
# the report
L = []
w = L.append
quick = machine.get("mode") == "QUICK"
defaults_cap = machine.get("defaults_max_epochs") or ""


def defaults_table(ds):
    rows = [x for x in D if x["dataset"] == ds]
    if not rows:
        return
    rows.sort(key=lambda x: -x["density_f"])
    mt = rows[0]["model_type"]
    dense = find_default(ds, 1.0)
    w(f"**What the defaults give (no tuning, no test data for stopping)**: {MT_NAMES.get(mt, mt)}, "
      f"each row one call `SELECT * FROM dsl.train('<name>', '{ds}_train', density => d, "
      f"seed => {machine.get('seed', '1')})`"
      + (f" plus `options => '{{\"max_epochs\": {defaults_cap}}}'` (**QUICK mode only**: at most "
         f"{defaults_cap} epochs, one {defaults_cap}-epoch schedule, so these rows show the pipeline, "
         "not what the defaults give)" if defaults_cap else "")
      + ": nothing else, so `epochs` NULL (the stopping rule on its own seeded hold-out of the "
      "training pairs, doubling 30-epoch cosine schedules while that pays), `batch_size` NULL "
      "(the model type's choice), the default lr schedule, and no `validation` relation: the test "
      "split is used only afterwards, by `dsl.evaluate`. *epochs* is how many ran, *refit* how many "
      "of them retrained from scratch on every pair over the length the stopping rule chose "
      "(`hyperparams->>'refit_epochs'`; the stored model is the refit's last epoch, so then "
      "*best* = *epochs*), *best* the kept epoch (`dsl.models.best_epoch`), *batch* and *schedule steps* are `hyperparams->>'batch_size'` "
      "and `->>'total_steps'` (the last schedule's length), *train (s)* is "
      "`dsl.models.train_seconds`, *wall (s)* the whole `dsl.train` call; ratios are to the dense "
      "(d = 1) default. The last column is what the stopping rule saw: the recall on its hold-out "
      "at the end of each schedule (epoch: recall).")
    w("")
    w("| d | Recall@20 | NDCG@20 | recall vs dense default | recall vs tuned (same d) | epochs | refit | best "
      "| batch | schedule steps | held-out pairs | s/epoch | train (s) | wall (s) | wall vs dense default "
      "| training peak (MiB) | hold-out Recall@20 at schedule ends |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for x in rows:
        if not x["ok"]:
            w(f"| {x['density']} | **failed** (see `.run/bench/defaults/{x['run']}/psql.log`) "
              "| | | | | | | | | | | | | | | |")
            continue
        tuned = find(ds, mt, x["density_f"], "dynamic")
        val = ", ".join(f"{e}: {f4(v)}" for e, v in x["val"]) or "–"
        w(f"| {x['density']} | {f4(x['recall'])} | {f4(x['ndcg'])} "
          f"| {ratio(x['recall'], dense['recall'] if dense else None)} "
          f"| {ratio(x['recall'], tuned['recall'] if tuned else None)} "
          f"| {big(x['epochs_run'])} | {big(x['refit_epochs']) if x['refit_epochs'] else '–'} "
          f"| {big(x['best_epoch'])} | {big(x['batch_size'])} "
          f"| {big(x['total_steps'])} | {big(x['held_out_pairs'])} | {f2(x['epoch_s'])} "
          f"| {f1(x['train_seconds'])} | {f1(x['call_seconds'])} "
          f"| {ratio(x['call_seconds'], dense['call_seconds'] if dense else None)} "
          f"| {f1(mb(x['peak']))} | {val} |")
    w("")


def vs_implicit_section():
    w("### Training speed against implicit's BPR (paired)")
    w("")
    if vs_skipped:
        w(f"Not measured in this run: {vs_skipped}.")
        w("")
        return
    ok = [p for p in vs_pairs if p["ok"]]
    if not ok:
        w("Not measured in this run (no complete pair; see `.run/bench/vs_implicit/run.log`).")
        w("")
        return
    dens = machine.get("vs_density", "0.5")
    k = machine.get("vs_epochs", "?")
    thr = vs_info.get("threads", machine.get("vs_threads", "2"))
    fac = vs_info.get("factors", machine.get("vs_factors", "64"))
    w(f"[implicit](https://github.com/benfred/implicit) {vs_info.get('version', '?')} (MIT), built from "
      "its release source for this comparison only (never a dependency of dsl_rec; "
      "`test/bench/build_implicit.sh`), trains its CPU `BayesianPersonalizedRanking` "
      f"(factors {fac}, {thr} threads, its default lr {vs_info.get('lr', '0.01')} and reg "
      f"{vs_info.get('reg', '0.01')}) on the same "
      f"{DS_NAMES.get(machine.get('vs_dataset', 'gowalla'), 'Gowalla')} training pairs "
      f"(`test/bench/implicit_bpr.py`, a CSR matrix of {big(num(vs_info.get('pairs_trained')))} pairs). "
      f"Beside it, dsl_rec MF trains at d = {dens}: `dsl.train(..., dim => {fac}, density => {dens}, "
      f"epochs => {k}, seed => {machine.get('seed', '1')})`, defaults otherwise, "
      f"`dsl_rec.threads = {thr}`, no validation (`test/bench/vs_implicit_dsl.sql`). "
      f"Each pair is a {k}-epoch implicit block and a {k}-epoch dsl_rec training run one right after "
      "the other, the order alternating from pair to pair, so both sides of a pair see the same spell "
      "of this shared VM; the ratio is taken pair by pair and its median is the figure to quote. "
      "An epoch is as many (user, positive, negative) triples as there are training pairs on both "
      "sides (dsl_rec: every pair once, a sampled negative each, mini-batch Adam with the default "
      "batch size; implicit: pairs drawn at random, a plain SGD update each, no mini-batches); "
      "dsl_rec's *s/epoch* is the mean `seconds` of its epoch rows, "
      "**DSL rounds included** (MF: a prune-and-regrow round every second epoch), implicit's the "
      "time its fit loop measures around each pass; neither includes reading the data or storing. "
      "implicit's model keeps training across its blocks, after one uncounted warm-up epoch"
      + (f" ({vs_warm:.3f} s)" if vs_warm else "") + ".")
    w("")
    w("| pair | first | implicit s/epoch | dsl_rec s/epoch (rounds included) | dsl/implicit "
      "| dsl_rec epochs with a round | epoch with a round | without | implicit block wall (s) "
      "| dsl_rec psql run wall (s) |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in vs_pairs:
        if not p["ok"]:
            w(f"| {p['pair']} | {p['first']} | | **failed** | | | | | | |")
            continue
        first = "implicit" if p["first"] == "implicit" else "dsl_rec"
        w(f"| {p['pair']} | {first} | {p['imp']:.3f} | {p['dsl']:.3f} | {p['ratio']:.2f}× "
          f"| {p['n_rnd']} of {p['n_dsl']} | {f2(p['rnd'])} | {f2(p['plain'])} | {f2(p['imp_wall'])} "
          f"| {f2(p['dsl_wall'])} |")
    mr = median([p["ratio"] for p in ok])
    mi = median([p["imp"] for p in ok])
    md = median([p["dsl"] for p in ok])
    w("")
    w(f"**Median over {len(ok)} pairs: dsl_rec / implicit = {mr:.2f}×** (dsl_rec {md:.3f} s per "
      f"epoch at d = {dens}, rounds included; implicit {mi:.3f} s per epoch; the pairs' ratios "
      f"ranged {min(p['ratio'] for p in ok):.2f}–{max(p['ratio'] for p in ok):.2f}×). On a quiet "
      "machine implicit's BPR epoch took about 0.24 s; the absolute times here depend on what else "
      "the VM was running, the ratio much less.")
    w("")
    w("Caveat: implicit's Recall@20 on this split peaks at 0.0865 (measured earlier, full ranking "
      "with training items excluded; dsl_rec MF's is in the tables above), so speed is compared per "
      "epoch, not per quality: an epoch of either buys a different amount of accuracy.")
    w("")

def fresh_section():
    """The "keeping fresh" block: a continuation against a retraining."""
    fd = os.path.join(RES, "fresh")
    skipped = os.path.join(fd, "skipped.txt")
    runs = read_csv(os.path.join(fd, "fresh.csv")) if os.path.exists(os.path.join(fd, "fresh.csv")) else []
    rp = read_csv(os.path.join(fd, "replay.csv")) if os.path.exists(os.path.join(fd, "replay.csv")) else []
    w("### Keeping a model fresh: continuing it against training it again")
    w("")
    if os.path.exists(skipped) or not runs or not rp:
        why = open(skipped).read().strip() if os.path.exists(skipped) else \
            "the block failed (see `.run/bench/fresh/psql.log`)"
        w(f"Not measured in this run: {why}.")
        w("")
        return
    rp = rp[0]
    ds = machine.get("fresh_dataset", "gowalla")
    dens = machine.get("fresh_density", "0.5")
    ep = machine.get("fresh_epochs", "60")
    by = {r["run"]: r for r in runs}
    y, c, f = by.get("fresh_yesterday"), by.get("fresh_continued"), by.get("fresh_retrained")
    w(f"Replay on {DS_NAMES.get(ds, ds)} (`test/bench/keep_fresh.sql`): *yesterday* is the training "
      f"split without every pair of a seeded 2 % of its users and without a seeded 3 % of the other "
      f"pairs ({big(num(rp['yesterday_pairs']))} pairs, {big(num(rp['yesterday_users']))} users); "
      f"*today* is the whole training split ({big(num(rp['today_pairs']))} pairs, "
      f"{big(num(rp['today_users']))} users). Yesterday's model: MF, `density => {dens}, epochs => {ep}`, "
      f"defaults otherwise. Today it is either continued, `dsl.train(..., warm_start => "
      f"'fresh_yesterday')` with nothing else (its length, lr and ζ are the continuation defaults, "
      f"docs/lifecycle.md), or trained from scratch with yesterday's settings. Test Recall@20 on the "
      f"whole test split, on the users yesterday's model knew, and on the "
      f"{big(num(rp['new_test_users']))} new users alone; yesterday's model does not know the new users "
      f"(`dsl.evaluate` leaves them out and `dsl.recommend` gives them the popularity fallback).")
    w("")
    w("| model | epochs | call (s) | lr | Recall@20 | NDCG@20 | known users | new users |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for lab, r in (("yesterday's (stale today)", y), ("continued (warm_start)", c),
                   ("trained again from scratch", f)):
        if r is None:
            continue
        newu = f4(num(r["recall_new"])) if r["recall_new"] not in ("", None) else "not known"
        w(f"| {lab} | {r['epochs']} | {f1(num(r['call_seconds']))} | {num(r['lr']):g} "
          f"| {f4(num(r['recall']))} | {f4(num(r['ndcg']))} | {f4(num(r['recall_known']))} | {newu} |")
    w("")
    if c and f:
        w(f"The continuation took **{f1(num(c['call_seconds']))} s, "
          f"{ratio(num(c['call_seconds']), num(f['call_seconds']))} of training again** "
          f"({f1(num(f['call_seconds']))} s), for Recall@20 "
          f"{ratio(num(c['recall']), num(f['recall']))} of the retrained model's "
          f"(new users: {ratio(num(c['recall_new']), num(f['recall_new']))}); "
          f"{big(num(c['new_interactions']))} of the {big(num(rp['today_pairs']))} pairs were new.")
        w("")


def fold_section():
    """The "new users" block: the fold-in of test users' histories."""
    fd = os.path.join(RES, "fold")
    w("### New users: recommending from a history (fold-in)")
    w("")
    if os.path.exists(os.path.join(fd, "skipped.txt")):
        w(f"Not measured in this run: {open(os.path.join(fd, 'skipped.txt')).read().strip()}.")
        w("")
        return
    users = read_csv(os.path.join(fd, "users.csv"))
    sg = read_csv(os.path.join(fd, "sg.csv"))
    if not users and not sg:
        w("Not measured in this run (the block failed or no defaults model was trained; "
          "see `.run/bench/fold/psql.log`).")
        w("")
        return
    if users:
        w("`dsl.recommend_for_items` folds a history into a user row against the fixed item rows "
          "(docs/serving.md). Here every test user of each \"defaults\" model is evaluated twice "
          "on the test split: by its stored row (`dsl.evaluate`) and by folding in its own training "
          "items as if it were a new user (`dsl.evaluate_histories(model, '<ds>_train', '<ds>_test')`).")
        w("")
        w("| model | Recall@20 stored | Recall@20 folded in | folded / stored | NDCG@20 stored | NDCG@20 folded in | s (stored / folded) |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        by = {}
        for r in users:
            by.setdefault(r["model"], {}).setdefault(r["how"], {})[r["metric"]] = num(r["value"])
            by[r["model"]][r["how"]]["_s"] = num(r["seconds"])
        for mname in sorted(by):
            st, fo = by[mname].get("stored", {}), by[mname].get("folded_in", {})
            w(f"| {mname} | {f4(st.get('recall'))} | {f4(fo.get('recall'))} "
              f"| {ratio(fo.get('recall'), st.get('recall'), 3)} | {f4(st.get('ndcg'))} | {f4(fo.get('ndcg'))} "
              f"| {f1(st.get('_s'))} / {f1(fo.get('_s'))} |")
        w("")
    if sg:
        r0 = sg[0]
        w(f"**Strong generalization, MovieLens-1M (the DSL reference's split, "
          f"`ml-1m/dsl_multvae_pro_sg`)**: MF and MultVAE trained with `dsl.train(name, 'sg_train', "
          f"model_type => t, density => d, seed => {machine.get('seed', '1')})` on {big(num(r0['train_pairs']))} pairs of "
          f"{big(num(r0['train_users']))} users, then {big(num(r0['test_users']))} held-out users "
          f"given by {big(num(r0['fold_in_pairs']))} fold-in pairs and tested on "
          f"{big(num(r0['test_pairs']))} (`dsl.evaluate_histories`). `recall_truncated` (hits / "
          f"min(20, |test|)) is the metric of the MultVAE paper and of the DSL authors' code, whose "
          f"MultVAE measured 0.3096 dense and 0.3065 at d = 0.5 on this split (DSL.md)."
          + (" **QUICK mode: at most "
             f"{machine.get('defaults_max_epochs')} epochs.**" if machine.get("defaults_max_epochs") else ""))
        w("")
        w("| model | d | epochs | call (s) | recall_truncated@20 | Recall@20 | NDCG@20 | vs MultVAE (authors' code) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        byd = {}
        for r in sg:
            key = (r.get("model_type", "mf"), r["density"])
            byd.setdefault(key, dict(epochs=r["epochs"], secs=num(r["call_seconds"])))[r["metric"]] = num(r["value"])
        anchors = {1.0: 0.3096, 0.5: 0.3065}
        for key in sorted(byd, key=lambda x: (x[0], -float(x[1]))):
            x = byd[key]
            a = anchors.get(float(key[1]))
            w(f"| {key[0]} | {float(key[1]):g} | {x['epochs']} | {f1(x['secs'])} | {f4(x.get('recall_truncated'))} "
              f"| {f4(x.get('recall'))} | {f4(x.get('ndcg'))} | {ratio(x.get('recall_truncated'), a) if a else '–'} |")
        w("")


w("# Benchmarks")
w("")
w("<!-- GENERATED by `make bench` (test/bench.sh + test/bench/report.py): do not edit by hand. -->")
w("")
if quick:
    w("> **QUICK mode** (`BENCH_QUICK=1`): few epochs, Gowalla MF only. These numbers show that the")
    w("> pipeline works; they are not the reference figures. Run `make bench` for the full suite.")
    w("")
w(f"Every figure below was measured in one run of `make bench` on {machine.get('date', '?')}, "
  f"on the machine described here; the whole run took **{hms(float(machine.get('total_seconds', '0')))}** "
  f"(data loading, {len(R)} tuned trainings, {len(D)} with the defaults, the speed repeats"
  f"{' and the paired timing against implicit' if vs_pairs else ''}, serving benchmarks; the build "
  f"and cluster start "
  f"before it are not counted).")
w("")
w("| | |")
w("|---|---|")
w(f"| CPU | {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores (`nproc`), {machine.get('mem_total', '?')} RAM |")
w(f"| OS | {machine.get('kernel', '?')} |")
w(f"| PostgreSQL | {machine.get('postgres', '?')} |")
w(f"| server settings | shared_buffers {machine.get('shared_buffers', '?')}, `maintenance_work_mem = 2GB` in the training sessions, `dsl_rec.threads` = {machine.get('threads') or '?'} |")
w(f"| OpenBLAS | {machine.get('openblas') or '?'} |")
w(f"| dsl_rec | {machine.get('extension', '?')}, git commit `{machine.get('commit', '?')}` |")
serving_only = [l.split()[0] for l in model_types if l.endswith("in the serving sections")]
w(f"| model types | accuracy and speed grid: {', '.join(MT_NAMES.get(m, m) for m in mtypes) or 'none'}"
  f"{'; in the serving sections: ' + ', '.join(MT_NAMES.get(m, m) for m in serving_only) if serving_only else ''}; "
  f"`dsl.train` knows: {machine.get('extension_types') or '?'} |")
w(f"| seeds | training `seed => {machine.get('seed')}`, MovieLens-1M split seed {machine.get('split_seed')} |")
w("")
w("The machine is a shared 2-core VM; timings are wall-clock times of single runs, so expect a few")
w("per cent of noise between runs.")
w("")

# protocol
w("## Protocol")
w("")
w("- **Data** (read from the shared data directory, never copied into the repository):")
for ds in datasets:
    ld = loads.get(ds, {})
    desc = {
        "gowalla": "`gowalla/train.txt` / `test.txt`, the NGCF/LightGCN split",
        "ml1m": f"`ml-1m/ml-1m_implicit_pairs.tsv`, all 1,000,209 pairs, split per user 80/20 by "
                f"`dsl.split(..., test_fraction => 0.2, seed => {machine.get('split_seed')})`",
        "lastfm": "`lastfm/lightgcn_lastfm/data1.txt` (train) / `test1.txt` (test), weights ignored",
    }.get(ds, ds)
    w(f"  - {DS_NAMES.get(ds, ds)}: {desc}; {big(num(ld.get('train_pairs')))} train / "
      f"{big(num(ld.get('test_pairs')))} test pairs, {big(num(ld.get('train_users')))} users, "
      f"{big(num(ld.get('train_items')))} items (loaded in {f1(num(ld.get('load_seconds')))} s).")
w("- **Metrics**: Recall@20 and NDCG@20 by `dsl.evaluate` on the test split: full ranking over all")
w("  items, each user's training items excluded, averaged over the test users (LightGCN/NGCF")
w("  convention).")
w("- **Model selection**: each training gets `validation => <test split>, eval_every => N`; the stored")
w("  model is the best evaluated epoch and *epochs to best* is `dsl.models.best_epoch`. Validation")
w("  on the test split is the LightGCN/NGCF convention (their published numbers are the best test")
w("  epoch); it flatters every row equally, ours and the anchors alike. The *defaults* tables are")
w("  the exception: there `dsl.train` decides how long to train on a hold-out of the training pairs")
w("  and never sees the test split.")
w("- **Density** d: the fraction of embedding weights that is active during the whole training and")
w("  in the stored model. d = 1 is the dense model. *DSL* = `sparsity => 'dynamic'` (magnitude")
w("  pruning + gradient regrowth, cosine-decayed update ratio from 0.5; with `update_interval` NULL")
w("  the model type's default: MF a round every second epoch, its regrowth gradient summed over the")
w("  epoch before the round; LightGCN a round every epoch); *static* = `sparsity => 'static'` (the")
w("  random initial mask is kept).")
w("- **Speed**: *s/epoch* is the mean `seconds` of the epoch rows (training steps only, no")
w("  evaluation); *throughput* = training interactions / s/epoch; *wall* is")
w("  `dsl.models.train_seconds` (reading the data, all epochs, the validation evaluations, storing).")
w("- **Memory**: *training peak* is `dsl.models.train_peak_bytes`, the training's own accounting of")
w("  the bytes its memory context held at its high points (interactions, id maps, parameters and")
w("  moments, per-step buffers, the MF regrowth sums, a round's temporaries; validation blocks are")
w("  freed in between and not included; docs/training.md). Each training runs in a fresh")
w("  connection; *peak RSS* is VmHWM of that backend from")
w("  `/proc/self/status` after training. RSS includes the pages of shared buffers the backend touched")
w("  (reading the source table), about 10–20 MiB for a fresh backend before training. *Model state*")
w("  is the documented estimate active × 14 B + rows × 8 B (docs/training.md); the dense model in")
w("  plain float32 with Adam would need 12 B per weight. *Stored* is the sum of `pg_column_size(vec)`")
w("  over the model's `dsl.parameters` rows; *on disk* is its share (by row bytes) of")
w("  `pg_total_relation_size` of `dsl.parameters` + `dsl.seen_items` (heap, TOAST, indexes).")
w("")
w("Settings (from the top of `test/bench.sh`; Adam, `update_ratio` 0.5, cosine schedule, gradient "
  "growth, magnitude pruning, k = 20):")
w("")
w("| data set | model | dim | batch | lr | reg | epochs | eval every | update_interval | options |")
w("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
seen = set()
for x in R:
    key = (x["dataset"], x["model_type"])
    if key in seen:
        continue
    seen.add(key)
    ui = ("default (every 2nd epoch)" if x["model_type"] == "mf" else "default (every epoch)") \
        if x["update_interval"] == "NULL" else x["update_interval"]
    w(f"| {DS_NAMES.get(x['dataset'], x['dataset'])} | {MT_NAMES.get(x['model_type'], x['model_type'])} "
      f"| {x['dim']} | {x['batch']} | {x['lr']} | {x['reg']} | {x['epochs']} | {x['eval_every']} | {ui} "
      f"| `{x['options']}` |")
w("")

# results per data set
w("## Quality, speed and memory")
w("")
for ds in datasets + [d for d in defaults_datasets if d not in datasets]:
    w(f"### {DS_NAMES.get(ds, ds)}")
    w("")
    if ds in datasets:
        w("Tuned (the settings above, model selection on the test split):")
        w("")
    if ds not in datasets:
        defaults_table(ds)
        continue
    w("| model | mask | d | active weights | Recall@20 | NDCG@20 | recall vs dense | best / run epochs "
      "| s/epoch | interactions/s | wall (s) | training peak (MiB) | peak vs dense | model state (MiB) "
      "| peak RSS (MiB) | stored (MiB) | on disk (MiB) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mt in mtypes:
        dense = find(ds, mt, 1.0, "dynamic")
        rows = [x for x in R if x["dataset"] == ds and x["model_type"] == mt]
        rows.sort(key=lambda x: (x["sparsity"] != "dynamic", -x["density_f"]))
        for x in rows:
            lab = MT_NAMES.get(mt, mt)
            mask = "dense" if x["density_f"] == 1.0 and x["sparsity"] == "dynamic" else \
                ("DSL" if x["sparsity"] == "dynamic" else "static")
            if not x["ok"]:
                w(f"| {lab} | {mask} | {x['density']} | | **failed** (see `.run/bench/runs/{x['run']}/psql.log`) "
                  "| | | | | | | | | | | | |")
                continue
            be = f"{int(x['best_epoch'])} / {x['epochs_run']}" if x["best_epoch"] else f"– / {x['epochs_run']}"
            w(f"| {lab} | {mask} | {x['density']} | {big(x['active'])} | {f4(x['recall'])} | {f4(x['ndcg'])} "
              f"| {ratio(x['recall'], dense['recall'] if dense else None)} | {be} "
              f"| {f2(x['epoch_s'])} | {rate(x['throughput'])} | {f1(x['train_seconds'])} "
              f"| {f1(mb(x['peak']))} | {ratio(x['peak'], dense['peak'] if dense else None)} "
              f"| {f1(mb(x['est']))} | {f1(mb(x['hwm']))} | {f1(mb(x['vec_bytes']))} "
              f"| {f1(mb(x['table_bytes']))} |")
    w("")
    # static vs dynamic
    lines = []
    for mt in mtypes:
        for x in R:
            if x["dataset"] == ds and x["model_type"] == mt and x["sparsity"] == "static" and x["ok"]:
                dyn = find(ds, mt, x["density_f"], "dynamic")
                if dyn:
                    lines.append(f"{MT_NAMES.get(mt, mt)} at d = {x['density']}: static mask "
                                 f"{f4(x['recall'])} vs DSL {f4(dyn['recall'])} "
                                 f"(static / DSL = {ratio(x['recall'], dyn['recall'])})")
    if lines:
        w("Static vs dynamic: " + "; ".join(lines) + ".")
        w("")
    defaults_table(ds)

fresh_section()
fold_section()

# training speed
if speed:
    sd = machine.get("speed_dataset", "gowalla")
    ref = find(sd, machine.get("speed_model", "mf"), 1.0, "dynamic")
    n_inter = ref["n_inter"] if ref else None
    if n_inter is None and sd in loads:
        n_inter = num(loads[sd].get("train_pairs"))
    w(f"### Training speed: {MT_NAMES.get(machine.get('speed_model', 'mf'), 'MF-BPR')} on "
      f"{DS_NAMES.get(sd, sd)}, densities alternated")
    w("")
    w(f"{machine.get('speed_reps', '?')} repeats of {machine.get('speed_epochs', '?')}-epoch trainings with "
      "the settings above and no validation, the densities run one after the other in every repeat, so "
      "that each sees the same share of this shared VM's fast and slow spells (single runs above can "
      "differ by a third between spells). *s/epoch* is a run's mean over all its epochs, DSL rounds "
      "included; the median and the fastest run are shown, and the mean epoch with and without a round "
      "(MF: the epoch before a round also sums the regrowth gradient).")
    w("")
    w("| d | runs | s/epoch, each run | median s/epoch | fastest run | interactions/s (median) "
      "| epoch with a round | epoch without |")
    w("|---:|---:|---|---:|---:|---:|---:|---:|")
    for d in sorted(speed, key=lambda x: -float(x)):
        v = speed[d]
        med = median([x["mean"] for x in v])
        rnd = [x["rnd"] for x in v if x["rnd"] is not None]
        plain = [x["plain"] for x in v if x["plain"] is not None]
        w(f"| {d} | {len(v)} | {', '.join(f2(x['mean']) for x in v)} | {f2(med)} "
          f"| {f2(min(x['mean'] for x in v))} | {rate(n_inter / med) if n_inter and med else ''} "
          f"| {f2(median(rnd)) if rnd else '–'} | {f2(median(plain)) if plain else '–'} |")
    w("")

if vs_skipped or vs_pairs:
    vs_implicit_section()

# anchors
if "gowalla" in datasets:
    w("### Gowalla beside published numbers (same split, Recall@20 / NDCG@20)")
    w("")
    w("| model | d | source | Recall@20 | NDCG@20 | recall vs its dense | s/epoch (this CPU) |")
    w("|---|---:|---|---:|---:|---:|---|")
    for mt in mtypes:
        lab = MT_NAMES.get(mt, mt)
        dense = find("gowalla", mt, 1.0, "dynamic")
        for d in (1.0, 0.5, 0.2, 0.1):
            x = find("gowalla", mt, d, "dynamic")
            if x:
                w(f"| {lab} | {x['density']} | **dsl_rec, this run** | **{f4(x['recall'])}** | "
                  f"**{f4(x['ndcg'])}** | {ratio(x['recall'], dense['recall'] if dense else None)} "
                  f"| {f2(x['epoch_s'])} |")
        for a in ANCHORS:
            if a[0] != lab:
                continue
            sp, rv = "", ""
            if a[1].startswith("authors' DSL"):
                rv = ratio(a[3], AUTHORS_DSL_MF[0][1])
                sp = {"1.0": "≈ 6.5", "0.5": "6.3–9.3"}.get(a[2], "")
            w(f"| {lab} | {a[2]} | {a[1]} | {a[3]:.4f} | {a[4]:.4f} | {rv} | {sp} |")
        if mt == "lightgcn":
            w("| LightGCN | 1.0 | authors' DSL code (PyTorch), measured | | | | ≈ 270 (347 ms per batch-1024 step) |")
    w("")
    w("The authors' DSL code was run on this CPU on the same split (MF: dim 64, batch 2048, Adam")
    w("1e-3, ΔT 3000); its active count collapsed during training (target 0.5 ended at 0.22). The")
    w("published rows are from the NGCF and LightGCN papers, the official LightGCN-PyTorch README and")
    w("freerec's tuned MF-BPR; all use full ranking with the best test epoch.")
    w("")

# serving
w("## Serving")
w("")
if serve:
    w(f"`pgbench -n -T {machine.get('pgbench_seconds')} -c N -j N --log` with a custom script that "
      "picks a random user of the model each transaction (scripts in `test/bench/*.pgbench`):")
    w("")
    w("- `dsl.recommend`: `SELECT * FROM dsl.recommend('<model>', :uid, 20)` (training items excluded);")
    w("- `dsl.recommend_for_items`: top 20 for a 50-item history (a random user's training items, topped")
    w("  up with the next users' to 50), read from `dsl.seen_items` in the same statement and folded in;")
    w("- plain SQL: `SELECT i.entity_id, i.vec <#> u.vec FROM dsl.parameters u JOIN dsl.parameters i ...")
    w("  ORDER BY i.vec <#> u.vec LIMIT 20` over the stored rows (exact, no index, seen items not")
    w("  excluded).")
    w("")
    w("Models: the grid's Gowalla MF and LightGCN models (MF at d = 0.2 and 0.1 too, `dsl.recommend` with one client")
    w("only, for the latency at every density), and Gowalla MultVAE and NeuMF models (defaults: NeuMF")
    w("dim 64, MLP [64, 32, 16, 8]) trained in this block for their serving speed only (`*_multvae_d*_serve`,")
    w("`*_neumf_d*_serve`, a few epochs: their accuracy is docs/multvae.md's and docs/neumf.md's). The plain-SQL")
    w("`<#>` query runs for the inner-product models only: it cannot express the others' scores.")
    w("")
    w("dsl_rec is preloaded: the first call of each connection maps the server's shared copy of the model (*first")
    w("call*, max over clients) and is left out of the latency percentiles and of *warm tx/s*; a")
    w("warm-up pgbench run precedes each measured one. *pgbench tx/s* is pgbench's own figure")
    w("(without connection time, first calls included).")
    w("")
    w("| model | query | clients | transactions | p50 (ms) | p99 (ms) | mean (ms) | warm tx/s | pgbench tx/s | first call (ms) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in serve:
        q = {"recommend": "`dsl.recommend`", "recommend_for_items": "`dsl.recommend_for_items`"}.get(
            s["query"], "plain SQL `<#>`")
        w(f"| {s['model']} | {q} | {s['clients']} | {big(s['n'])} | {f2(s['p50'])} | {f2(s['p99'])} "
          f"| {f2(s['mean'])} | {f1(s['warm_tps'])} | {f1(num(s['pgbench_tps']))} | {f1(s['first'])} |")
    w("")
    w("Anchor: pgvector top-20 over Gowalla's 41k 64-d items measured 11.7 ms exact and 3.2 ms with an")
    w("HNSW index (DSL.md).")
    w("")
else:
    w("Not measured in this run (the Gowalla MF models were not trained).")
    w("")

# serving vs catalogue size and density
w("### Serving vs catalogue size and density")
w("")
if os.path.exists(os.path.join(RES, "scale", "skipped.txt")):
    w("Not measured in this run (`BENCH_SCALE=0`).")
    w("")
elif not scale:
    w("Not measured in this run (see `.run/bench/scale/*.log`).")
    w("")
else:
    w("Synthetic MF models (`test/bench/serve_scale.sql`): 1,000 users and *n* items, dim 64, each item "
      "entry stored with probability d (seeded random values, the rest zero), two seen items per user; "
      "served from the server's shared copy (dsl_rec preloaded). *load* is the first call of the first "
      "connection (reading the rows, building the served form, sharing it) after the rows were written "
      "out by a `CHECKPOINT`, *map* the first call of a second connection (mapping the shared copy); "
      "*served* is `dsl.serving_cache().bytes`, *vectors* the `pg_column_size` of the stored vectors, "
      "*rows* that of the stored rows (each also holds a tuple header, the model id, part and entity id, "
      "read whatever the vector's density); *load MB/s* is each over the load seconds; p50/p99 are warm "
      f"`dsl.recommend(k => 20)` latencies from {machine.get('pgbench_seconds')} s pgbench runs of a "
      "random user; *all* is `dsl.recommend_all(k => 20)` for the 1,000 users (best of two warm calls).")
    w("")
    w("| items | d | stored item entries | vectors (MB) | rows (MB) | served (MB) | load (s) | load MB/s of vectors | of rows | map (s) | p50 1 client (ms) | p99 1 client (ms) | p50 2 clients (ms) | p50 vs dense | all (s) | all vs dense |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted({(int(x["n_items"]), x["density"]) for x in scale}, key=lambda k: (k[0], -float(k[1])))
    for n_items, d in keys:
        one = next((x for x in scale if int(x["n_items"]) == n_items and x["density"] == d and x["clients"] == "1"), None)
        two = next((x for x in scale if int(x["n_items"]) == n_items and x["density"] == d and x["clients"] == "2"), None)
        dense = next((x for x in scale if int(x["n_items"]) == n_items and float(x["density"]) == 1.0 and x["clients"] == "1"), None)
        ld = (one or two or {}).get("load", {})
        dld = (dense or {}).get("load", {})
        stored, secs = mb(num(ld.get('stored_bytes'))), num(ld.get('load_seconds'))
        rows = mb(num(ld.get('stored_row_bytes')))
        w(f"| {n_items:,} | {d} | {big(num(ld.get('stored_item_entries')))} | {f1(stored)} | {f1(rows)} "
          f"| {f1(mb(num(ld.get('served_bytes'))))} | {f2(secs)} "
          f"| {f1(stored / secs) if stored and secs else '–'} "
          f"| {f1(rows / secs) if rows and secs else '–'} "
          f"| {f2(num(ld.get('second_connection_seconds')))} | {f2(one['p50'] if one else None)} "
          f"| {f2(one['p99'] if one else None)} | {f2(two['p50'] if two else None)} "
          f"| {ratio(one['p50'] if one else None, dense['p50'] if dense else None)} "
          f"| {f2(num(ld.get('recommend_all_seconds')))} "
          f"| {ratio(num(ld.get('recommend_all_seconds')), num(dld.get('recommend_all_seconds')))} |")
    w("")

if rec_all:
    w(f"`dsl.recommend_all(model, {machine.get('k', '20')})`, top-20 of every user, in a fresh connection "
      "(*cold* includes loading the model, *warm* is a second call in the same session):")
    w("")
    w("| model | users | rows | cold (s) | warm (s) | users/s (warm) |")
    w("|---|---:|---:|---:|---:|---:|")
    for r in rec_all:
        wa = num(r["warm_seconds"])
        u = num(r["users"])
        w(f"| {r['model']} | {big(u)} | {big(num(r['rows']))} | {f2(num(r['cold_seconds']))} "
          f"| {f2(wa)} | {big(u / wa) if wa and u else '–'} |")
    w("")

# NeuMF's epoch against the authors' NeuMF code
nm_speed = read_csv(os.path.join(RES, "serve", "neumf_speed.csv"))
if nm_speed:
    secs = [num(r["seconds"]) for r in nm_speed if num(r["seconds"])]
    # The authors' NeuMF (PyTorch, dense nn.Embedding tables, dense Adam and a
    # dense mask multiplied in every step) at its published shape on Gowalla:
    # GMF 16, MLP [32, 32, 16, 8] (MLP embeddings 16), 4 negatives per
    # positive, batch 512.  Its steps cost what its full-table passes cost; the
    # authors' MF code on this CPU, measured, spends 6.5 s on 396 steps over
    # 4.53 M parameters (3.6 ns per parameter per step, DSL.md).
    N_TRAIN, N_USERS, N_ITEMS = 810128, 29858, 40981
    params = 2 * 16 * (N_USERS + N_ITEMS) + (32 * 32 + 32) + (32 * 16 + 16) + (16 * 8 + 8) + (16 + 8 + 1)
    steps = math.ceil(N_TRAIN * 5 / 512)
    per_param = 6.5 / (math.ceil(N_TRAIN / 2048) * 64 * (N_USERS + N_ITEMS))
    est = steps * params * per_param
    mean = sum(secs[1:]) / len(secs[1:]) if len(secs) > 1 else (secs[0] if secs else None)
    w("### NeuMF training against the authors' NeuMF code")
    w("")
    w(f"`dsl.train(model_type => 'neumf', dim => 16, density => 0.5, options => "
      f"'{{\"mlp_layers\": [32, 32, 16, 8], \"loss\": \"log\", \"negatives\": 4}}')` on "
      f"Gowalla, the authors' shape and loss ({big(N_TRAIN * 5)} scored pairs an epoch): "
      f"{', '.join(f2(x) for x in secs)} s for its {len(secs)} epochs (mean after the first: {f2(mean)} s).")
    w("")
    w(f"The authors' NeuMF code was not run here (no PyTorch on this machine). Estimate: it keeps dense "
      f"embedding tables, dense Adam moments and a dense mask, so each of its {big(steps)} steps an epoch "
      f"(batch 512 of {big(N_TRAIN * 5)} rows) passes over all {big(params)} parameters; at the "
      f"{per_param * 1e9:.1f} ns per parameter per step measured for the authors' MF code on this CPU "
      f"(6.5 s for 396 steps over 4.53 M parameters) that is ≈ {est:.0f} s an epoch, before its Python "
      f"negative sampling ({big(N_TRAIN * 4)} draws an epoch). "
      + (f"dsl_rec: {est / mean:.0f}× faster per epoch." if mean else ""))
    w("")

# plots
if images:
    w("## Plots")
    w("")
    for name, cap in images:
        w(f"![{cap}](img/{name}.png)")
        w("")
        w(f"*{cap}.*")
        w("")

# notes
notes = [l for l in model_types if "unavailable" in l or "not benchmarked" in l]
failed = [x["run"] for x in R if not x["ok"]]
failed_d = [x["run"] for x in D if not x["ok"]]
if notes or failed or failed_d:
    w("## Not covered in this run")
    w("")
    for l in notes:
        w(f"- model type {l}")
    for f in failed:
        w(f"- training `{f}` failed (`.run/bench/runs/{f}/psql.log`)")
    for f in failed_d:
        w(f"- training `{f}` failed (`.run/bench/defaults/{f}/psql.log`)")
    w("")

w("## Reproduce")
w("")
w("```sh")
w("make bench                  # the full suite, writes docs/benchmarks.md and docs/img/*.png")
w("BENCH_QUICK=1 make bench    # a smoke run: Gowalla MF, few epochs; report in .run/bench/report/")
w("```")
w("")
w("The data directory defaults to `../shared/data` next to the repository (`DSL_DATA` overrides it;")
w("without it the bench skips). The comparison with implicit needs its source tarball and build")
w("script in `../shared/vendor` (`DSL_VENDOR` overrides it; without them that part skips) and")
w("Debian's python3-dev, python3-numpy, python3-scipy, cython3, g++, python3-setuptools, python3-tqdm")
w("and python3-threadpoolctl, which `make bench` installs when run as root. Settings are at the top")
w("of `test/bench.sh`; raw results (CSV per")
w("step, psql and pgbench logs) are under `.run/bench/`, and `python3 test/bench/report.py")
w(".run/bench .run/bench/report` regenerates this page from them.")
w("")

with open(os.path.join(REP, "benchmarks.md"), "w") as f:
    f.write("\n".join(L))
print(f"report: {os.path.join(REP, 'benchmarks.md')}, {len(images)} plot(s)")
