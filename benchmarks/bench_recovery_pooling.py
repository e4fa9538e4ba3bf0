"""Recovery (binary) at moderate and long term: how the binary effect model pools its class effects, the
error that pooling leaves out of the interval, and variants of the pooling (issue 23, session 13 s13b).

Per design ``SCENARIO:FOLLOW_UP`` and seed (the data of bench_learners, ``load_task``; new trials of seed +
10,000) the binary effect model as ``train`` fits it (``make_learner``, default bootstrap) is fitted once per
variant on the same data and scored as deployed (recovery's structural missing-input field from the pain and
function effect models of the same data, as bench_few_trial_scale does). Variants:

- ``dl``: train's default before this work (DerSimonian-Laird spread of a comparison set's classes, plugged in;
  often exactly 0, then every class of the set is pooled completely);
- ``own``: no class shrinkage (each class its own offset, its bootstrap variance);
- ``int_tau``: the spread integrated over its posterior under a half-normal prior scaled by the pooled
  between-trial tau on the log-odds scale (session 12 s12k's option as train would pass it);
- ``int_hnX``: the same with a fixed half-normal(X) prior on the log-odds scale (X = 0.25, 0.5, 1.0;
  Roever et al. 2021, Res Synth Methods 12:448: half-normal(0.5) a default for log odds ratios);
- ``int_outcome``: session 13 s13k's opt-in (``shrinkage.SPREAD = "integrated"``, ``PRIOR = "outcome"``: a
  half-normal(pi / sqrt(3) / 4 = 0.45) prior on the log-odds scale);
- ``carried``: dl plus the few-trial variance tau^2 / k in the covariance shrink_offsets maps (s12b's
  diagnostic); ``int_outcome_carried``: the same with int_outcome's pooling;
- ``+tauX`` (suffix, e.g. ``dl+tau0.5``): ``intervals.TAU_PRIOR_LOGIT = X`` (train's default since session 13 is
  ``dl+tau0.5``; a variant without the suffix sets it to None, the REML plug-in): the between-trial
  tau of the new-setting PI with its pooled value the posterior mean under a half-normal(X) prior on the
  log-odds scale (times the fit's mean p (1 - p), tau being on the risk scale) instead of the REML plug-in (a
  class with >= 3 trials: its posterior with that pooled value as the prior scale, as train does).

Per comparator class (decomposition): coverage; the class-level bias (mean error over the class's
participants); the within-class RMS error (error less that bias); the RMS of the interval's SE (half-width /
1.96); coverage with the class-level bias removed (the interval shifted by it: what coverage would be were the
class's average right); the class's own weight and spread. CI vs the average-trial truth on the fitted
participants, PI vs the new trials' truth.

Usage: PYTHONPATH=. python benchmarks/bench_recovery_pooling.py --designs hayden2020:moderate hayden2020:long
  --seeds 1 2 --variants dl own int_hn0.5 --out benchmarks/results/recovery_pooling_s13b.csv
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbp_benefit.blas import pin_blas_kernels  # noqa: E402
from benchmarks.recovery_task import comparisons, recovery_task, source_models  # noqa: E402

pin_blas_kernels()
Z = 1.959963984540054


def _fit(variant: str, cfg, seed: int, X, y):
    """The binary effect model as train fits it, with the class pooling of ``variant`` (module docstring)."""
    from training.learners import intervals, shrinkage
    from training.train import make_learner

    orig, orig_tau = shrinkage.shrink_offsets, intervals.TAU_PRIOR_LOGIT
    orig_spread, orig_prior = shrinkage.SPREAD, shrinkage.PRIOR
    variant, _, tau_hn = variant.partition("+tau")

    def patched(theta, cov, comps, groups=None, extra_var=None, **kw):
        if variant in ("carried", "int_outcome_carried"):
            cov = np.array(np.atleast_2d(cov), float)
            if extra_var is not None:
                i = np.arange(1, 1 + len(comps))
                cov[i, i] += np.asarray(extra_var, float)
            return orig(theta, cov, comps, groups, None, **({**kw, "spread": "dl"} if variant == "carried" else kw))
        if variant == "int_outcome":
            return orig(theta, cov, comps, groups, extra_var, **kw)
        if variant == "dl":
            return orig(theta, cov, comps, groups, extra_var, **{**kw, "spread": "dl"})
        if variant == "int_tau":
            return orig(theta, cov, comps, groups, extra_var, **{**kw, "spread": "integrated"})
        if variant.startswith("int_hn"):
            return orig(theta, cov, comps, groups, extra_var,
                        **{**kw, "spread": "integrated", "prior_scale": float(variant[len("int_hn"):])})
        return orig(theta, cov, comps, groups, extra_var, **kw)  # the module's default (whatever train uses)

    shrinkage.shrink_offsets = patched
    intervals.TAU_PRIOR_LOGIT = float(tau_hn) if tau_hn else None  # train's opt-in (intervals.tau_prior)
    if variant in ("int_outcome", "int_outcome_carried"):  # session 13 s13k's opt-in: integrated spread, HN(pi / sqrt(3) / 4) prior
        shrinkage.SPREAD, shrinkage.PRIOR = "integrated", "outcome"
    try:
        if variant == "own":
            m = make_learner("effect_model", "binary", cfg, seed)
            m.class_shrinkage = False
            m = m.fit(X, y)
        else:
            m = make_learner("effect_model", "binary", cfg, seed).fit(X, y)
    finally:
        shrinkage.shrink_offsets, intervals.TAU_PRIOR_LOGIT = orig, orig_tau
        shrinkage.SPREAD, shrinkage.PRIOR = orig_spread, orig_prior
    return m


def run(design: str, seed: int, variants) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from predict.runtime import predict_from_export
    from training.recovery_structure import structural_field

    scenario, follow_up = design.split(":")
    rows = []
    with threadpool_limits(1):
        task = recovery_task(scenario, seed, follow_up)
        df, truth, cfg, recols, ndf, ntruth, X, NX = (task.df, task.truth, task.cfg, task.recols, task.ndf,
                                                      task.ntruth, task.X, task.NX)
        y = df["value"].to_numpy(float)
        cont = source_models(task, scenario, seed, follow_up)
        trials = df.groupby("treatment")["trial"].nunique().to_dict()
        for variant in variants:
            t0 = time.time()
            m = _fit(variant, cfg, seed, X, y)
            exp = m.to_export()
            field, _ = structural_field(cfg, exp, cont)
            if field is not None:
                exp = {**exp, "structural_missing": field}
            shr = exp["meta"].get("class_shrinkage", {})
            print(f"{design} seed {seed} {variant}: {time.time() - t0:.1f} s; "
                  + "; ".join(f"{c} w {v.get('weight_own', 1):.2f} s {v.get('s_set') or 0:.2f}" for c, v in shr.items()),
                  flush=True)
            for what, data, tr, XX in (("fitted", df, truth, X), ("new", ndf, ntruth, NX)):
                comps, ok, W = comparisons(data, cfg.active)
                pr = predict_from_export(exp, XX)
                for i, c in enumerate(comps):
                    msk = ok & (W[:, i] > 0)
                    if c not in exp["comparators"] or not msk.any():
                        continue
                    tc = tr[f"benefit_vs_{c}"].to_numpy()
                    target = (tc - recols[c] if what == "fitted" else tc)[msk]
                    k = ("ci_low", "ci_high") if what == "fitted" else ("pi_low", "pi_high")
                    b = pr[f"benefit_vs_{c}"].to_numpy()[msk]
                    lo, hi = pr[f"benefit_vs_{c}_{k[0]}"].to_numpy()[msk], pr[f"benefit_vs_{c}_{k[1]}"].to_numpy()[msk]
                    e = b - target
                    bias = float(e.mean())
                    s = shr.get(c, {})
                    rows.append({"design": design, "seed": seed, "variant": variant, "data": what, "comparator": c,
                                 "trials_fitted": int(trials.get(c, 0)), "weight_own": s.get("weight_own", 1.0),
                                 "s_set": s.get("s_set"), "n": int(msk.sum()),
                                 "interval": "CI vs average trial" if what == "fitted" else "PI vs new trial",
                                 "covered": int(((lo <= target) & (target <= hi)).sum()),
                                 "cover": float(((lo <= target) & (target <= hi)).mean()),
                                 "cover_no_class_bias": float(((lo - bias <= target) & (target <= hi - bias)).mean()),
                                 "pred_mean": float(b.mean()), "truth_mean": float(target.mean()), "bias": bias,
                                 "rms_err": float(np.sqrt(np.mean(e ** 2))), "rms_within": float(e.std()),
                                 "se_rms": float(np.sqrt(np.mean(((hi - lo) / (2 * Z)) ** 2))),
                                 "mean_width": float((hi - lo).mean()),
                                 "pehe_trial_truth": float(np.sqrt(np.mean((b - tc[msk]) ** 2)))})
    return rows


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per design, interval and variant pooled over classes: coverage (Wilson 95% over participants, which
    ignores clustering: the per-seed columns show the honest noise), bias^2 share of the MSE (class-level
    bias), mean width, RMS error, root PEHE vs the trial-specific truth."""
    rows = []
    for (design, interval, variant), g in df.groupby(["design", "interval", "variant"], sort=False):
        n, k = int(g["n"].sum()), int(g["covered"].sum())
        p, d = k / n, 1 + Z ** 2 / n
        c, h = (p + Z ** 2 / (2 * n)) / d, Z * np.sqrt(p * (1 - p) / n + Z ** 2 / (4 * n ** 2)) / d
        w = g["n"] / n
        seeds = {f"cover_seed{s}": gs["covered"].sum() / gs["n"].sum() for s, gs in g.groupby("seed")}
        rows.append({"design": design, "interval": interval, "variant": variant, "n": n, "cover": p,
                     "cover_lo": c - h, "cover_hi": c + h, **seeds,
                     "cover_no_class_bias": float((w * g["cover_no_class_bias"]).sum()),
                     "bias2_share": float((w * g["bias"] ** 2).sum() / (w * g["rms_err"] ** 2).sum()),
                     "mean_width": float((w * g["mean_width"]).sum()),
                     "rms_err": float(np.sqrt((w * g["rms_err"] ** 2).sum())),
                     "pehe_trial_truth": float(np.sqrt((w * g["pehe_trial_truth"] ** 2).sum()))})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--designs", nargs="+", default=["hayden2020:moderate", "hayden2020:long"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--variants", nargs="+", default=["dl", "own", "int_hn0.5"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/recovery_pooling_s13b.csv"))
    a = ap.parse_args(argv)
    rows = []
    for design in a.designs:
        for seed in a.seeds:
            rows += run(design, seed, a.variants)
            pd.DataFrame(rows).to_csv(a.out, index=False)  # partial results survive a stop
    g = summary(pd.DataFrame(rows))
    g.to_csv(a.out.with_name(a.out.stem + "_summary.csv"), index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(g.round(3).to_string())


if __name__ == "__main__":
    main()
