"""Known-truth study of the class-effect shrinkage (training.learners.shrinkage): the spread estimate
(DerSimonian-Laird plug-in, posterior mean of s^2, full posterior integration; half-normal prior on the
spread) with and without limited translation, on simulated class estimates a_hat_c ~ N(a_c, v_c).

Sets: fixed truths (equal effects with a sparse class; unequal like the outside simulator's seed 3;
3 and 4 classes; various SEs) and random truths a_c ~ N(10, s_true^2) (the average over a spread the
prior may or may not match). Per class: root error of the shrunk estimate, 95% interval coverage
(estimate +- 1.96 sqrt(var)) and mean half-width, with Monte Carlo SEs.

    python benchmarks/sim_class_shrink.py --reps 1000 --out benchmarks/results/class_shrink_s12k_sim.csv
    python benchmarks/sim_class_shrink.py --reps 1000 --candidates dl int int_tau0 int_out post_out \
        --out benchmarks/results/class_shrink_s13k_sim.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.learners.shrinkage import prior_scale, shrink_offsets  # noqa: E402

FIXED = {  # name: (true effects, SEs)
    "equal3_sparse": ([10, 10, 10], [1, 1, 4]),
    "equal3_mid": ([10, 10, 10], [1.5, 1.5, 2.5]),
    "equal4_sparse": ([10, 10, 10, 10], [1, 1, 1.5, 4]),
    "seed3_like": ([10.6, 7.9, 4.4], [1.2, 1.0, 2.0]),
    "seed3_own_se": ([10.6, 7.9, 4.4], [2.4, 1.0, 2.0]),
    "spread_6_9_12": ([6, 9, 12], [2, 2, 2]),
    "one_apart_14_9_9": ([14, 9, 9], [1, 2, 2]),
    "unequal4": ([12, 9, 6, 9], [2.4, 1.0, 2.0, 1.5]),
    "unequal4_sparse": ([12, 9, 6, 9], [1, 1, 1, 4]),
    "none_like": ([10, 10, 0], [0.6, 0.6, 0.5]),  # `none` (s12k): two equal classes, one far apart, precise
}
RANDOM = {f"random_s{s:g}": s for s in (0, 1.5, 3, 5)}  # a_c ~ N(10, s^2), SEs (1, 1.5, 4)
RANDOM_SE = [1, 1.5, 4]
CANDIDATES = {  # name: (spread, limit, prior scale factor of the assumed pooled tau)
    "dl": ("dl", None, None), "dl_k1": ("dl", 1.0, None), "dl_k05": ("dl", 0.5, None),
    "post": ("posterior", None, 1.0), "int": ("integrated", None, 1.0),
    "post_k1": ("posterior", 1.0, 1.0), "post_k05": ("posterior", 0.5, 1.0),
    "int_k1": ("integrated", 1.0, 1.0), "int_k05": ("integrated", 0.5, 1.0),
    "post_half": ("posterior", None, 0.5), "post_double": ("posterior", None, 2.0),
    "int_half": ("integrated", None, 0.5), "int_double": ("integrated", None, 2.0),
    # s13k: the prior scale independent of the trial tau ("outcome": PRIOR_FRACTION x the residual SD --sigma),
    # and the tau-scaled prior where the pooled tau is 0 (the `none` scenario: a point mass at 0)
    "int_out": ("integrated", None, "outcome"), "post_out": ("posterior", None, "outcome"),
    "int_tau0": ("integrated", None, 0.0),
}


def scale_of(cand: tuple, tau: float, sigma: float):
    """The candidate's prior scale: a factor of the assumed pooled tau, or (``"outcome"``) the outcome-scale
    prior of training.learners.shrinkage.prior_scale for a residual SD ``sigma``; None for the DL plug-in."""
    f = cand[2]
    if f is None:
        return None
    return prior_scale("outcome", tau, 1.0, "gaussian", sigma ** 2) if f == "outcome" else f * tau


def run(truths: np.ndarray, se: np.ndarray, cand: tuple, tau: float, seed: int, sigma: float = 15.0) -> pd.DataFrame:
    """truths: (reps, K) true effects; returns one row per class."""
    spread, limit, _ = cand
    scale = scale_of(cand, tau, sigma)
    reps, K = truths.shape
    comps = [f"c{k}" for k in range(K)]
    draws = truths + se * np.random.default_rng(seed).standard_normal((reps, K))
    est, var = np.empty((reps, K)), np.empty((reps, K))
    cov = np.diag(np.r_[1.0, se ** 2])
    for r in range(reps):
        th, cv, _ = shrink_offsets(np.r_[0.0, draws[r]], cov, comps, limit=limit, spread=spread,
                                   prior_scale=scale)
        est[r], var[r] = th[1:], np.diag(cv)[1:]
    e = est - truths
    hit = np.abs(e) <= 1.96 * np.sqrt(var)
    rmse = np.sqrt((e ** 2).mean(0))
    return pd.DataFrame({"class": comps, "truth_mean": truths.mean(0), "se": se, "rmse": rmse,
                         "rmse_mcse": (e ** 2).std(0) / (2 * rmse * np.sqrt(reps)), "bias": e.mean(0),
                         "coverage": hit.mean(0), "coverage_mcse": np.sqrt(hit.mean(0) * (1 - hit.mean(0)) / reps),
                         "half_width": 1.96 * np.sqrt(var).mean(0), "own_rmse": se})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--tau", type=float, default=3.0, help="the pooled between-trial tau assumed as prior scale")
    ap.add_argument("--sigma", type=float, default=15.0,
                    help="the outcome's residual SD for the 'outcome' prior (the project's simulators: 13-16)")
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--out", default="benchmarks/results/class_shrink_s12k_sim.csv")
    a = ap.parse_args(argv)
    rows = []
    sets = {k: (np.tile(np.asarray(t, float), (a.reps, 1)), np.asarray(s, float)) for k, (t, s) in FIXED.items()}
    for k, s in RANDOM.items():
        rng = np.random.default_rng(100 + int(10 * s))
        sets[k] = (10 + s * rng.standard_normal((a.reps, len(RANDOM_SE))), np.asarray(RANDOM_SE, float))
    for i, (name, (truths, se)) in enumerate(sets.items()):
        for cname in a.candidates:
            cand = CANDIDATES[cname]
            df = run(truths, se, cand, a.tau, seed=i, sigma=a.sigma)
            sc = scale_of(cand, a.tau, a.sigma)
            rows.append(df.assign(set=name, candidate=cname, prior_scale=np.nan if sc is None else sc))
        print(name, flush=True)
    out = pd.concat(rows, ignore_index=True)
    out.to_csv(a.out, index=False, float_format="%.4f")
    print(out.pivot_table(index=["set", "class", "se"], columns="candidate", values="rmse").round(2).to_string())
    print(out.pivot_table(index=["set", "class", "se"], columns="candidate", values="coverage").round(3).to_string())


if __name__ == "__main__":
    main()
