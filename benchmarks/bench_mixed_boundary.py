"""Scan every linear model of the default replication for boundary saddle points.

For each fitted model (REML, diagonal G, as ``replicate`` fits them) and each random-effect SD
reported at ~0 (relative SD below 1e-4), the package's own criterion
(:func:`training.mixed.lmm.profiled_criterion`) gives the directional derivative into the
interior (slope per unit of the variance, from the analytic gradient) and the best value over a
grid of that SD (others fixed). A saddle is a negative slope or a grid value below the fit's.
Prints counts, the most negative slope, timing; ``--lme4 DIR`` also writes the designs of
``--labels`` (default: the audited saddle models) as CSV and fits them with R lme4
(benchmarks/r/boundary_lme4.R), writing ``DIR/lme4.json``.

With ``--logistic`` the 333 logistic (Laplace) models are scanned as well, with
:func:`training.mixed.glmm.laplace_criterion` (grid check of every zero SD, fixed effects at the fit).

    .venv/bin/python benchmarks/bench_mixed_boundary.py [--seed 1] [--lme4 DIR] [--logistic]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from training.dataset import load_dataset
from training.harmonise import harmonise
from training.meta.design import build_design
from training.meta.specs import all_specs
from training.mixed import fit_glmm_binomial, fit_lmm
from training.mixed.glmm import laplace_criterion
from training.mixed.lmm import profiled_criterion
from training.simulate import simulate_dataset

ZERO = 1e-4
AUDITED = [
    "pain/long/no_treatment_usual_care/sick_leave_12m/adjusted",
    "pain/long/other_conservative/employed/unadjusted",
    "pain/long/other_conservative/social_support/adjusted",
    "function/short/any_non_exercise/sick_leave_12m/unadjusted",
    "function/short/no_treatment_usual_care/mental_health/adjusted",
    "function/short/other_conservative/employed/adjusted",
    "function/long/no_treatment_usual_care/female/adjusted",
]


def scan(D, res):
    f = profiled_criterion(D.y, D.X, D.Z, D.groups, method="REML", re_cov="diagonal")
    theta = np.asarray(res.theta, float)
    z_rms = np.sqrt((D.Z.to_numpy() ** 2).mean(0))
    f0 = f(theta)[0]
    out = []
    for j in np.flatnonzero(theta * z_rms <= ZERO):
        t = theta.copy()
        h = 1e-6 / z_rms[j]
        t[j] = h
        slope = f(t)[1][j] / (2 * h) / z_rms[j] ** 2
        best = min(f(np.where(np.arange(len(t)) == j, v / z_rms[j], theta))[0] for v in np.geomspace(1e-4, 3, 25)) - f0
        out.append((D.Z.columns[j], slope, best))
    return out


def scan_logistic(h, specs) -> None:
    t0 = time.perf_counter()
    n = comps = saddles = 0
    worst = np.inf
    for s in specs:
        try:
            D = build_design(h.analysis, s, h.config.active)
        except Exception:
            continue
        n += 1
        res = fit_glmm_binomial(D.y, D.X, D.Z, D.groups, method="laplace", re_cov="diagonal")
        f = laplace_criterion(D.y, D.X, D.Z, D.groups, re_cov="diagonal")
        th, b = np.asarray(res.theta, float), res.params.to_numpy()
        z = np.sqrt((D.Z.to_numpy() ** 2).mean(0))
        f0 = f(th, b)
        for j in np.flatnonzero(th * z <= ZERO):
            comps += 1
            best = min(f(np.where(np.arange(len(th)) == j, v / z[j], th), b) for v in np.geomspace(1e-4, 3, 25)) - f0
            worst = min(worst, best)
            saddles += best < -1e-7
    print(f"{n} logistic models fitted and scanned in {time.perf_counter() - t0:.1f} s; {comps} components at ~0; "
          f"lowest grid change {worst:.3g}; saddles (grid lower by > 1e-7): {saddles}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lme4", type=Path, default=None)
    ap.add_argument("--labels", nargs="*", default=AUDITED)
    ap.add_argument("--logistic", action="store_true")
    args = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc={os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset("hayden2020", seed=args.seed).write(Path(tmp))
        h = harmonise(load_dataset(Path(tmp)))
    every = all_specs(h.config, set(h.analysis["outcome"]))
    specs = [s for s in every if not s.binary_outcome]
    if args.logistic:
        scan_logistic(h, [s for s in every if s.binary_outcome])
    designs = {}
    for s in specs:
        try:
            designs[s.label] = build_design(h.analysis, s, h.config.active)
        except Exception:
            pass
    t0 = time.perf_counter()
    rows, fits = [], {}
    for label, D in designs.items():
        res = fit_lmm(D.y, D.X, D.Z, D.groups, method="REML", re_cov="diagonal")
        fits[label] = res
        for name, slope, best in scan(D, res):
            rows.append(dict(model=label, component=name, slope=slope, best_grid_change=best, status=res.status))
    dt = time.perf_counter() - t0
    r = pd.DataFrame(rows)
    sad = r[(r.slope < -1e-6) | (r.best_grid_change < -1e-9)]
    print(f"{len(designs)} linear models fitted and scanned in {dt:.1f} s; {len(r)} components at ~0 "
          f"in {r.model.nunique()} models; most negative slope {r.slope.min():.3g}; "
          f"lowest grid change {r.best_grid_change.min():.3g}; saddles: {len(sad)}")
    if len(sad):
        print(sad.to_string())
    if args.lme4:
        folder = args.lme4
        folder.mkdir(parents=True, exist_ok=True)
        for label in args.labels:
            D, res = designs[label], fits[label]
            key = label.replace("/", "__")
            df = pd.concat([pd.DataFrame({"y": D.y, "trial": D.groups}, index=D.X.index),
                            D.X.add_prefix("X_"), D.Z.add_prefix("Z_")], axis=1)
            df.to_csv(folder / f"{key}.csv", index=False)
            np.savetxt(folder / f"{key}.theta", res.theta)
        subprocess.run(["Rscript", str(Path(__file__).parent / "r" / "boundary_lme4.R"), str(folder),
                        str(folder / "lme4.json")], check=True)
        ref = json.loads((folder / "lme4.json").read_text())
        for label in args.labels:
            rr, res = ref[label.replace("/", "__")], fits[label]
            print(f"{label}: loglik package {res.loglik:.6f} lme4 {rr['logLik']:.6f} "
                  f"(lme4 at package theta {rr['logLik_at_package_theta']:.6f}); "
                  f"SD treat {res.re_sd['treat']:.4f} vs {rr['re_sd'].get('treat', float('nan')):.4f}")


if __name__ == "__main__":
    main()
