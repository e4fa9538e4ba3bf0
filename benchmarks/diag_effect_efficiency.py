"""Where the effect model's error comes from, against the simulator's truth (issue 23, session 10).

Per scenario x seed (the data of ``bench_learners.py``: pain at short term; new trials from
seed + 10000, or from the scenario after ``>``), the effect model (``make_learner`` settings, no
bootstrap: point predictions only) is fitted to

- ``y``: the observed outcomes (what ``train`` does; prior SD s by trial-grouped CV) -> ``b``;
- ``y*``: the *noise-free* outcomes (the simulator's expected outcome of each participant under their
  own arm; trial intercepts, slopes and class deviations included) with the same prior SD s -> ``b_nf``,
  and with an almost flat prior (s = 50) -> ``b_flat``.

Against the average-trial truth t of the fitted participants (comparator trials), with root mean
squares over participants:

- ``noise`` = RMS(b - b_nf): what the individual outcome noise costs at the chosen penalty (the
  estimator's variance; only more information or more shrinkage lowers it);
- ``bias_s`` = RMS(b_nf - t): the error the fit would keep with noise-free outcomes at that penalty
  (shrinkage + basis + missing covariates + the trials' own deviations);
- ``bias_flat`` = RMS(b_flat - t): the same without shrinkage (basis + missing covariates + trials).

The in-trial estimator (``training.learners.trial_specific``: each fitted trial's empirical-Bayes
class deviation added to ``b``): ``pehe_in_trial`` vs the trial-specific truth, ``dev_err`` = RMS of
(estimated - true deviation), ``dev_sd`` = RMS of the true deviations; ``_nf``: the same learner's
deviations estimated from the noise-free outcomes (what the outcome noise costs the deviations);
``pehe_in_trial_all_nf``: learner (at the same prior SD) and deviations both from the noise-free
outcomes (the family's in-trial error without outcome noise). ``*_trial_imputed``: the fitted
participants scored with their own trial's conditional means of missing inputs (the imputer's
within-trial model of training) instead of the runtime's pooled new-patient imputation.

And two **prognostic-part** checks (the issue's lead (a): does a misspecified prognostic part leave
residual variance that makes the interactions noisier?):

- ``oracle_prog``: the effect model fitted to y - m*(x), m* = the simulator's expected outcome under no
  treatment (all-arm prognosis of the *complete* covariates incl. missing ones, trial intercept and
  baseline slope: the best prognostic offset any model could have), its prior SD by CV;
- ``lgbm_prog``: the same with a feasible offset, m_hat(x) = LightGBM of y on the features (native
  missing values, no treatment), cross-fitted over 5 trial-grouped folds (R-learner style,
  Nie & Wager 2021).

Reported: root PEHE (fitted vs trial-specific truth / vs average-trial truth / new trials), the chosen
prior SD, the fit's residual variance ``sigma2`` (the simulator's noise variance is ``noise_var`` =
mean (y - y*)^2).

Usage::

    python benchmarks/diag_effect_efficiency.py --out benchmarks/results/effect_efficiency_i23c.csv \
        --scenarios curvilinear interaction hayden2020 --seeds 1 2
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def lgbm_offset(X: pd.DataFrame, y: np.ndarray, trial: np.ndarray, feats: list, seed: int) -> np.ndarray:
    """Cross-fitted LightGBM prediction of y from the features (no treatment), 5 trial-grouped folds."""
    import lightgbm as lgb

    from training.learners.folds import trial_folds

    _, codes = np.unique(trial, return_inverse=True)
    folds = trial_folds(codes, np.ones(codes.max() + 1, bool), 5, seed)
    out = np.full(y.size, np.nan)
    F = X[feats].to_numpy(float)
    for hold in folds:
        te = np.isin(codes, hold)
        m = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=40,
                              subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                              verbose=-1, n_jobs=1).fit(F[~te], y[~te])
        out[te] = m.predict(F[te])
    return out


def run(scenario: str, seed: int, with_lgbm: bool) -> list:
    from benchmarks.bench_effect_variants import pain_task
    from training.iecv import _benefit_mix
    from training.learners.effect_model import shared_linear_data
    from training.learners.trial_specific import InTrialBenefit
    from training.train import make_learner

    d = pain_task(scenario, seed)
    cfg, truth, feats = d.cfg, d.truth, d.feats
    X, y, cls, trial, comps, ok, t_avg, t_mix = d.X, d.y, d.cls, d.trial, d.comps, d.ok, d.t_avg, d.t_mix
    NX, ncls, ntrial, ncomps, nok, nt_mix = d.NX, d.ncls, d.ntrial, d.ncomps, d.nok, d.nt_mix
    y_nf = np.array([truth[f"expected_{c}"].iloc[i] for i, c in enumerate(cls)])
    m_star = truth["expected_no_treatment"].to_numpy(float)
    noise_var = float(np.mean((y - y_nf) ** 2))

    def fit(yy, **params):
        m = make_learner("effect_model", "continuous", cfg, seed, n_boot=0)
        m.set_params(**params)
        t0 = time.process_time()
        m.fit(X.copy(), yy)  # a fresh frame: no design shared between different outcomes
        sec = time.process_time() - t0
        b = _benefit_mix(m.predict(X), trial, cls, cfg.active, comps)
        bn = _benefit_mix(m.predict(NX), ntrial, ncls, cfg.active, ncomps)
        return m, b, bn, sec

    def rms(a):
        return float(np.sqrt(np.mean(a[ok] ** 2)))

    rows = []

    def record(name, m, b, bn, sec, **extra):
        rows.append({"scenario": scenario, "seed": seed, "variant": name, "interaction_sd": m.interaction_sd_,
                     "sigma2": m.export_["meta"]["sigma2"], "noise_var": noise_var,
                     "pehe": rms(b - t_mix), "pehe_avg": rms(b - t_avg),
                     "pehe_new": float(np.sqrt(np.mean((bn[nok] - nt_mix[nok]) ** 2))), "cpu_seconds": sec, **extra})
        r = rows[-1]
        print(f"{scenario} s{seed} {name}: sd {r['interaction_sd']} sigma2 {r['sigma2']:.1f} pehe {r['pehe']:.3f} "
              f"avg {r['pehe_avg']:.3f} new {r['pehe_new']:.3f}", flush=True)

    m, b, bn, sec = fit(y)
    sd = m.interaction_sd_
    m_nf, b_nf, _, _ = fit(y_nf, interaction_sd=sd)
    m_fl, b_fl, _, _ = fit(y_nf, interaction_sd=50.0)
    dev_true = t_mix - t_avg  # the trials' own class deviations (A u_t,c), mixed as the benefit
    ins = {}
    for lab, yy in (("", y), ("_nf", y_nf)):
        b_in = _benefit_mix(InTrialBenefit(m).fit(X, yy).predict(X), trial, cls, cfg.active, comps)
        ins[f"pehe_in_trial{lab}"] = rms(b_in - t_mix)
        ins[f"dev_err{lab}"] = rms((b_in - b) - dev_true)
    b_in_nf = _benefit_mix(InTrialBenefit(m_nf).fit(X, y_nf).predict(X), trial, cls, cfg.active, comps)
    ins["pehe_in_trial_all_nf"] = rms(b_in_nf - t_mix)  # learner and deviations from noise-free outcomes
    # scoring the fitted participants with their trial's conditional means of missing inputs (the
    # imputer's within-trial model used in training) instead of the runtime's pooled new-patient model
    dd = shared_linear_data(m, X, y)
    Xt = X.copy()
    for j, nm in enumerate(dd.spec["names"]):
        Xt.loc[dd.keep, nm] = dd.Fi[:, j]
    bt = _benefit_mix(m.predict(Xt), trial, cls, cfg.active, comps)
    ins["pehe_trial_imputed"], ins["pehe_avg_trial_imputed"] = rms(bt - t_mix), rms(bt - t_avg)
    ins["pehe_in_trial_trial_imputed"] = rms(
        _benefit_mix(InTrialBenefit(m).fit(Xt, y).predict(Xt), trial, cls, cfg.active, comps) - t_mix)
    record("effect_model", m, b, bn, sec, noise=rms(b - b_nf), bias_s=rms(b_nf - t_avg), bias_flat=rms(b_fl - t_avg),
           dev_sd=rms(dev_true), **ins)
    mo, bo, bno, seco = fit(y - m_star)
    record("oracle_prog", mo, bo, bno, seco, noise=rms(bo - b_nf) if mo.interaction_sd_ == sd else np.nan)
    if mo.interaction_sd_ != sd:
        mo2, bo2, bno2, seco2 = fit(y - m_star, interaction_sd=sd)
        record("oracle_prog_same_sd", mo2, bo2, bno2, seco2, noise=rms(bo2 - b_nf))
    if with_lgbm:
        t0 = time.process_time()
        mh = lgbm_offset(X, y, trial, feats, seed)
        extra = time.process_time() - t0
        ml, bl, bnl, secl = fit(y - mh)
        record("lgbm_prog", ml, bl, bnl, secl + extra, offset_r2=float(1 - np.var(y - mh) / np.var(y)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenarios", nargs="+", default=["curvilinear", "interaction", "hayden2020"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--no-lgbm", action="store_true")
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    rows = []
    with threadpool_limits(1):
        for sc in a.scenarios:
            for s in a.seeds:
                rows += run(sc, s, not a.no_lgbm)
    res = pd.DataFrame(rows)
    res.to_csv(a.out, index=False)
    summ = res.groupby(["scenario", "variant"], sort=False).mean(numeric_only=True).drop(columns="seed")
    summ.to_csv(a.out.replace(".csv", "_summary.csv"))
    print(summ.round(3).to_string())


if __name__ == "__main__":
    main()
