#!/usr/bin/env python3
"""test/bench/report_lightgcn.py - the report of `make bench-lightgcn`.

    report_lightgcn.py RESULTS_DIR REPORT_DIR
        reads what test/bench_lightgcn.sh wrote under RESULTS_DIR and writes
        REPORT_DIR/section.md (a section of docs/benchmarks.md, between the
        markers below) and REPORT_DIR/img/lightgcn_curve.png (gnuplot);
    report_lightgcn.py --merge SECTION_FILE TARGET_MD
        puts the section into TARGET_MD in place of the one between the
        markers, or at its end when it has none (`make bench` uses this to
        keep the section when it rewrites docs/benchmarks.md).

Standard library only.
"""
import os
import subprocess
import sys

from bench_common import f4, num, read_csv, read_kv

BEGIN = "<!-- bench-lightgcn -->"
END = "<!-- /bench-lightgcn -->"
PUBLISHED = 0.1830          # LightGCN paper, Gowalla, Recall@20 after 1000 epochs
TARGET_MINUTES = 60          # issue 14: within an hour on this machine


def merge(section_file, target):
    section = open(section_file).read().strip("\n")
    text = open(target).read() if os.path.exists(target) else ""
    b, e = text.find(BEGIN), text.find(END)
    if b >= 0 and e > b:
        text = text[:b] + section + text[e + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(target, "w") as f:
        f.write(text)


def report(res, out):
    img = os.path.join(out, "img")
    os.makedirs(img, exist_ok=True)
    machine = read_kv(os.path.join(res, "machine.txt"))
    runs = []
    for r in read_csv(os.path.join(res, "runs.csv")):
        d = os.path.join(res, "runs", r["run"])
        ep = read_csv(os.path.join(d, "epochs.csv"))
        model = (read_csv(os.path.join(d, "model.csv")) or [{}])[0]
        ev = {x["metric"]: num(x["value"]) for x in read_csv(os.path.join(d, "eval.csv"))}
        call = (read_csv(os.path.join(d, "train_time.csv")) or [{}])[0]
        refit = int(num(model.get("refit_epochs")) or 0)
        trials = int(num(model.get("trial_epochs")) or 0)
        first = len(ep) - refit - trials
        t, curve = 0.0, []
        for e in ep:
            t += num(e["seconds"]) or 0.0
            if num(e["recall"]) is not None:
                curve.append((t / 60.0, num(e["recall"])))
        secs = sorted(num(e["seconds"]) for e in ep if num(e["seconds"]) is not None)
        runs.append(dict(r, ok=r["status"] == "ok" and "recall" in ev, epochs=len(ep), first=first,
                         refit=refit, trials=trials, reg=model.get("reg"), best=model.get("best_epoch"), curve=curve,
                         call=num(call.get("call_seconds")), recall=ev.get("recall"),
                         ndcg=ev.get("ndcg"), median_epoch=secs[len(secs) // 2] if secs else None,
                         batch=model.get("batch_size"), density_f=num(r["density"])))
    dense = next((x for x in runs if x["ok"] and x["density_f"] == 1.0 and x["sparsity"] == "dynamic"), None)

    lines = [BEGIN, "## LightGCN with its defaults, trained to the end (`make bench-lightgcn`)", ""]
    lines += [f"{machine.get('date', '?')}, commit {machine.get('commit', '?')}, "
              f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
              f"`dsl_rec.threads` {machine.get('threads', '?')}). Each row is one call "
              "`dsl.train(name, 'gowalla_train', model_type => 'lightgcn', density => d, seed => 1)` "
              "with nothing else (reg chosen between 0.001 and 0.0001 on the first 30-epoch schedule, "
              "the stopping rule on its own hold-out, then the refit on every "
              "pair when it fits in `max_seconds`, 3600 s), then `dsl.evaluate` on `gowalla_test` "
              "(full ranking). *epochs* counts the reg trials that did not go on, the first phase "
              "and the refit; *call s* is the whole call; the load average after each run shows "
              "whether other work shared the two cores (results depend on time only through "
              "`max_seconds`).", ""]
    if machine.get("max_epochs"):
        lines += [f"**Smoke run**: `options => '{{\"max_epochs\": {machine['max_epochs']}}}'` was added, "
                  "so these rows test the pipeline, not what the defaults give.", ""]
    lines += ["| d | mask | reg | epochs (trials + first phase + refit) | kept epoch | batch | s/epoch (median) "
              "| call s | Recall@20 | NDCG@20 | × dense | × published (0.1830) | load after |",
              "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in runs:
        if not x["ok"]:
            lines.append(f"| {x['density']} | {x['sparsity']} | **{x['status']}** (see "
                         f"`.run/bench_lightgcn/runs/{x['run']}/psql.log`) | | | | | | | | | | |")
            continue
        ep = f"{x['first']} + {x['refit']}" if x["refit"] else f"{x['first']} + no refit"
        ep = f"{x['trials']} + {ep}"
        vs = f"{x['recall'] / dense['recall']:.3f}×" if dense and dense["recall"] else "–"
        lines.append(f"| {x['density']} | {'DSL' if x['sparsity'] == 'dynamic' else 'static'} "
                     f"| {x['reg'] or '–'} | {ep} "
                     f"| {x['best'] or '–'} | {x['batch'] or '–'} | {x['median_epoch']:.2f} "
                     f"| {x['call']:.0f} | {f4(x['recall'])} | {f4(x['ndcg'])} | {vs} "
                     f"| {x['recall'] / PUBLISHED:.3f}× | {x['load_avg_after']} |")
    lines.append("")

    ok = [x for x in runs if x["ok"]]
    if ok and subprocess.run(["which", "gnuplot"], capture_output=True).returncode == 0:
        gp = os.path.join(out, "gnuplot")
        os.makedirs(gp, exist_ok=True)
        plots = []
        colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b"]
        for n, x in enumerate(ok):
            c = colors[n % len(colors)]
            lab = f"d = {x['density']}" + (" static" if x["sparsity"] == "static" else "")
            p = os.path.join(gp, f"{x['run']}.dat")
            with open(p, "w") as f:
                for t, r in x["curve"]:
                    f.write(f"{t} {r}\n")
            q = os.path.join(gp, f"{x['run']}_test.dat")
            with open(q, "w") as f:
                f.write(f"{x['call'] / 60.0} {x['recall']}\n")
            plots.append(f'"{p}" using 1:2 with linespoints lw 2 pt 7 lc rgb "{c}" '
                         f'title "{lab}: validation (hold-out)"')
            plots.append(f'"{q}" using 1:2 with points pt 13 ps 2 lc rgb "{c}" '
                         f'title "{lab}: test, stored model"')
        plots.append(f'{PUBLISHED} with lines dt 2 lw 1.5 lc rgb "#555555" '
                     'title "published LightGCN (1000 epochs)"')
        png = os.path.join(img, "lightgcn_curve.png")
        # room above the highest point (validation runs above test), and the published line
        top = max([PUBLISHED] + [r for x in ok for _, r in x["curve"]] + [x["recall"] for x in ok])
        script = (f'set terminal pngcairo size 900,560 font "sans,10" noenhanced\n'
                  f'set output "{png}"\nset grid\nset key below box vertical maxrows 4\n'
                  'set xlabel "minutes since the call began (the curve sums epoch times; the diamond is the whole call)"\n'
                  f'set ylabel "Recall@20"\nset yrange [*:{top + 0.005:.3f}]\n'
                  f'set xrange [0:{TARGET_MINUTES + 5}]\n'
                  f'set arrow from first {TARGET_MINUTES},graph 0 to first {TARGET_MINUTES},graph 1 '
                  'nohead dt 3 lc rgb "#888888"\n'
                  'set title "LightGCN on Gowalla with the defaults: Recall@20 against wall time"\n'
                  "plot " + ", \\\n     ".join(plots) + "\n")
        with open(os.path.join(gp, "curve.gp"), "w") as f:
            f.write(script)
        r = subprocess.run(["gnuplot", os.path.join(gp, "curve.gp")], capture_output=True, text=True)
        if r.returncode == 0 and os.path.exists(png):
            lines += ["![LightGCN on Gowalla with the defaults: validation Recall@20 at the end of each "
                      "schedule against the call's wall time, the test Recall@20 of the stored model at "
                      "the end of the call, and the published figure](img/lightgcn_curve.png)", "",
                      "*Validation Recall@20 (the 5 % hold-out of at most 10000 users) at the end of each "
                      "schedule of the stopping rule against the wall time of the call's epochs; the "
                      "diamond is the stored model's test Recall@20 when the call ended (after the refit "
                      "where there was one); the dashed line is the published 0.1830, the dotted line "
                      "the hour.*", ""]
        else:
            sys.stderr.write(f"gnuplot failed: {r.stderr}\n")
    lines.append(END)
    with open(os.path.join(out, "section.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--merge":
        merge(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3:
        report(sys.argv[1], sys.argv[2])
    else:
        sys.exit(__doc__)
