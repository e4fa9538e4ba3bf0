"""Missing covariates in the tree learners: LightGBM's native missing-value splits vs the
two-level Gaussian (conditional-mean) imputation, against the simulator's truth.

For each scenario x seed: the T-, X- and DR-learners (``tree_missing='native'`` and
``'impute'``, everything else equal, no bootstrap) are fitted to pain at short term; root PEHE is
computed against each participant's true benefit vs their own trial's comparator(s) (fitted
participants) and on an independent dataset of new trials (seed + 10000), as in
``bench_learners.py``. The simulator's covariates are missing by trial (systematically) and by
participant, as in the seed paper's Table 3.

    .venv/bin/python benchmarks/bench_tree_missing.py [--scenarios hayden2020 nonlinear] [--seeds 5] \
        [--out benchmarks/results/tree_missing.csv]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

LEARNERS = ("t_learner", "x_learner", "dr_learner")
MODES = ("native", "impute")


def one(scenario: str, seed: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from bench_learners import load_task
    from training.iecv import _benefit_mix
    from training.learners.stacking import comparator_mix
    from training.train import make_learner

    warnings.simplefilter("ignore")
    rows = []
    with threadpool_limits(1):
        df, truth, cfg, _ = load_task(scenario, seed, "pain", "short")
        ndf, ntruth, _, _ = load_task(scenario, seed + 10_000, "pain", "short")
        feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
        X, NX = df[["trial", "treatment"] + feats], ndf[["trial", "treatment"] + feats]
        y = df["value"].to_numpy(float)

        def target(frame, tr):
            cls = frame["treatment"].astype(str).to_numpy()
            trial = frame["trial"].astype(str).to_numpy()
            comps = sorted(set(cls) - {cfg.active})
            ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any()
                           for t in trial])
            W = comparator_mix(trial, cls, cfg.active, comps)
            return cls, trial, comps, ok, sum(W[:, i] * tr[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(comps))

        cls, trial, comps, ok, t_mix = target(df, truth)
        ncls, ntrial, ncomps, nok, nt_mix = target(ndf, ntruth)
        missing_share = float(df[feats].isna().to_numpy().mean())
        for name in LEARNERS:
            for mode in MODES:
                lr = make_learner(name, "continuous", cfg, seed, n_boot=0)
                lr.set_params(tree_missing=mode)
                t0 = time.time()
                lr.fit(X, y)
                secs = time.time() - t0
                b = _benefit_mix(lr.predict(X), trial, cls, cfg.active, comps)
                bn = _benefit_mix(lr.predict(NX), ntrial, ncls, cfg.active, ncomps)
                rows.append({"scenario": scenario, "seed": seed, "learner": name, "tree_missing": mode,
                             "pehe": float(np.sqrt(np.mean((b[ok] - t_mix[ok]) ** 2))),
                             "pehe_new": float(np.sqrt(np.mean((bn[nok] - nt_mix[nok]) ** 2))),
                             "fit_seconds": secs, "missing_share": missing_share})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", nargs="*", default=["hayden2020", "nonlinear"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tree_missing.csv"))
    args = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc={os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for sc in args.scenarios:
        for seed in range(1, args.seeds + 1):
            rows += one(sc, seed)
            print(f"  {sc} seed {seed} done", flush=True)
    res = pd.DataFrame(rows)
    res.to_csv(args.out, index=False)
    s = res.groupby(["scenario", "learner", "tree_missing"]).agg(
        seeds=("seed", "nunique"), pehe=("pehe", "mean"), pehe_sd=("pehe", "std"), pehe_new=("pehe_new", "mean"),
        fit_s=("fit_seconds", "mean")).reset_index()
    wide = s.pivot_table(index=["scenario", "learner"], columns="tree_missing", values=["pehe", "pehe_new"])
    print(s.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    # paired difference per seed (impute - native): negative favours imputation
    p = res.pivot_table(index=["scenario", "learner", "seed"], columns="tree_missing", values="pehe")
    d = (p["impute"] - p["native"]).groupby(level=[0, 1]).agg(["mean", "std", "count"])
    print("\npaired PEHE difference impute - native (fitted participants):")
    print(d.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
