#!/usr/bin/env python3
"""test/bench/implicit_bpr.py - the `implicit` library's CPU BPR on a
LightGCN-format split, epoch by epoch, for the bench's side-by-side timing.

implicit (benfred/implicit, MIT) is no dependency of dsl_rec: bench.sh
builds it from its release tarball into an ignored folder
(test/bench/build_implicit.sh) and puts that folder on PYTHONPATH.

Two modes:

  implicit_bpr.py --train TRAIN_TXT --epochs N
      trains N epochs and prints "epoch,seconds" (CSV) to stdout.

  implicit_bpr.py --train TRAIN_TXT --epochs K --pairs P --out DIR -- CMD ...
      the paired measurement: P pairs of blocks, each an implicit block of
      K epochs and a run of CMD (the other side, here a K-epoch dsl.train),
      one right after the other, the order alternating (pair 1 implicit
      first, pair 2 CMD first, ...), so that both sides of a pair see the
      same spell of a shared machine.  "{pair}" in CMD's arguments becomes
      the pair number; CMD writes its own per-epoch file.  The implicit
      model goes on training across blocks (its factors and random stream
      are kept), after one warm-up epoch that is not counted.
      Writes DIR/implicit_epochs.csv (pair,epoch,seconds; pair 0 = the
      warm-up), DIR/pairs.csv (pair,first,implicit_wall,other_wall,
      other_status) and DIR/implicit_info.csv.

TRAIN_TXT has one line per user: "user item item ..." (0-based ids), the
NGCF/LightGCN split format.  *seconds* of an epoch is the time implicit's
own fit loop measures around one bpr_update() pass (its callback), which
samples as many (user, positive, negative) triples as there are training
pairs; *implicit_wall* is the whole block, fit() set-up included.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import time


def load_pairs(path):
    users, items = [], []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 2:
                continue
            u = int(p[0])
            for x in p[1:]:
                users.append(u)
                items.append(int(x))
    return users, items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, help="LightGCN-format train.txt")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01, help="implicit's default")
    ap.add_argument("--reg", type=float, default=0.01, help="implicit's default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10, help="epochs (per block when paired)")
    ap.add_argument("--pairs", type=int, default=0, help="paired blocks (0: no pairing)")
    ap.add_argument("--out", help="results directory (paired mode)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the other side's command")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if a.pairs > 0 and (not cmd or not a.out):
        ap.error("--pairs needs --out and a command after --")

    import numpy as np
    import scipy.sparse as sp
    import implicit
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    t0 = time.perf_counter()
    users, items = load_pairs(a.train)
    u = np.asarray(users, dtype=np.int32)
    i = np.asarray(items, dtype=np.int32)
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    ui = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(n_users, n_items))
    ui.sum_duplicates()
    ui.data[:] = 1.0
    ui.sort_indices()
    load_s = time.perf_counter() - t0
    print(f"implicit {implicit.__version__}: {ui.nnz} pairs, {n_users} users, {n_items} items "
          f"(loaded in {load_s:.1f} s); BPR factors {a.factors}, {a.threads} threads",
          file=sys.stderr)

    # A Generator, not an int: fit() calls check_random_state() each time,
    # and a Generator is passed through, so later blocks draw new samples.
    model = BayesianPersonalizedRanking(factors=a.factors, learning_rate=a.lr,
                                        regularization=a.reg, iterations=1,
                                        num_threads=a.threads,
                                        random_state=np.random.default_rng(a.seed))

    def block(n):
        secs = []
        model.iterations = n
        t = time.perf_counter()
        model.fit(ui, show_progress=False, callback=lambda ep, el, c, s: secs.append(el))
        return secs, time.perf_counter() - t

    if a.pairs <= 0:
        secs, _ = block(a.epochs)
        w = csv.writer(sys.stdout)
        w.writerow(["epoch", "seconds"])
        for e, s in enumerate(secs, 1):
            w.writerow([e, f"{s:.6f}"])
        return 0

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "implicit_info.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["version", "factors", "threads", "lr", "reg", "seed", "pairs_trained",
                    "users", "items", "load_seconds", "blocks", "epochs_per_block"])
        w.writerow([implicit.__version__, a.factors, a.threads, a.lr, a.reg, a.seed, ui.nnz,
                    n_users, n_items, f"{load_s:.3f}", a.pairs, a.epochs])
    ep_f = open(os.path.join(a.out, "implicit_epochs.csv"), "w", newline="")
    ep_w = csv.writer(ep_f)
    ep_w.writerow(["pair", "epoch", "seconds"])
    pr_f = open(os.path.join(a.out, "pairs.csv"), "w", newline="")
    pr_w = csv.writer(pr_f)
    pr_w.writerow(["pair", "first", "implicit_wall", "other_wall", "other_status"])

    warm, _ = block(1)  # allocates and first-touches the factors; not counted
    ep_w.writerow([0, 1, f"{warm[0]:.6f}"])
    means = []
    failed = 0
    for p in range(1, a.pairs + 1):
        first = "implicit" if p % 2 == 1 else "other"
        res = {}
        for side in ((("implicit", "other") if first == "implicit" else ("other", "implicit"))):
            if side == "implicit":
                res["secs"], res["iwall"] = block(a.epochs)
            else:
                argv = [x.replace("{pair}", str(p)) for x in cmd]
                t = time.perf_counter()
                r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                res["owall"] = time.perf_counter() - t
                res["ostatus"] = "ok" if r.returncode == 0 else "failed"
                if r.returncode != 0:
                    failed += 1
                    sys.stderr.write(f"pair {p}: the other side failed ({r.returncode}):\n"
                                     f"{r.stderr[-2000:]}\n")
        for e, s in enumerate(res["secs"], 1):
            ep_w.writerow([p, e, f"{s:.6f}"])
        pr_w.writerow([p, first, f"{res['iwall']:.3f}", f"{res['owall']:.3f}", res["ostatus"]])
        ep_f.flush()
        pr_f.flush()
        means.append(statistics.mean(res["secs"]))
        print(f"pair {p} ({first} first): implicit {means[-1]:.3f} s/epoch, "
              f"other side {res['owall']:.1f} s wall, {res['ostatus']}", file=sys.stderr)
    ep_f.close()
    pr_f.close()
    print(f"implicit: median {statistics.median(means):.3f} s/epoch over {len(means)} blocks "
          f"of {a.epochs} epochs", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
