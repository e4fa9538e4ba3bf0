"""Recovery (binary) intervals: is the missing-input part the fixable share of the under-coverage?
A candidate measured, not deployed (issue 23, session 10 i23b).

i23r's diagnosis (BENCHMARKS.md, session 9) split the logistic effect model's CI error against the
average-trial truth into estimation (honest), missing inputs (RMS 0.153 where its draws allow 0.109 on
`strong`: the spread over the conditional draws of an attenuated logistic fit was thought too small),
attenuation and misfit. This script measures the candidate fix for the missing-input part that i23x's
allowance is for continuous outcomes (training/learners/missing_allowance.py): a reference whose
interactions are not attenuated by conditional-mean imputation — the linear-probability effect model
(identity link on the 0/1 outcome: regression calibration is exact for a linear model, so its
modification by a missing feature is that of the complete feature), fitted on the same rows without
bootstrap — and per participant the allowance max(0, v_ref - v_own) of the draw variances on the
risk-difference scale, added to the CI's and the PI's variance. Point predictions unchanged. Three
references (their prior SD of the standardised interactions): by the effect model's CV on its default
grid (in points, for 0-100 outcomes), by CV on a probability-scale grid, and fixed at the logistic fit's
CV-chosen SD x ybar(1 - ybar); and a structural one: the continuous pain and function effect models
mapped through recovery's definition per conditional draw (``_structural_var``).

Per scenario and seed (the data of bench_learners: ``load_task``, short-term global recovery), for the
binary effect model as ``train`` fits it (100 bootstrap replicates): RMS error against the
average-trial truth, mean SE, z-RMS, CI coverage, new-trial PI coverage, before and with the allowance.

Usage: PYTHONPATH=. python benchmarks/diag_binary_allowance.py --scenarios strong hayden2020 --seeds 1 2
  --out benchmarks/results/binary_allowance_i23b.csv
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
from benchmarks.grid import run_grid  # noqa: E402
from benchmarks.recovery_task import comparisons, recovery_task  # noqa: E402

pin_blas_kernels()

Z = 1.959963984540054
RMS = ("rms_err", "z_rms", "sd_draw_own", "sd_draw_ref")  # pooled as root mean squares


def _draw_var(m, X):
    from predict.features import feature_matrix
    from predict.uncertainty import missing_variance

    exp = m.to_export()
    return missing_variance(exp, feature_matrix(exp["features"], X))


def _structural_var(own, pain, func, X, cfg) -> dict:
    """Per comparator and row, the variance over the recovery model's conditional draws of the
    missing features of the benefit that recovery's own definition gives from the continuous pain and
    function effect models: per arm P(pain recovered) = P(follow-up <= b - max(r b, m)) with the
    model's expected follow-up and residual SD (normal), likewise function, and P(recovered) =
    1 - (1 - P_pain)(1 - P_function) (``combine: any``; the two independent given the inputs)."""
    from scipy.stats import norm

    from predict.evaluate import expected
    from predict.features import feature_matrix
    from predict.learner_model import as_learner
    from predict.uncertainty import _draw_var, missing_draws

    L = as_learner(own.to_export())
    F = feature_matrix(own.export_["features"], X)
    names = list(own.export_["features"]["names"])
    out = {c: np.zeros(F.shape[0]) for c in L.comparators}
    rows, flat, M, n = missing_draws(L, F)
    if flat is None or M < 2:
        return out
    probs = {}
    for o, m in (("pain", pain), ("function", func)):
        assert list(m.export_["features"]["names"]) == names
        Lo = as_learner(m.to_export())
        ex = expected(Lo, flat, flat)
        sd = float(np.sqrt(m.export_["meta"]["sigma2"]))
        b = flat[:, names.index(f"baseline_{o}")]
        cut = b - np.maximum(cfg.recovery_relative * b, cfg.outcomes[o].recovery_min_points)
        probs[o] = {k: norm.cdf((cut - v) / sd) for k, v in ex.items()}
    for c in L.comparators:
        def p_rec(k):
            return 1 - (1 - probs["pain"][k]) * (1 - probs["function"][k])

        out[c][rows] = _draw_var(p_rec("__active__") - p_rec(c), M, n)
    return out


def run(scenario: str, seed: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from benchmarks.bench_learners import load_task
    from training.learners.effect_model import LOGIT_GRID
    from training.train import make_learner

    rows = []
    with threadpool_limits(1):
        rt = recovery_task(scenario, seed)
        df, truth, cfg, recols, ndf, ntruth, feats, X, NX = (rt.df, rt.truth, rt.cfg, rt.recols, rt.ndf, rt.ntruth,
                                                            rt.feats, rt.X, rt.NX)
        y = df["value"].to_numpy(float)
        t0 = time.time()
        own = make_learner("effect_model", "binary", cfg, seed).fit(X, y)
        # linear-probability references (no bootstrap): prior SD by the same CV on the default grid, which is
        # in points for 0-100 outcomes (its smallest non-zero SD, 0.5, leaves a 0/1 outcome's interactions
        # unpenalised); by CV on a probability-scale grid (the log-odds grid x 1/4, the logistic slope at
        # p = 0.5); and fixed at the logistic fit's CV-chosen SD x ybar(1 - ybar) (its slope at the mean risk)
        sd_logit = float(own.export_["meta"]["interaction_sd"])
        w = float(y.mean() * (1 - y.mean()))
        refs = {"+ allowance (ref: points grid)": make_learner("effect_model", "continuous", cfg, seed, n_boot=0),
                "+ allowance (ref: probability grid)": make_learner("effect_model", "continuous", cfg, seed, n_boot=0)
                .set_params(interaction_grid=tuple(g / 4 for g in LOGIT_GRID)),
                "+ allowance (ref: logistic SD)": make_learner("effect_model", "continuous", cfg, seed, n_boot=0)
                .set_params(interaction_sd=sd_logit * w)}
        refs = {k: m.fit(X, y) for k, m in refs.items()}
        ref_sd = {k: float(m.export_["meta"]["interaction_sd"]) for k, m in refs.items()}
        # the structural reference: the continuous pain and function effect models (same seed's data, same
        # window, default CV, no bootstrap) through recovery's definition
        cont = {}
        for o in ("pain", "function"):
            odf = load_task(scenario, seed, o, "short")[0]
            cont[o] = make_learner("effect_model", "continuous", cfg, seed, n_boot=0).fit(
                odf[["trial", "treatment"] + feats], odf["value"].to_numpy(float))
        STRUCT = "+ allowance (ref: pain & function models through the recovery rule)"
        print(f"{scenario} seed {seed}: fitted in {time.time() - t0:.0f} s", flush=True)
        for what, data, tr, XX in (("fitted", df, truth, X), ("new", ndf, ntruth, NX)):
            comps, ok, W = comparisons(data, cfg.active)
            p = own.predict_interval(XX)
            v_own = _draw_var(own, XX)
            v_refs = {k: _draw_var(m, XX) for k, m in refs.items()}
            v_refs[STRUCT] = _structural_var(own, cont["pain"], cont["function"], XX, cfg)
            for i, c in enumerate(comps):
                if c not in own.comparators_ or f"benefit_vs_{c}_ci_low" not in p:
                    continue
                msk = ok & (W[:, i] > 0)
                tc = tr[f"benefit_vs_{c}"].to_numpy()[msk]
                b = p[f"benefit_vs_{c}"].to_numpy()[msk]
                se = (p[f"benefit_vs_{c}_ci_high"].to_numpy()[msk] - p[f"benefit_vs_{c}_ci_low"].to_numpy()[msk]) / (2 * Z)
                sp = (p[f"benefit_vs_{c}_pi_high"].to_numpy()[msk] - p[f"benefit_vs_{c}_pi_low"].to_numpy()[msk]) / (2 * Z)
                target = tc - recols[c][msk] if what == "fitted" else tc  # CI: average trial; PI: the new trial
                variants = ["as deployed"] + list(refs) + [STRUCT]
                for variant in variants:
                    if variant == variants[0]:
                        v_ref, allow = np.zeros(msk.sum()), np.zeros(msk.sum())
                    else:
                        v_ref = v_refs[variant][c][msk]
                        allow = np.maximum(0.0, v_ref - v_own[c][msk])
                    s = np.sqrt((se if what == "fitted" else sp) ** 2 + allow)
                    e = b - target
                    rows.append({"scenario": scenario, "seed": seed, "data": what, "comparator": c, "variant": variant,
                                 "n": int(msk.sum()), "interval": "CI vs average trial" if what == "fitted" else
                                 "PI vs new trial", "rms_err": float(np.sqrt(np.mean(e ** 2))), "bias": float(e.mean()),
                                 "mean_se": float(s.mean()), "z_rms": float(np.sqrt(np.mean((e / s) ** 2))),
                                 "cover": float(np.mean(np.abs(e) <= Z * s)),
                                 "sd_draw_own": float(np.sqrt(v_own[c][msk].mean())),
                                 "sd_draw_ref": float(np.sqrt(v_ref.mean())),
                                 "share_allowed": float(np.mean(allow > 0)),
                                 "sd_logit": sd_logit, "ref_sd": ref_sd.get(variant, np.nan)})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["strong", "hayden2020"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/binary_allowance_i23b.csv"))
    a = ap.parse_args(argv)
    df = run_grid(run, a.scenarios, a.seeds, a.out)
    w = df.assign(k=df["n"])
    g = w.groupby(["scenario", "data", "interval", "variant"]).apply(
        lambda d: pd.Series({c: (np.sqrt(np.average(d[c] ** 2, weights=d["n"])) if c in RMS else np.average(d[c], weights=d["n"]))
                             for c in ("rms_err", "bias", "mean_se", "z_rms", "cover", "sd_draw_own", "sd_draw_ref",
                                       "share_allowed", "ref_sd")} | {"n": d["n"].sum()}), include_groups=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(g.round(3).to_string())


if __name__ == "__main__":
    main()
