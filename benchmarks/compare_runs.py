"""Compare two ``bench_learners.py`` raw CSVs of the same scenarios and seeds (before / after a change)
for one learner: root PEHE (fitted, new trials), bias on the new trials, CI coverage of the
average-trial truth, PI coverage on the new trials (all, beyond the training support), per scenario
as the mean over seeds with a 95% t-interval of that mean across seeds (seeds are the replication
unit; with 2 seeds the interval is wide, the per-seed values are printed too).

    python benchmarks/compare_runs.py BEFORE.csv AFTER.csv [--learner selected] [--labels before after]
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats

COLS = {"pehe": "PEHE fitted", "pehe_new": "PEHE new", "bias_new": "bias new", "coverage_ci_avg_trial": "CI avg",
        "coverage_pi_new": "PI new", "coverage_pi_new_beyond": "PI new beyond"}


def mean_ci(x: np.ndarray) -> str:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "–"
    m = float(x.mean())
    if x.size < 2:
        return f"{m:.3f}"
    h = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return f"{m:.3f} ({m - h:.3f}, {m + h:.3f})"


def table(runs: dict, learner: str) -> str:
    lines = ["| scenario | run | seeds | " + " | ".join(COLS.values()) + " |", "|---" * (3 + len(COLS)) + "|"]
    scen = list(dict.fromkeys(s for d in runs.values() for s in d["scenario"]))
    for s in scen:
        for label, d in runs.items():
            g = d[(d["scenario"] == s) & (d["learner"] == learner)].sort_values("seed")
            cells = [mean_ci(g[c].to_numpy(float)) if c in g else "–" for c in COLS]
            lines.append(f"| {s} | {label} | {g['seed'].nunique()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed(runs: dict, learner: str) -> str:
    lines = ["| scenario | seed | " + " | ".join(f"{c} {lab}" for c in ("bias_new", "coverage_pi_new", "coverage_ci_avg_trial")
                                              for lab in runs) + " |"]
    lines.append("|---" * (2 + 3 * len(runs)) + "|")
    first = next(iter(runs.values()))
    for (s, seed), _ in first[first["learner"] == learner].groupby(["scenario", "seed"]):
        vals = []
        for c in ("bias_new", "coverage_pi_new", "coverage_ci_avg_trial"):
            for d in runs.values():
                r = d[(d["scenario"] == s) & (d["seed"] == seed) & (d["learner"] == learner)]
                vals.append(f"{float(r[c].iloc[0]):.3f}" if len(r) else "–")
        lines.append(f"| {s} | {seed} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--learner", default="selected")
    ap.add_argument("--labels", nargs=2, default=["before", "after"])
    a = ap.parse_args(argv)
    runs = {a.labels[0]: pd.read_csv(a.before), a.labels[1]: pd.read_csv(a.after)}
    print(table(runs, a.learner))
    print()
    print(per_seed(runs, a.learner))


if __name__ == "__main__":
    main()
