"""The in-trial estimator's deviation part: can its empirical-Bayes deviations be estimated better?
(issue 23, session 11, i23m).

Per scenario x seed (the data of ``bench_learners.py``: pain at short term, ``pain_task``), the
effect model (``make_learner`` settings, no bootstrap) is fitted once; the in-trial benefit =
its average-trial benefit + each fitted trial's class deviation u_t,c, estimated by

- ``univariate``: ``InTrialBenefit`` as shipped (per class: REML tau, BLUP of the trial's raw
  arm-mean residual difference);
- ``pooled_tau``: the same with one tau pooled over all classes (``min_trials`` = inf);
- ``tau<k>``: the same BLUP with tau fixed at k for every class (is REML's tau the weak point?);
- ``mv_followups``: a **multivariate** BLUP of the deviation at short term that borrows from the same
  trial's deviations at the other follow-ups (moderate, long; the effect model fitted to each of them):
  ``benchmarks.in_trial_multivariate`` (between-trial covariance: REML variances,
  moment covariances, projected to PSD; within-trial covariance of the raw deviations from the
  participants' residuals at both follow-ups);
- ``mv_outcomes``: the same with function at short term as the second component;
- ``mv_all``: short/moderate/long pain + short function;
- ``true_dev``: the simulator's true deviation A u_t,c added to the plain prediction (= the plain
  prediction's average-trial PEHE; not attainable);
- ``from_noise_free``: ``univariate`` with the deviations estimated from the noise-free outcomes y*
  (they also correct the plain prediction's own trial-mean error: the floor of this estimator given
  the learner, i.e. the plain prediction's within-trial error).

Reported: root PEHE of the fitted participants in comparator trials vs their trial-specific truth
(``pehe_in_trial``), the average-trial PEHE of the plain prediction (``pehe_avg``) and RMS of
(estimated - true) deviations (``dev_err``). **Construction caveat**: in the simulator the trial's
class deviation is *the same* u_t,c at every follow-up (times the attenuation A_f) and correlated
0.6 between pain and function; residuals correlate 0.5 across follow-ups and 0.65 across outcomes
(``hayden2020.yaml``). A gain from borrowing across follow-ups is therefore partly by construction.

Usage::

    python benchmarks/diag_in_trial.py --out benchmarks/results/in_trial_i23m.csv \
        --scenarios interaction 'plateau>edge_trial' curvilinear hayden2020 none --seeds 1 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.grid import run_grid  # noqa: E402

COMPANIONS = {"mv_followups": [("pain", "moderate"), ("pain", "long")],
              "mv_outcomes": [("function", "short")],
              "mv_all": [("pain", "moderate"), ("pain", "long"), ("function", "short")]}


def task_frames(scenario: str, seed: int, tasks: list) -> dict:
    """{(outcome, follow_up): task frame} of one simulated dataset (as ``bench_learners.load_task``)."""
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.learners.base import task_frame
    from training.simulate import simulate_dataset

    sim = simulate_dataset(scenario, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        sim.write(Path(tmp))
        h = harmonise(load_dataset(Path(tmp)))
    out = {}
    for o, f in tasks:
        df = task_frame(h.analysis, o, f)
        df["participant"] = df["participant"].astype(str)
        df["trial"] = df["trial"].astype(str)
        out[(o, f)] = df
    return out


def followup_information(scenario: str) -> dict:
    """Best case for borrowing the *modifier* coefficients of pain at short term from the other
    follow-ups: in the simulator they are the same function times the attenuation A_f, the residuals
    correlated across follow-ups (``model.residual_cov``). With A_f and the covariance known (an
    oracle), the optimal composite w' y (w = V^-1 A) carries (A' V^-1 A) / (1 / V_short) times the
    information of the short-term outcome alone on each modifier coefficient. ``..._with_function``:
    the same over all six outcomes x follow-ups *if* function's coefficients equalled pain's (an upper
    bound: in the scenarios they share some modifiers, e.g. heavy work 5.0 / 6.0, medication -4.0 / -4.8,
    interaction's product terms 0.9 / 0.9, and not others, e.g. education -1.8 / +1.5)."""
    from training.simulate.model import attenuation, residual_cov
    from training.simulate.scenario import FOLLOW_UPS, OUTCOMES, load_scenario

    scen = load_scenario(scenario)
    V = residual_cov(scen)
    k = OUTCOMES.index("pain")
    ix = [i * len(OUTCOMES) + k for i in range(len(FOLLOW_UPS))]
    V = V[np.ix_(ix, ix)]
    A = np.array([attenuation(scen)[f] for f in FOLLOW_UPS])
    ratio = float(A @ np.linalg.solve(V, A) * V[0, 0])
    V6 = residual_cov(scen)
    A6 = np.repeat(A, len(OUTCOMES))
    ratio6 = float(A6 @ np.linalg.solve(V6, A6) * V6[k, k])
    return {"scenario": scenario, "attenuation": A.tolist(), "information_ratio": round(ratio, 4),
            "noise_variance_ratio": round(1 / ratio, 4), "information_ratio_with_function": round(ratio6, 4),
            "noise_variance_ratio_with_function": round(1 / ratio6, 4)}


def run(scenario: str, seed: int) -> list:
    from benchmarks.bench_effect_variants import pain_task
    from training.iecv import _benefit_mix
    from benchmarks.in_trial_multivariate import multivariate_deviations
    from training.learners.trial_specific import InTrialBenefit, learner_residuals, univariate_deviations
    from training.train import make_learner

    d = pain_task(scenario, seed)
    cfg, X, y, cls, trial, comps, ok, t_avg, t_mix = d.cfg, d.X, d.y, d.cls, d.trial, d.comps, d.ok, d.t_avg, d.t_mix
    train_s = scenario.partition(">")[0]
    tasks = [("pain", "short"), ("pain", "moderate"), ("pain", "long"), ("function", "short")]
    frames = task_frames(train_s, seed, tasks)
    main = frames[("pain", "short")]
    assert len(main) == len(X) and (main["trial"].to_numpy() == trial).all()

    def fit(df):
        Xf, yf = df[["trial", "treatment"] + d.feats], df["value"].to_numpy(float)
        m = make_learner("effect_model", "continuous", cfg, seed, n_boot=0)
        m.fit(Xf.copy(), yf)
        return m, Xf, yf

    t0 = time.process_time()
    m, _, _ = fit(main)
    b = _benefit_mix(m.predict(X), trial, cls, cfg.active, comps)
    comp_res = {}
    for task in tasks[1:]:
        mc, Xc, yc = fit(frames[task])
        comp_res[task] = pd.Series(learner_residuals(mc, Xc, yc), index=pd.MultiIndex.from_frame(frames[task][["trial", "participant"]]))
    fit_sec = time.process_time() - t0
    dev_true = t_mix - t_avg

    def rms(a):
        return float(np.sqrt(np.mean(a[ok] ** 2)))

    rows = []

    def record(name, it, sec):
        b_in = _benefit_mix(it.predict(X), trial, cls, cfg.active, comps)
        rows.append({"scenario": scenario, "seed": seed, "variant": name, "pehe_in_trial": rms(b_in - t_mix),
                     "pehe_avg": rms(b - t_avg), "pehe": rms(b - t_mix), "dev_err": rms((b_in - b) - dev_true),
                     "dev_sd": rms(dev_true), "tau": float(np.mean([v for k, v in it.tau_.items() if k != "__pooled__"])),
                     "cpu_seconds": sec})
        r = rows[-1]
        print(f"{scenario} s{seed} {name}: in-trial {r['pehe_in_trial']:.3f} dev_err {r['dev_err']:.3f} "
              f"(plain {r['pehe']:.3f}, avg {r['pehe_avg']:.3f}, tau {r['tau']:.2f})", flush=True)

    t1 = time.process_time()
    record("univariate", InTrialBenefit(m).fit(X, y), time.process_time() - t1)
    t1 = time.process_time()
    record("pooled_tau", InTrialBenefit(m, min_trials=10 ** 6).fit(X, y), time.process_time() - t1)
    r0 = learner_residuals(m, X, y)
    for tau in (2.0, 3.0, 4.0):
        it = InTrialBenefit(m).fit(X, y)
        it.deviations_, it.tau_ = univariate_deviations(r0, trial, cls, cfg.active, comps, fixed_tau=tau)
        record(f"tau{tau:g}", it, 0.0)
    # reference check: the multivariate estimator with one component is the univariate one
    one, _, _ = multivariate_deviations(r0[:, None], trial, cls, cfg.active, comps)
    uni = InTrialBenefit(m).fit(X, y).deviations_
    both = uni.merge(one, on=["trial", "comparator"], suffixes=("", "_mv"))
    assert len(both) == len(uni) == len(one), "multivariate (K = 1) rows differ from the univariate ones"
    for col in ("raw", "se", "mu", "blup", "post_sd"):
        assert np.allclose(both[col], both[f"{col}_mv"]), f"multivariate (K = 1) {col} differs from the univariate one"
    pid = pd.MultiIndex.from_frame(main[["trial", "participant"]])
    for name, comp in COMPANIONS.items():
        t1 = time.process_time()
        R = np.column_stack([r0] + [comp_res[t].reindex(pid).to_numpy(float) for t in comp])
        it = InTrialBenefit(m).fit(X, y)
        it.deviations_, it.tau_, rho = multivariate_deviations(R, trial, cls, cfg.active, comps)
        record(name, it, time.process_time() - t1)
        rows[-1]["between_corr"] = " ".join(f"{v:.2f}" for v in rho[0, 1:])
    y_nf = np.array([d.truth[f"expected_{c}"].iloc[i] for i, c in enumerate(cls)])
    record("from_noise_free", InTrialBenefit(m).fit(X, y_nf), 0.0)
    rows.append({"scenario": scenario, "seed": seed, "variant": "true_dev", "pehe_in_trial": rms(b + dev_true - t_mix),
                 "pehe_avg": rms(b - t_avg), "pehe": rms(b - t_mix), "dev_err": 0.0, "dev_sd": rms(dev_true),
                 "cpu_seconds": fit_sec})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["interaction", "plateau>edge_trial", "curvilinear",
                                                        "hayden2020", "none"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    for s in sorted({x.partition(">")[0] for x in a.scenarios}):
        print("follow-up borrowing, oracle bound:", followup_information(s), flush=True)
    df = run_grid(run, a.scenarios, a.seeds, a.out)
    summ = df.groupby(["scenario", "variant"], sort=False)[["pehe_in_trial", "dev_err", "pehe_avg"]].mean().round(3)
    summ.to_csv(a.out.with_name(a.out.stem + "_summary.csv"))
    print(summ.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
