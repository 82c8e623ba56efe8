"""test/bench/bench_common.py - what the bench reports share: reading the
CSV and key=value files bench scripts write, and number formatting.
Standard library only."""
import csv
import os


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_kv(path):
    kv = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                kv[k] = v
    return kv


def num(x):
    try:
        if x is None or x == "":
            return None
        return float(x)
    except ValueError:
        return None


def f4(x):
    return "–" if x is None else f"{x:.4f}"
