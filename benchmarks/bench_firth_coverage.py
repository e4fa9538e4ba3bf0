"""Coverage of the true log odds ratio by Firth's profile penalised-likelihood 95% CI and by the Wald
95% CI at the Firth estimate, in small two-arm trials with rare failures (where one arm often has
no failure: quasi-complete separation, laryngoscope-like).

Each replicate: ``n`` participants per arm, P(event) ``p0`` (control) and ``p1`` (active), the model
``y ~ 1 + treat``; Firth's fit (training.learners.firth_profile) with the profile CI of the treatment
coefficient, and Wald at the Firth estimate with logistf's SE. Reported over all replicates and over
the separated ones (an arm with all events or none). Seeded; deterministic.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_firth_coverage.py --reps 400 --out benchmarks/results/firth_coverage_s13f.csv
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.learners.firth_profile import firth, profile_ci  # noqa: E402

DESIGNS = [(50, 0.92, 0.98), (30, 0.90, 0.97), (100, 0.95, 0.99)]


def run(n: int, p0: float, p1: float, reps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    truth = math.log(p1 / (1 - p1)) - math.log(p0 / (1 - p0))
    t = np.r_[np.zeros(n), np.ones(n)]
    X = np.column_stack([np.ones(2 * n), t])
    rows = []
    for _ in range(reps):
        y = (rng.random(2 * n) < np.where(t == 1, p1, p0)).astype(float)
        if y.min() == y.max():  # everyone alike: no information on the odds ratio (left out, counted)
            rows.append({"constant": True})
            continue
        sep = bool(min(np.ptp(y[t == 0]), np.ptp(y[t == 1])) == 0)
        f = firth(X, y)
        lo, hi, ok = profile_ci(X, y, f, 1)
        se = math.sqrt(f.cov[1, 1])
        rows.append({"constant": False, "separated": sep, "profile": lo <= truth <= hi, "wald": abs(f.beta[1] - truth) <= 1.959964 * se,
                     "profile_width": hi - lo, "wald_width": 2 * 1.959964 * se, "error": f.beta[1] - truth, "ok": ok})
    d = pd.DataFrame(rows)
    use = d[~d.constant]
    out = {"n_per_arm": n, "p_control": p0, "p_active": p1, "true_log_or": truth, "reps": reps, "seed": seed,
           "constant": int(d.constant.astype(bool).sum()), "separated": int(use.separated.astype(bool).sum()),
           "profile_not_converged": int((~use.ok.astype(bool)).sum()), "mean_error": float(use.error.mean())}
    for name, part in (("all", use), ("separated", use[use.separated.astype(bool)])):
        k = len(part)
        for m in ("profile", "wald"):
            c = float(part[m].mean()) if k else float("nan")
            out[f"{m}_coverage_{name}"] = c
            out[f"{m}_coverage_{name}_mcse"] = math.sqrt(c * (1 - c) / k) if k else float("nan")
            out[f"{m}_median_width_{name}"] = float(part[f"{m}_width"].median()) if k else float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = pd.DataFrame([run(n, p0, p1, args.reps, args.seed + i) for i, (n, p0, p1) in enumerate(DESIGNS)])
    res.to_csv(args.out, index=False)
    cols = ["n_per_arm", "p_control", "p_active", "separated", "profile_coverage_all", "wald_coverage_all",
            "profile_coverage_separated", "wald_coverage_separated", "profile_median_width_all", "wald_median_width_all"]
    print(res[cols].round(3).to_string(index=False))
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
