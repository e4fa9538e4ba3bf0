"""Benchmark the benefit learners against the simulator's truth and against peers.

For each scenario x seed: simulate a pooled dataset (``training.simulate``), harmonise it, take
one task (default pain at short term), fit our learners (constant, effect, risk, T, X, DR) with
intervals, build the *selected* model exactly as ``train`` does but with 5 trial-grouped folds
instead of leave-one-trial-out (non-negative R-loss stacking of the held-out predictions), and
fit the peers on the same data: EconML ``DRLearner`` and ``CausalForestDML``, CausalML
``BaseXRegressor`` (benchmark-only extras, not runtime dependencies).

Estimand compared: each participant's true benefit against the comparator(s) of their own
trial (truth table of the simulator: expected outcomes in the participant's trial, so the
trial's random effect is part of the truth and no learner can predict it for a new trial).
Per learner: root PEHE (``pehe``: vs the trial-specific truth of the training participants;
``pehe_avg_trial``: vs the truth without the trial's own random class effect, i.e. the learners'
estimand; ``pehe_new``: on an independent dataset of new trials, seed + 10000), bias, 95% CI /
PI coverage (where the learner gives intervals), c-for-benefit on observed outcomes (in-sample
``c_for_benefit``, optimistic for flexible learners; out-of-sample ``c_for_benefit_new``) vs the
oracle's (the true benefit as the predictor), and fit time. Participants of trials without a comparator are not scored (their comparator is
undefined); ``pehe_all_classes`` scores our learners on every participant against every class
with data; ``pehe_<class>`` / ``classmean_<class>`` per comparator class (our learners vs the true
class mean as predictor).

Peers get the same features (mean-imputed with missing indicators: CausalForestDML rejects
NaN), the trial's comparator class as one-hot features (so their effect can differ by class),
trial one-hot as controls W, folds grouped by trial, and (not being able to take known
propensities) a constant-prior propensity model.

A scenario ``TRAIN>NEW`` (e.g. ``plateau>edge_trial``) trains on ``TRAIN`` and evaluates the new-trial
metrics on data of scenario ``NEW`` (a case-mix shift); ``coverage_pi_new`` (inside / beyond the
training support of ``predict.support``) is the new trials' PI coverage of their trial-specific truth,
``spread`` the within-trial SD of the predicted benefit.

Usage::

    python benchmarks/bench_learners.py --out benchmarks/results/learners.csv \
        [--scenarios hayden2020 none strong nonlinear plateau curvilinear interaction 'plateau>edge_trial'] [--seeds-default 10] [--seeds-other 5] \
        [--workers 2] [--no-peers] [--participants 17000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.train import LEARNERS as OURS, learners_for  # noqa: E402  (the default train's learners)
# candidate members outside the default (--extra-members): the stack over OURS + these is reported
# as ``selected_plus`` beside the default's ``selected`` (effect_adaptive was such a candidate until it
# joined the default on 2026-12-07; the effect model with its feature-wise weights chosen against the
# common penalty by CV is the one left)
EXTRA = {"effect_adaptive_cv": ("effect_model", {"adaptive": True}),
         # per-feature prior variances by marginal likelihood (training.learners.ard), 4-knot modifier splines
         "effect_ard": ("effect_ard", {"scale": "ml2", "modifier_knots": 4}),
         # the same with a common multiplier on the ML-II SDs chosen by trial-grouped CV of the R-loss
         "effect_ard_cv": ("effect_ard", {"scale": "cv", "modifier_knots": 4}),
         # per-feature variances by MAP-II around the effect model's CV common SD (log-normal hyperprior, SD 1;
         # the class default since the end of session 9, i.e. train's --learner effect_ard)
         "effect_ard_hier": ("effect_ard", {"scale": "hier", "modifier_knots": 3})}
# (effect_pairs, product columns of screened modifier pairs, was a candidate here until it joined the default
# for continuous outcomes at the end of session 9)


def make_member(name, otype, cfg, seed, **kw):
    from training.train import make_learner

    if name in EXTRA:
        base, params = EXTRA[name]
        return make_learner(base, otype, cfg, seed, **kw).set_params(**params)
    return make_learner(name, otype, cfg, seed, **kw)


def load_task(scenario: str, seed: int, outcome: str, follow_up: str, n_participants: int | None = None):
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.learners.base import task_frame
    from training.simulate import simulate_dataset

    sim = simulate_dataset(scenario, seed=seed, n_participants=n_participants)
    with tempfile.TemporaryDirectory() as tmp:
        sim.write(Path(tmp))
        ds = load_dataset(Path(tmp))
        h = harmonise(ds)
    df = task_frame(h.analysis, outcome, follow_up)
    tr = sim.truth
    tr = tr[(tr["outcome"].astype(str) == outcome) & (tr["follow_up"].astype(str) == follow_up)].copy()
    tr["trial"] = tr["trial"].astype(str)
    tr["participant"] = tr["participant"].astype(str)
    df["participant"] = df["participant"].astype(str)
    bcols = [c for c in tr.columns if c.startswith(("benefit_vs_", "expected_"))]
    m = df[["trial", "participant"]].merge(tr[["trial", "participant"] + bcols], on=["trial", "participant"], how="left")
    # the trial's own random class effects (A_f u_t,c): truth minus these = average-trial truth
    from training.simulate.model import attenuation

    te = sim.trial_effects[sim.trial_effects["outcome"].astype(str) == outcome].copy()
    te["trial"] = te["trial"].astype(str)
    A = attenuation(sim.scenario)[follow_up]
    re = df[["trial"]].merge(te, on="trial", how="left")
    recols = {c[len("re_"):]: A * re[c].to_numpy() for c in te.columns if c.startswith("re_")}
    if outcome == "global_recovery":
        # binary: the trial effects act on the latent (probit-like) scale and the trials' designs
        # (instrument rounding, which outcome decides recovery) move the risk difference too, so
        # "truth minus A u" is not the average-trial truth. The CI's estimand, as a logistic model
        # with trial intercepts defines its average trial: per trial of these data its design and
        # its own intercept and baseline slope (no class deviation), averaged on the logit scale with
        # the trials' sizes in this task (training.simulate.generator.design_averaged_truth);
        # recols = truth - that
        from training.simulate.generator import design_averaged_truth, trial_effects_of

        w = df["trial"].astype(str).value_counts().to_dict()
        av = design_averaged_truth(sim, outcome, follow_up, w, trial_effects=trial_effects_of(sim))
        av = pd.concat([sim.complete[["trial", "participant"]].astype(str).reset_index(drop=True), av], axis=1)
        av = df[["trial", "participant"]].merge(av, on=["trial", "participant"], how="left")
        recols = {c[len("benefit_vs_"):]: m[c].to_numpy() - av[c].to_numpy() for c in bcols if c.startswith("benefit_vs_")}
    return df, m[bcols].reset_index(drop=True), ds.config, recols


def big_sample(scenario: str, seed: int, outcome: str, follow_up: str, cfg, n: int):
    """(frame, average-trial truth, comparator-trial mask) of a large independent sample of the training
    design (seed + 20000): noise-free labels for the observed-data oracles (benchmarks/oracle_benefit.py)."""
    from training.learners.stacking import comparator_mix

    bdf, btruth, _, brecols = load_task(scenario, seed + 20_000, outcome, follow_up, n_participants=n)
    bcls = bdf["treatment"].astype(str).to_numpy()
    btrial = bdf["trial"].astype(str).to_numpy()
    comps = sorted(set(bcls) - {cfg.active})
    bok = np.array([len(set(bcls[btrial == t]) - {cfg.active}) > 0 and (bcls[btrial == t] == cfg.active).any()
                    for t in np.unique(btrial)])
    bok = pd.Series(bok, index=np.unique(btrial)).reindex(btrial).to_numpy()
    W = comparator_mix(btrial, bcls, cfg.active, comps)
    t_avg = sum(W[:, i] * (btruth[f"benefit_vs_{c}"].to_numpy() - brecols[c]) for i, c in enumerate(comps))
    return bdf, t_avg, bok


def peer_design(df: pd.DataFrame, feats: list, comps: list, means: pd.Series | None = None, ind_cols=None):
    """Mean-imputed features + missing indicators + the trial's comparator classes (one-hot);
    W = trial one-hot. ``means``/``ind_cols`` from the training data when scoring new data."""
    from benchmarks.oracle_benefit import design

    Xi, ind, C, means, ind_cols = design(df, feats, comps, means, ind_cols)
    W = pd.get_dummies(df["trial"], dtype=float)
    return pd.concat([Xi, ind, C], axis=1).to_numpy(), W.to_numpy(), means, ind_cols


def fit_peers(df, y, feats, comps, seed, ok_rows, new_df=None):
    """Peers on comparator trials only (they cannot use exercise-only trials). Returns
    {name: (benefit for ok_rows, lo, hi, seconds, benefit on new_df)} (positive = exercise better)."""
    from lightgbm import LGBMRegressor
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import GroupKFold

    out = {}
    d = df.loc[ok_rows].reset_index(drop=True)
    yy = y[ok_rows]
    T = (d["treatment"] == "exercise").astype(int).to_numpy()
    X, W, means, ind_cols = peer_design(d, feats, comps)
    Xn = peer_design(new_df, feats, comps, means, ind_cols)[0] if new_df is not None else None
    groups = d["trial"].to_numpy()
    lgb = dict(n_estimators=150, learning_rate=0.05, num_leaves=7, min_child_samples=30, subsample=0.8,
               subsample_freq=1, colsample_bytree=0.8, reg_lambda=10.0, n_jobs=1, verbose=-1, random_state=seed)
    sign = -1.0  # continuous 0-100 higher = worse: benefit = -(Y1 - Y0)
    try:
        from econml.dml import CausalForestDML
        from econml.dr import DRLearner

        t0 = time.time()
        est = DRLearner(model_propensity=DummyClassifier(strategy="prior"), model_regression=LGBMRegressor(**lgb),
                        model_final=LGBMRegressor(**{**lgb, "n_estimators": 100, "num_leaves": 5, "min_child_samples": 60}),
                        cv=GroupKFold(5), random_state=seed)
        est.fit(yy, T, X=X, W=W, groups=groups)
        out["econml_dr"] = (sign * est.effect(X), None, None, time.time() - t0,
                            None if Xn is None else sign * est.effect(Xn))
        t0 = time.time()
        cf = CausalForestDML(model_y=LGBMRegressor(**lgb), model_t=DummyClassifier(strategy="prior"),
                             discrete_treatment=True, n_estimators=400, min_samples_leaf=10, cv=GroupKFold(5),
                             random_state=seed, n_jobs=1)
        cf.fit(yy, T, X=X, W=W, groups=groups)
        lo, hi = cf.effect_interval(X, alpha=0.05)
        out["econml_cf"] = (sign * cf.effect(X), sign * hi, sign * lo, time.time() - t0,
                            None if Xn is None else sign * cf.effect(Xn))
    except ImportError as exc:  # pragma: no cover
        out["econml_error"] = str(exc)
    try:
        from causalml.inference.meta import BaseXRegressor

        t0 = time.time()
        e = float(T.mean())
        xl = BaseXRegressor(learner=LGBMRegressor(**lgb), control_name=0)
        xl.fit(X, T, yy, p=np.full(T.size, e))
        tau = np.asarray(xl.predict(X, p=np.full(T.size, e))).reshape(-1)
        tn = None if Xn is None else sign * np.asarray(xl.predict(Xn, p=np.full(Xn.shape[0], e))).reshape(-1)
        out["causalml_x"] = (sign * tau, None, None, time.time() - t0, tn)
    except ImportError as exc:  # pragma: no cover
        out["causalml_error"] = str(exc)
    return out


def within_trial_sd(b, trial) -> float:
    """SD of the predicted benefit among participants of the same trial (same comparator mix),
    averaged over trials: the predicted heterogeneity (0 for an average-effect model)."""
    return float(pd.Series(np.asarray(b, float)).groupby(np.asarray(trial)).std(ddof=0).mean())


def per_class(p, truth, ok, Wmix, comps) -> dict:
    """Per comparator class: root PEHE of the prediction against the class-specific truth
    (``pehe_<class>``, participants of trials with that class) and of the true class mean as the
    predictor (``classmean_<class>``: a perfect average-effect model for that class)."""
    out = {}
    for i, c in enumerate(comps):
        msk = ok & (Wmix[:, i] > 0)
        if f"benefit_vs_{c}" not in p or not msk.any():
            continue
        tc = truth[f"benefit_vs_{c}"].to_numpy()[msk]
        out[f"pehe_{c}"] = float(np.sqrt(np.mean((p[f"benefit_vs_{c}"].to_numpy()[msk] - tc) ** 2)))
        out[f"classmean_{c}"] = float(np.std(tc))
    return out


def c_benefit(b, y, treat, trial):
    from training.metrics import c_for_benefit

    # a 0/1 outcome is global recovery (1 = good); until 2026-12-07 it was read as a continuous
    # higher-is-worse score, which inverted the binary c-for-benefit (e.g. 0.37 instead of 0.63)
    binary = set(np.unique(np.asarray(y, float))) <= {0.0, 1.0}
    try:
        return c_for_benefit(b, y, treat, outcome_type="binary" if binary else "continuous",
                             higher_is_better=binary, cluster=trial, match="benefit", n_boot=0,
                             n_repeats=5).c_for_benefit
    except Exception:  # noqa: BLE001 - a metric failure should not stop the benchmark
        return np.nan


STACK_SE_JOINT = False  # --stack-se-joint


def one(args) -> list:
    scenario, seed, outcome, follow_up, peers, n_boot_lin, n_boot_tree, *opts = args
    train_opts = opts[0] if opts else {}
    oracle_only = bool(opts[1]) if len(opts) > 1 else False
    oracle_scale = int(opts[2]) if len(opts) > 2 else 10
    extra = tuple(opts[3]) if len(opts) > 3 else ()
    drop = tuple(opts[4]) if len(opts) > 4 else ()  # default members left out of selected_plus's stack
    n_train = opts[5] if len(opts) > 5 else None  # training data resized to this many participants (None: as designed)
    dump = opts[6] if len(opts) > 6 else None  # folder for per-participant new-trial predictions (diagnosis)
    members = OURS + extra
    train_scenario, _, new_scenario = scenario.partition(">")
    new_scenario = new_scenario or train_scenario
    from threadpoolctl import threadpool_limits

    from training.iecv import _benefit_mix, run_iecv
    from training.learners.folds import trial_folds
    from training.learners.stacking import StackedLearner

    warnings.simplefilter("ignore")
    rows = []
    with threadpool_limits(1):
        df, truth, cfg, recols = load_task(train_scenario, seed, outcome, follow_up, n_participants=n_train)
        if train_opts:  # study-config 'train:' options (e.g. class_shrinkage) for our learners
            from dataclasses import replace

            cfg = replace(cfg, train={**cfg.train, **train_opts})
        # an independent dataset (new trials of the same design, or of the scenario after '>') for
        # out-of-sample evaluation
        ndf, ntruth, _, nrecols = load_task(new_scenario, seed + 10_000, outcome, follow_up)
        otype = "continuous" if outcome != "global_recovery" else "binary"
        ours = tuple(learners_for(OURS, otype, default=True))  # as train: effect_pairs for continuous outcomes only, risk_model for binary ones
        members = tuple(learners_for(members, otype, default=True))
        feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
        X = df[["trial", "treatment"] + feats]
        y = df["value"].to_numpy(float)
        cls = df["treatment"].astype(str).to_numpy()
        trial = df["trial"].astype(str).to_numpy()
        treat = (cls == cfg.active).astype(float)
        comps_present = sorted(set(cls) - {cfg.active})
        ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any()
                       for t in trial])
        from training.learners.stacking import comparator_mix

        Wmix = comparator_mix(trial, cls, cfg.active, comps_present)
        t_mix = sum(Wmix[:, i] * truth[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(comps_present))
        t_avg = t_mix - sum(Wmix[:, i] * recols[c] for i, c in enumerate(comps_present))
        oracle_c = c_benefit(t_mix[ok], y[ok], treat[ok], trial[ok])
        ny = ndf["value"].to_numpy(float)
        ncls = ndf["treatment"].astype(str).to_numpy()
        ntrial = ndf["trial"].astype(str).to_numpy()
        ntreat = (ncls == cfg.active).astype(float)
        ncomps = sorted(set(ncls) - {cfg.active})
        nok = np.array([len(set(ncls[ntrial == t]) - {cfg.active}) > 0 and (ncls[ntrial == t] == cfg.active).any()
                        for t in ntrial])
        nW = comparator_mix(ntrial, ncls, cfg.active, ncomps)
        nt_mix = sum(nW[:, i] * ntruth[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(ncomps))
        nt_avg = nt_mix - sum(nW[:, i] * nrecols[c] for i, c in enumerate(ncomps))
        # oracle bounds (benchmarks/oracle_benefit.py): the truth without / with the trial's own effect
        from benchmarks.oracle_benefit import oracle_rows

        exp_own = np.array([truth[f"expected_{k}"].to_numpy()[i] for i, k in enumerate(cls)])
        big = big_sample(train_scenario, seed, outcome, follow_up, cfg, oracle_scale * len(df))
        rows += oracle_rows({"scenario": scenario, "seed": seed}, y, cls, trial, cfg.active, exp_own, recols, Wmix,
                            comps_present, t_mix, t_avg, ok, nt_mix, nt_avg, nok, df, ndf, feats, seed, within_trial_sd,
                            big)
        if oracle_only:
            return rows
        oracle_c_new = c_benefit(nt_mix[nok], ny[nok], ntreat[nok], ntrial[nok])
        # new trials get their own labels (the simulator reuses trial names across seeds, and the
        # in-trial models must not apply a fitted trial's deviation to a new trial of the same name)
        NX = ndf[["trial", "treatment"] + feats].assign(trial=lambda d: "new:" + d["trial"].astype(str))

        def new_metrics(bn, pn=None):
            out = {"pehe_new": float(np.sqrt(np.mean((bn[nok] - nt_mix[nok]) ** 2))),
                   "pehe_avg_new": float(np.sqrt(np.mean((bn[nok] - nt_avg[nok]) ** 2))),
                   "bias_new": float(np.mean(bn[nok] - nt_mix[nok])),
                   # vs the truth without the new trials' own random class effects (extrapolation bias alone)
                   "bias_avg_new": float(np.mean(bn[nok] - nt_avg[nok])),
                   "c_for_benefit_new": c_benefit(bn[nok], ny[nok], ntreat[nok], ntrial[nok]),
                   "c_oracle_new": oracle_c_new}
            if pn is not None and f"benefit_vs_{ncomps[0]}_pi_low" in pn:
                # new-setting PI per class vs the new trial's class-specific truth, overall and by
                # distance from the training support (predict.support)
                hits, rare, far = [], [], []
                for i, c in enumerate(ncomps):
                    if f"benefit_vs_{c}_pi_low" not in pn:
                        continue
                    msk = nok & (nW[:, i] > 0)
                    tc = ntruth[f"benefit_vs_{c}"].to_numpy()[msk]
                    hits.append((tc >= pn[f"benefit_vs_{c}_pi_low"].to_numpy()[msk])
                                & (tc <= pn[f"benefit_vs_{c}_pi_high"].to_numpy()[msk]))
                    rare.append(pn["support_rare"].to_numpy()[msk] if "support_rare" in pn else np.zeros(msk.sum(), bool))
                    far.append(pn["support_factor"].to_numpy()[msk] > 1 if "support_factor" in pn else np.zeros(msk.sum(), bool))
                h, r, f = np.concatenate(hits), np.concatenate(rare), np.concatenate(far)
                if "support_ratio" in pn:  # by distance ratio rho = d / d_cut (predict.support): <= 1, 1-1.5, > 1.5
                    rho = np.concatenate([pn["support_ratio"].to_numpy()[nok & (nW[:, i] > 0)]
                                          for i, c in enumerate(ncomps) if f"benefit_vs_{c}_pi_low" in pn])
                    for key, m_ in (("r1", ~(rho > 1)), ("r1_15", (rho > 1) & (rho <= 1.5)), ("r15", rho > 1.5)):
                        out[f"coverage_pi_new_{key}"] = float(h[m_].mean()) if m_.any() else np.nan
                        out[f"share_new_{key}"] = float(m_.mean())
                out.update({"coverage_pi_new": float(h.mean()),
                            "coverage_pi_new_inside": float(h[~f].mean()) if (~f).any() else np.nan,
                            "coverage_pi_new_beyond": float(h[f].mean()) if f.any() else np.nan,
                            "share_new_beyond": float(f.mean()), "share_new_rare": float(r.mean())})
            return out
        # grouped 5-fold CV for selection (IECV-style, fewer folds)
        tcodes = pd.factorize(df["trial"])[0]
        has = np.array([ok[tcodes == k].any() for k in range(tcodes.max() + 1)])
        labels = pd.factorize(df["trial"])[1]
        folds = [[labels[k] for k in f] for f in trial_folds(tcodes, has, 5, seed)]
        t0 = time.time()
        factories = {n: (lambda n=n: make_member(n, otype, cfg, seed, n_boot=0)) for n in members}
        from training.learners.member_corr import REF_ROWS, submatrix

        cv = run_iecv(X.assign(_y=y), "_y", factories, otype, cfg.active, metrics=False, groups=folds, workers=1,
                      ref_rows=REF_ROWS if STACK_SE_JOINT else 0)
        cv_seconds = time.time() - t0
        fitted, secs = {}, {}
        for n in members:
            t0 = time.time()
            lr = make_member(n, otype, cfg, seed, boot_trees=n_boot_tree, boot_linear=n_boot_lin).fit(X, y)
            secs[n] = time.time() - t0
            fitted[n] = lr
        from training.iecv import stacking_from_predictions
        # the heterogeneity gate of train's selection (training.learners.stack_gate)
        from training.learners.stack_gate import heterogeneity_gate

        from training.learners.stack_gate import shrink_to_primary

        def select(pred, fallback="effect_model", shrink=False, **gate_opts):
            ww = {k: v for k, v in stacking_from_predictions(pred, otype).items() if v > 1e-6}
            if heterogeneity_gate(pred, otype, seed=seed, **gate_opts)["keep_stack"]:
                # shrink: a candidate (not train's rule), the one-SE move towards the effect model
                return shrink_to_primary(pred, ww, otype)[0] if shrink else ww
            # as train's training.selection.gate_fallback (session 9): the effect model (until then the average-effect model)
            return {fallback: 1.0}

        pred_default = cv.predictions[cv.predictions["learner"].isin(ours)]
        w = select(pred_default)
        best = cv.r_loss[cv.r_loss["learner"].isin(ours)].sort_values("r_loss").iloc[0]["learner"]
        models = dict(fitted)
        weights_of = {"selected": w}
        # candidate (measured 2026-12-07 session 11, not adopted): the kept stack moved towards the effect model
        # by the one-SE rule (training.learners.stack_gate.shrink_to_primary)
        w_sh = select(pred_default, shrink=True)
        weights_of["selected_1se_shrink"] = w_sh
        models["selected_1se_shrink"] = StackedLearner.from_fitted([fitted[k] for k in w_sh], list(w_sh.values()),
                                                                   list(w_sh))
        secs["selected_1se_shrink"] = cv_seconds + sum(secs[k] for k in w_sh)
        # the gate before 2026-12-07 session 8: the stack's own test only (no second chance for the effect model)
        w_old = select(pred_default, primary=None)
        weights_of["selected_gate_stack_only"] = w_old
        models["selected_gate_stack_only"] = StackedLearner.from_fitted([fitted[k] for k in w_old], list(w_old.values()),
                                                                        list(w_old))
        secs["selected_gate_stack_only"] = cv_seconds + sum(secs[k] for k in w_old)
        # the gate's fallback before the end of session 9: the average-effect model (now the effect model)
        w_c = select(pred_default, fallback="constant")
        weights_of["selected_fallback_constant"] = w_c
        models["selected_fallback_constant"] = StackedLearner.from_fitted([fitted[k] for k in w_c], list(w_c.values()),
                                                                          list(w_c))
        secs["selected_fallback_constant"] = cv_seconds + sum(secs[k] for k in w_c)
        if extra or drop:  # the stack with the candidate members: same CV, same gate
            wp = select(cv.predictions[~cv.predictions["learner"].isin(drop)])
            weights_of["selected_plus"] = wp
            models["selected_plus"] = StackedLearner.from_fitted([fitted[k] for k in wp], list(wp.values()), list(wp))
            secs["selected_plus"] = cv_seconds + sum(secs[k] for k in wp)
        if w:
            models["selected"] = StackedLearner.from_fitted([fitted[k] for k in w], list(w.values()), list(w))
        else:
            models["selected"] = fitted[best]
        secs["selected"] = cv_seconds + sum(secs[k] for k in w or [best])
        if STACK_SE_JOINT and len(w) > 1:  # --stack-se-joint (s13w): the stack's SE from its members' joint covariance
            mc = cv.member_corr
            for name, corr in (("selected_joint", submatrix(mc, list(w))),  # shrunk towards 1 (train's rule)
                               ("selected_joint_raw", submatrix({**mc, "corr": mc["raw"]}, list(w)) if mc else None)):
                models[name] = StackedLearner.from_fitted([fitted[k] for k in w], list(w.values()), list(w),
                                                          member_corr=corr)
                secs[name] = secs["selected"]
                weights_of[name] = {**w, "member_corr": {c: np.round(R, 3).tolist() for c, R in (corr or {}).items()},
                                    "folds": mc["folds"] if mc else 0}
        # the extrapolation widening calibrated on the held-out folds (training.learners.support_calibration;
        # session 12 s12e): the selected model with the fitted kappa, and the estimator's check on the truth
        inflation = {}
        if otype == "continuous":
            import copy

            from training.iecv_stack import stacked_predictions
            from training.learners.support_calibration import calibrate, with_inflation

            ps = stacked_predictions(pred_default, w) if len(w) > 1 else None
            if ps is None:
                one_name = next(iter(w)) if w else best
                ps = pred_default[pred_default["learner"] == one_name]
            ps = ps[np.isfinite(ps["benefit"].to_numpy(float))]
            pos = X.index.get_indexer(ps["row"])
            inflation = calibrate(models["selected"].export_, X, ps, cv.folds, cfg.active, truth=t_mix[pos], seed=seed)
            cal = copy.copy(models["selected"])
            cal.export_ = with_inflation(models["selected"].export_, inflation)
            models["selected_calibrated"] = cal
            secs["selected_calibrated"] = secs["selected"]
            weights_of["selected_calibrated"] = {**w, "inflation": {k: v for k, v in inflation.items()
                                                                     if k not in ("method", "version", "form")}}
        models["best_single_cv"] = fitted[best]
        secs["best_single_cv"] = cv_seconds + secs[best]
        from training.iecv import select_one_se

        b1 = select_one_se(pred_default, otype)[0]
        models["selected_1se"] = fitted[b1]
        secs["selected_1se"] = cv_seconds + secs[b1]
        # the same models' benefit in the participant's own (fitted) trial: + the trial's EB deviation
        from training.learners.trial_specific import InTrialBenefit

        for base in ("selected", "effect_model", "selected_gate_stack_only") + (("selected_plus",) if (extra or drop) else ()):
            t0 = time.time()
            models[f"{base}_in_trial"] = InTrialBenefit(models[base]).fit(X, y)
            secs[f"{base}_in_trial"] = secs[base] + time.time() - t0
        if otype == "binary":  # recovery's structural missing-input allowance, as the artifact carries it
            from benchmarks.bench_recovery_allowance import WithStructural, structural_for

            field = structural_for(train_scenario, seed, follow_up, cfg, fitted["effect_model"].export_, feats, n_train)
            for base in ("selected", "effect_model"):
                models[f"{base}_structural"] = WithStructural(models[base], field)
            weights_of["selected_structural"] = w
        dumped = {}
        for name, m in models.items():
            p = m.predict_interval(X)
            b = _benefit_mix(p, trial, cls, cfg.active, comps_present)
            cov_ci = cov_pi = cov_avg = np.nan
            los = [p.get(f"benefit_vs_{c}_ci_low") for c in comps_present]
            if all(v is not None for v in los):
                # per-class intervals: cover the class-specific truth; participants of comparator
                # trials against each of their trial's classes
                hits_ci, hits_pi, hits_avg = [], [], []
                for i, c in enumerate(comps_present):
                    msk = ok & (Wmix[:, i] > 0)
                    tc = truth[f"benefit_vs_{c}"].to_numpy()[msk]
                    ta = tc - recols[c][msk]  # average-trial truth: the CI's estimand
                    lo_, hi_ = p[f"benefit_vs_{c}_ci_low"].to_numpy()[msk], p[f"benefit_vs_{c}_ci_high"].to_numpy()[msk]
                    hits_ci.append((tc >= lo_) & (tc <= hi_))
                    hits_avg.append((ta >= lo_) & (ta <= hi_))
                    hits_pi.append((tc >= p[f"benefit_vs_{c}_pi_low"].to_numpy()[msk]) & (tc <= p[f"benefit_vs_{c}_pi_high"].to_numpy()[msk]))
                cov_ci = float(np.concatenate(hits_ci).mean())
                cov_pi = float(np.concatenate(hits_pi).mean())
                cov_avg = float(np.concatenate(hits_avg).mean())
            err = b[ok] - t_mix[ok]
            all_err = []
            for c in m.comparators_:
                if f"benefit_vs_{c}" in truth:
                    all_err.append(p[f"benefit_vs_{c}"].to_numpy() - truth[f"benefit_vs_{c}"].to_numpy())
            pn = m.predict_interval(NX)
            if hasattr(m, "support_scores"):
                sc = m.support_scores(NX)
                pn = pn.assign(support_rare=sc["rare"], support_factor=sc["factor"],
                               **({"support_ratio": sc["ratio"]} if "ratio" in sc else {}))
            bn = _benefit_mix(pn, ntrial, ncls, cfg.active, ncomps)
            if dump:
                dumped[name] = bn
                dumped.update({f"{name}:{k}": pn[k].to_numpy() for k in pn.columns
                               if k.endswith(("_pi_low", "_pi_high")) or k.startswith("support_")})
            rows.append({"scenario": scenario, "seed": seed, "learner": name, "pehe": float(np.sqrt(np.mean(err ** 2))),
                         "pehe_avg_trial": float(np.sqrt(np.mean((b[ok] - t_avg[ok]) ** 2))), **new_metrics(bn, pn),
                         "spread": within_trial_sd(b[ok], trial[ok]), "bias": float(np.mean(err)), "coverage_ci": cov_ci, "coverage_pi": cov_pi,
                         "coverage_ci_avg_trial": cov_avg,
                         "c_for_benefit": c_benefit(b[ok], y[ok], treat[ok], trial[ok]), "c_oracle": oracle_c,
                         "pehe_all_classes": float(np.sqrt(np.mean(np.concatenate(all_err) ** 2))),
                         "sd_true_benefit": float(np.std(t_mix[ok])), "fit_seconds": secs.get(name, np.nan),
                         **({"kappa": inflation.get("kappa"), "kappa_true": inflation.get("kappa_true"),
                             "kappa_se": inflation.get("kappa_se")} if name == "selected" and inflation else {}),
                         "n": int(ok.sum()), "weights": json.dumps(weights_of[name]) if name in weights_of else (b1 if name == "selected_1se" else ""),
                         **per_class(p, truth, ok, Wmix, comps_present)})
        if peers:
            for name, res in fit_peers(df, y, feats, comps_present, seed, ok, ndf.loc[nok]).items():
                if isinstance(res, str):
                    rows.append({"scenario": scenario, "seed": seed, "learner": name, "error": res})
                    continue
                b, lo, hi, s, bnew = res
                bn = np.full(len(ndf), np.nan)
                bn[nok] = bnew
                dumped[name] = bn
                err = b - t_mix[ok]
                cov = np.nan
                if lo is not None:
                    cov = float(np.mean((t_mix[ok] >= lo) & (t_mix[ok] <= hi)))
                rows.append({"scenario": scenario, "seed": seed, "learner": name, "pehe": float(np.sqrt(np.mean(err ** 2))),
                             "pehe_avg_trial": float(np.sqrt(np.mean((b - t_avg[ok]) ** 2))), **new_metrics(bn),
                             "spread": within_trial_sd(b, trial[ok]), "bias": float(np.mean(err)), "coverage_ci": cov, "coverage_pi": np.nan,
                             "c_for_benefit": c_benefit(b, y[ok], treat[ok], trial[ok]), "c_oracle": oracle_c,
                             "sd_true_benefit": float(np.std(t_mix[ok])), "fit_seconds": s, "n": int(ok.sum())})
        if dump:
            try:
                d = pd.concat([ndf[["trial", "participant", "treatment"] + feats].reset_index(drop=True),
                               ntruth.reset_index(drop=True)], axis=1).assign(ok=nok, truth_mix=nt_mix, truth_avg=nt_avg)
                d = pd.concat([d, pd.DataFrame(dumped)], axis=1)
                Path(dump).mkdir(parents=True, exist_ok=True)
                d.to_csv(Path(dump) / f"new_{scenario.replace('>', '-')}_seed{seed}.csv.gz", index=False)
            except Exception as e:  # a diagnosis extra: never lose the run's rows for it
                print(f"--dump-new failed for {scenario} seed {seed}: {e!r}", file=sys.stderr, flush=True)
    return rows


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per scenario x learner of the metrics present in ``res``."""
    spec = dict(seeds=("seed", "nunique"), pehe=("pehe", "mean"), pehe_sd=("pehe", "std"),
                pehe_avg_trial=("pehe_avg_trial", "mean"), pehe_new=("pehe_new", "mean"),
                pehe_avg_new=("pehe_avg_new", "mean"), c_new=("c_for_benefit_new", "mean"),
                bias_new=("bias_new", "mean"), bias_avg_new=("bias_avg_new", "mean"), spread=("spread", "mean"),
                **{k: (k, "mean") for k in ("coverage_pi_new", "coverage_pi_new_inside", "coverage_pi_new_beyond",
                                            "share_new_beyond", "share_new_rare", "coverage_pi_new_r1",
                                            "coverage_pi_new_r1_15", "coverage_pi_new_r15", "share_new_r1",
                                            "share_new_r1_15", "share_new_r15", "kappa", "kappa_true")},
                c_oracle_new=("c_oracle_new", "mean"), bias=("bias", "mean"), coverage_ci=("coverage_ci", "mean"),
                coverage_pi=("coverage_pi", "mean"), coverage_ci_avg=("coverage_ci_avg_trial", "mean"),
                c_for_benefit=("c_for_benefit", "mean"), c_oracle=("c_oracle", "mean"),
                fit_seconds=("fit_seconds", "mean"), sd_true=("sd_true_benefit", "mean"))
    spec = {k: v for k, v in spec.items() if v[0] in res}
    return res.groupby(["scenario", "learner"]).agg(**spec).reset_index()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learners.csv"))
    ap.add_argument("--scenarios", nargs="*", default=["hayden2020", "none", "strong", "nonlinear"])
    ap.add_argument("--seeds-default", type=int, default=10)
    ap.add_argument("--seeds-other", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="*", default=None,
                    help="explicit seeds for every scenario (overrides --seeds-default / --seeds-other)")
    ap.add_argument("--outcome", default="pain")
    ap.add_argument("--follow-up", default="short")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--n-boot-trees", type=int, default=10)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--oracle-only", action="store_true",
                    help="only the oracle bounds (benchmarks/oracle_benefit.py), no learner or peer fits")
    ap.add_argument("--drop-members", nargs="*", default=[], choices=list(OURS),
                    help="default members left out of selected_plus's stack (e.g. a member the extra one would replace; alone: the default without them)")
    ap.add_argument("--extra-members", nargs="*", default=[], choices=sorted(EXTRA),
                    help="candidate stack members outside the default; reported as selected_plus")
    ap.add_argument("--oracle-scale", type=int, default=10,
                    help="size of the noise-free sample of the observed-data oracles, in multiples of the data's")
    ap.add_argument("--participants", type=int, default=None,
                    help="simulate the training scenario with this many participants (arms resized in proportion; "
                         "e.g. large60 with 17000 as in the speed benchmark); new trials keep their design")
    ap.add_argument("--dump-new", default=None,
                    help="folder: write each scenario x seed's new-trial participants (features, truth, every learner's "
                         "predicted benefit, PIs, support scores) as CSV for diagnosis")
    ap.add_argument("--risk-omitted", action="store_true",
                    help="the risk model's omitted-interaction allowance (training.learners.omitted_interactions; s12v)")
    ap.add_argument("--stack-se-joint", action="store_true",
                    help="also report selected_joint / selected_joint_raw: the selected stack with its SE from the "
                         "members' joint covariance (training.learners.member_corr; the CV folds' correlation shrunk "
                         "towards 1 as train does / unshrunk); s13w")
    ap.add_argument("--stack-no-between", action="store_true",
                    help="stacks without the between-member variance (members' SEs only; s12v)")
    ap.add_argument("--class-shrinkage", action="store_true",
                    help="train: class_shrinkage for our linear learners (training.learners.shrinkage)")
    ap.add_argument("--plug-in-basis", action="store_true",
                    help="the effect-model family's basis at the conditional mean of a missing input (before "
                         "2026-12-07) instead of its expectation E[B(X)|observed] (predict.expected_basis)")
    ap.add_argument("--between", nargs=2, metavar=("SD_RATIO", "SCORING"), default=None,
                    help="the effect-model family's within/between-trial interactions (training.learners.between): "
                         "the between-trial prior SD as a multiple of the within one, and the scoring "
                         "(average|reliability|own); default: within-trial only")
    ap.add_argument("--class-spread", nargs=2, metavar=("SPREAD", "PRIOR"), default=None,
                    help="the class shrinkage's spread estimate (dl|posterior|integrated) and its half-normal prior "
                         "scale (tau|outcome) (training.learners.shrinkage SPREAD, PRIOR; s12k, s13k)")
    a = ap.parse_args(argv)
    if a.class_spread:  # module attributes, seen by the forked workers and the serial loop alike
        from training.learners import shrinkage

        shrinkage.SPREAD, shrinkage.PRIOR = a.class_spread
    if a.risk_omitted:  # a class attribute, as --plug-in-basis
        from training.learners.risk_model import RiskModel

        RiskModel.omitted_default = True
    if a.between:  # class attributes, as --plug-in-basis
        from training.learners.effect_model import EffectModel

        EffectModel.between_sd, EffectModel.between_scoring = float(a.between[0]), a.between[1]
    if a.stack_se_joint:  # a module flag: seen by the forked workers and the serial loop alike
        global STACK_SE_JOINT
        STACK_SE_JOINT = True
    if a.stack_no_between:
        from training.learners.stacking import StackedLearner

        StackedLearner.between_rule = None
    if a.plug_in_basis:  # a class attribute: seen by the forked workers and the serial loop alike
        from training.learners.effect_model import EffectModel

        EffectModel.expected_basis = False
    jobs = []
    for sc in a.scenarios:
        n = a.seeds_default if sc == "hayden2020" else a.seeds_other
        opts = {"class_shrinkage": True} if a.class_shrinkage else {}
        jobs += [(sc, s, a.outcome, a.follow_up, not a.no_peers, a.n_boot, a.n_boot_trees, opts, a.oracle_only, a.oracle_scale, a.extra_members,
                  a.drop_members, a.participants, a.dump_new)
                 for s in (a.seeds if a.seeds else range(1, n + 1))]
    t0 = time.time()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    if a.workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(a.workers) as pool:
            for r in pool.imap_unordered(one, jobs):
                rows += r
                pd.DataFrame(rows).to_csv(out, index=False)
                print(f"[{time.time() - t0:6.0f}s] {r[0]['scenario']} seed {r[0]['seed']} done", flush=True)
    else:
        for j in jobs:
            r = one(j)
            rows += r
            pd.DataFrame(rows).to_csv(out, index=False)
            print(f"[{time.time() - t0:6.0f}s] {j[0]} seed {j[1]} done", flush=True)
    res = pd.DataFrame(rows)
    res.to_csv(out, index=False)
    s = summarise(res)
    s.to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    meta = {"seconds": round(time.time() - t0, 1), "nproc": os.cpu_count(), "loadavg_end": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "plug_in_basis": bool(a.plug_in_basis),
            "between": a.between}
    out.with_name(out.stem + "_meta.json").write_text(json.dumps(meta, indent=1))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(s.round(3).to_string(index=False))
    print(meta)


if __name__ == "__main__":
    main()
