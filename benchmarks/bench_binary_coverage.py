"""Why binary (recovery) benefit intervals miss their estimands: bias vs variance, per patient.

For a scenario x seed (``bench_learners.load_task``: training data, average-trial truth as a
logistic model with trial intercepts defines it, new trials of seed + 10000), fit the members
(effect model, risk model, T-learner, DR-learner) with the ``train`` bootstrap and the selected
stack (``bench_learners``' selection: trial-grouped 5-fold CV, R-loss stacking, heterogeneity
gate), and the same members **in their large-sample limit on the same trials**: refitted without
bootstrap on the training rows replicated ``K`` times with labels drawn from each participant's
true P(recovery) in their own trial (the same trials, designs, covariates and missingness; only
the outcome noise shrinks by K). Per fitted participant (comparator trials, against each of
their trial's classes):

- ``err = b - t_avg`` splits into ``est = b - b_K`` (estimation: what the bootstrap SE is for) and
  ``fit = b_K - t_avg`` (the learner class's misfit to the estimand: no SE can cover it);
- ``se`` = the CI's half-width / z (estimation + missing inputs);
- the new trials: the PI (one risk-difference tau per class), its coverage of the new trial's own
  truth and the RMS of that truth's deviation from the average-trial truth.

Writes the summary (per scenario x learner x set: RMS error vs the estimand and its parts, mean
SEs, z-RMS, coverage) to ``--out`` and the same by fifths of the predicted P(recovery | exercise)
and of baseline pain beside it (``_by_p_exercise``, ``_by_baseline_pain``); ``--rows`` keeps the
per-participant rows. Parts of the error of the CI (fitted participants):
``rms_est`` (b - b_K; vs ``mean_se_est``), ``rms_missing`` (b_K at the observed vs at the complete
covariates; vs ``mean_sd_missing``, the spread over the missing-input draws), ``rms_attenuation``
(the limit fitted on imputed vs on complete covariates, both at the complete ones) and
``rms_misfit`` (the complete-data limit vs the estimand: the learner class's own misfit).

Usage::

    python benchmarks/bench_binary_coverage.py --scenarios strong hayden2020 --seeds 1 2 \
        --out benchmarks/results/binary_coverage.csv [--k 10] [--diag effect_model effect_mi ...] [--no-limits]
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

MEMBERS = ("constant", "effect_model", "effect_adaptive", "risk_model", "t_learner", "x_learner", "dr_learner")
DIAG = ("effect_model", "risk_model", "t_learner")
# diagnosed besides the default members (not in the selection): the effect model fitted on multiple
# imputations that include outcome and treatment (training.impute)
VARIANTS = {"effect_mi": ("effect_model", {"missing": "mi"})}


def member(name, otype, cfg, seed, make_member, **kw):
    if name in VARIANTS:
        base, params = VARIANTS[name]
        return make_member(base, otype, cfg, seed, **kw).set_params(**params)
    return make_member(name, otype, cfg, seed, **kw)
Z = 1.959963984540054


def replicated(X: pd.DataFrame, p_own: np.ndarray, k: int, seed: int):
    """The rows of X k times with labels drawn from p_own (same trials, covariates, missingness)."""
    rng = np.random.default_rng(seed)
    XK = pd.concat([X] * k, ignore_index=True)
    yK = (rng.random(len(XK)) < np.tile(p_own, k)).astype(float)
    return XK, yK


def one(scenario: str, seed: int, k: int, n_boot_lin: int, n_boot_tree: int, diag: tuple = DIAG,
        limits: bool = True) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    from benchmarks.bench_learners import load_task, make_member
    from training.iecv import run_iecv, stacking_from_predictions
    from training.learners.folds import trial_folds
    from training.learners.stack_gate import heterogeneity_gate
    from training.learners.stacking import StackedLearner, comparator_mix
    from training.simulate import simulate_dataset
    from predict.features import feature_matrix
    from predict.learner_model import as_learner
    from predict.uncertainty import estimation_se, missing_variance

    warnings.simplefilter("ignore")
    outcome, fu, otype = "global_recovery", "short", "binary"
    with threadpool_limits(1):
        df, truth, cfg, recols = load_task(scenario, seed, outcome, fu)
        ndf, ntruth, _, nrecols = load_task(scenario, seed + 10_000, outcome, fu)
        feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
        X = df[["trial", "treatment"] + feats]
        y = df["value"].to_numpy(float)
        cls = df["treatment"].astype(str).to_numpy()
        trial = df["trial"].astype(str).to_numpy()
        comps = sorted(set(cls) - {cfg.active})
        ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any()
                       for t in trial])
        W = comparator_mix(trial, cls, cfg.active, comps)
        p_own = np.array([truth[f"expected_{c}"].to_numpy()[i] for i, c in enumerate(cls)])
        NX = ndf[["trial", "treatment"] + feats].assign(trial=lambda d: "new:" + d["trial"].astype(str))
        ncls = ndf["treatment"].astype(str).to_numpy()
        ntrial = ndf["trial"].astype(str).to_numpy()
        ncomps = sorted(set(ncls) - {cfg.active})
        nok = np.array([len(set(ncls[ntrial == t]) - {cfg.active}) > 0 and (ncls[ntrial == t] == cfg.active).any()
                        for t in ntrial])
        nW = comparator_mix(ntrial, ncls, cfg.active, ncomps)
        # selection as bench_learners / train (5 trial-grouped folds)
        t0 = time.time()
        tcodes = pd.factorize(df["trial"])[0]
        has = np.array([ok[tcodes == j].any() for j in range(tcodes.max() + 1)])
        labels = pd.factorize(df["trial"])[1]
        folds = [[labels[j] for j in f] for f in trial_folds(tcodes, has, 5, seed)]
        factories = {n: (lambda n=n: make_member(n, otype, cfg, seed, n_boot=0)) for n in MEMBERS}
        cv = run_iecv(X.assign(_y=y), "_y", factories, otype, cfg.active, metrics=False, groups=folds, workers=1)
        w = {a: v for a, v in stacking_from_predictions(cv.predictions, otype).items() if v > 1e-6}
        if not heterogeneity_gate(cv.predictions, otype, seed=seed)["keep_stack"]:
            w = {"constant": 1.0}
        need = sorted(set(diag) | set(w))
        fitted = {n: member(n, otype, cfg, seed, make_member, boot_trees=n_boot_tree, boot_linear=n_boot_lin).fit(X, y)
                  for n in need}
        XK, yK = replicated(X, p_own, k, seed + 777)
        lim_need = need if limits else []
        limit = {n: member(n, otype, cfg, seed, make_member, n_boot=0).fit(XK, yK) for n in lim_need}
        # the participants' complete covariates (before missingness) and the limit fitted on them
        comp_df = simulate_dataset(scenario, seed=seed).complete.astype({"trial": str, "participant": str})
        full = df[["trial", "participant"]].astype(str).merge(comp_df, on=["trial", "participant"], how="left")
        Xc = X.copy()
        for f in feats:
            if f in full:
                Xc[f] = X[f].where(X[f].notna(), full[f].to_numpy())
        XcK, _ = replicated(Xc, p_own, k, seed + 777)
        limit_c = {n: member(n, otype, cfg, seed, make_member, n_boot=0).fit(XcK, yK) for n in lim_need}
        models = {n: fitted[n] for n in diag}
        models["selected"] = StackedLearner.from_fitted([fitted[a] for a in w], list(w.values()), list(w))
        if limits:
            lim_models = {n: limit[n] for n in diag}
            lim_models["selected"] = StackedLearner.from_fitted([limit[a] for a in w], list(w.values()), list(w))
            limc_models = {n: limit_c[n] for n in diag}
            limc_models["selected"] = StackedLearner.from_fitted([limit_c[a] for a in w], list(w.values()), list(w))
        secs = time.time() - t0
        rows = []
        for name, m in models.items():
            p = m.predict_interval(X)
            nan = pd.DataFrame({f"benefit_vs_{c}": np.full(len(X), np.nan) for c in comps})
            pK = lim_models[name].predict(X) if limits else nan
            pKx = lim_models[name].predict(Xc) if limits else nan  # the limit at the complete covariates
            pKc = limc_models[name].predict(Xc) if limits else nan  # the complete-data limit there
            L = as_learner(m.to_export())
            F = feature_matrix(L.features, X)
            se_est, v_miss = estimation_se(L, F), missing_variance(L, F)
            pn = m.predict_interval(NX)
            for i, c in enumerate(comps):
                msk = ok & (W[:, i] > 0)
                if f"benefit_vs_{c}_ci_low" not in p or not msk.any():
                    continue
                tc = truth[f"benefit_vs_{c}"].to_numpy()[msk]
                rows.append(pd.DataFrame({
                    "scenario": scenario, "seed": seed, "learner": name, "set": "fitted", "comparator": c,
                    "trial": trial[msk], "b": p[f"benefit_vs_{c}"].to_numpy()[msk],
                    "b_limit": pK[f"benefit_vs_{c}"].to_numpy()[msk], "t_avg": tc - recols[c][msk], "t_own": tc,
                    "b_limit_at_complete": pKx[f"benefit_vs_{c}"].to_numpy()[msk],
                    "b_limit_complete": pKc[f"benefit_vs_{c}"].to_numpy()[msk],
                    "se_est": se_est[c][msk], "sd_missing": np.sqrt(v_miss[c][msk]),
                    "se": (p[f"benefit_vs_{c}_ci_high"] - p[f"benefit_vs_{c}_ci_low"]).to_numpy()[msk] / (2 * Z),
                    "p_exercise": p[f"expected_{cfg.active}"].to_numpy()[msk],
                    "p_comparator": p[f"expected_{c}"].to_numpy()[msk],
                    "baseline_pain": df["baseline_pain"].to_numpy(float)[msk],
                    "n_missing": df[feats].isna().sum(axis=1).to_numpy()[msk],
                    "tau_rd": m.export_["interval"]["tau"].get(c, 0.0), "weights": str(w), "seconds": secs}))
            for i, c in enumerate(ncomps):
                msk = nok & (nW[:, i] > 0)
                if f"benefit_vs_{c}_pi_low" not in pn or not msk.any():
                    continue
                tc = ntruth[f"benefit_vs_{c}"].to_numpy()[msk]
                rows.append(pd.DataFrame({
                    "scenario": scenario, "seed": seed, "learner": name, "set": "new", "comparator": c,
                    "trial": ntrial[msk], "b": pn[f"benefit_vs_{c}"].to_numpy()[msk], "b_limit": np.nan,
                    "t_avg": tc - nrecols[c][msk], "t_own": tc,
                    "se": (pn[f"benefit_vs_{c}_ci_high"] - pn[f"benefit_vs_{c}_ci_low"]).to_numpy()[msk] / (2 * Z),
                    "pi_low": pn[f"benefit_vs_{c}_pi_low"].to_numpy()[msk],
                    "pi_high": pn[f"benefit_vs_{c}_pi_high"].to_numpy()[msk],
                    "p_exercise": pn[f"expected_{cfg.active}"].to_numpy()[msk],
                    "p_comparator": pn[f"expected_{c}"].to_numpy()[msk],
                    "baseline_pain": ndf["baseline_pain"].to_numpy(float)[msk],
                    "n_missing": ndf[feats].isna().sum(axis=1).to_numpy()[msk],
                    "tau_rd": m.export_["interval"]["tau"].get(c, 0.0),
                    "weights": str(w), "seconds": secs}))
    return pd.concat(rows, ignore_index=True)


def summary(d: pd.DataFrame) -> pd.DataFrame:
    """Per scenario x learner x set: RMS error vs the estimand, its estimation / misfit split, mean
    SE, z-RMS and coverage (CI vs the average trial; PI vs the new trial's own truth)."""
    out = []
    for (s, lr, st), g in d.groupby(["scenario", "learner", "set"]):
        err = g["b"] - g["t_avg"]
        r = {"scenario": s, "learner": lr, "set": st, "n": len(g), "rms_err": np.sqrt(np.mean(err ** 2)),
             "bias": err.mean(), "mean_se": g["se"].mean(), "z_rms": np.sqrt(np.mean((err / g["se"]) ** 2)),
             "ci_cover_avg": np.mean(np.abs(err) <= Z * g["se"])}
        if st == "fitted":
            r.update({"rms_est": np.sqrt(np.mean((g["b"] - g["b_limit"]) ** 2)), "mean_se_est": g["se_est"].mean(),
                      "rms_missing": np.sqrt(np.mean((g["b_limit"] - g["b_limit_at_complete"]) ** 2)),
                      "mean_sd_missing": g["sd_missing"].mean(),
                      "rms_attenuation": np.sqrt(np.mean((g["b_limit_at_complete"] - g["b_limit_complete"]) ** 2)),
                      "rms_misfit": np.sqrt(np.mean((g["b_limit_complete"] - g["t_avg"]) ** 2)),
                      "rms_fit": np.sqrt(np.mean((g["b_limit"] - g["t_avg"]) ** 2)),
                      "z_rms_est": np.sqrt(np.mean(((g["b"] - g["b_limit"]) / g["se_est"]) ** 2)),
                      "z_rms_missing": np.sqrt(np.mean(((g["b_limit"] - g["b_limit_at_complete"])
                                                        / g["sd_missing"].clip(lower=1e-9)) ** 2)),
                      "ci_cover_limit": np.mean(np.abs(g["b"] - g["b_limit"]) <= Z * g["se"])})
        else:
            r.update({"pi_cover": np.mean((g["t_own"] >= g["pi_low"]) & (g["t_own"] <= g["pi_high"])),
                      "rms_trial_dev": np.sqrt(np.mean((g["t_own"] - g["t_avg"]) ** 2)),
                      "mean_tau_rd": g["tau_rd"].mean()})
        out.append(r)
    return pd.DataFrame(out)


def by_fifth(d: pd.DataFrame, col: str) -> pd.DataFrame:
    g = d[d["set"] == "fitted"].copy()
    g["fifth"] = g.groupby(["scenario", "learner"])[col].transform(lambda v: pd.qcut(v, 5, labels=False, duplicates="drop"))
    g["err"] = g["b"] - g["t_avg"]
    g["fit"] = g["b_limit"] - g["t_avg"]
    g["hit"] = np.abs(g["err"]) <= Z * g["se"]
    return g.groupby(["scenario", "learner", "fifth"]).agg(
        mean_x=(col, "mean"), bias=("err", "mean"), rms_err=("err", lambda e: np.sqrt(np.mean(e ** 2))),
        rms_fit=("fit", lambda e: np.sqrt(np.mean(e ** 2))), mean_se=("se", "mean"), cover=("hit", "mean")).reset_index()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="*", default=["strong", "hayden2020"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--diag", nargs="*", default=list(DIAG), choices=list(DIAG) + list(VARIANTS))
    ap.add_argument("--no-limits", action="store_true", help="skip the large-sample limit fits")
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--n-boot-trees", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "binary_coverage.csv"),
                    help="summary table (one row per scenario x learner x set); by-fifth tables beside it")
    ap.add_argument("--rows", default=None, help="also write the per-participant rows here (large)")
    a = ap.parse_args(argv)
    parts = []
    for s in a.scenarios:
        for seed in a.seeds:
            t0 = time.time()
            parts.append(one(s, seed, a.k, a.n_boot, a.n_boot_trees, tuple(a.diag), not a.no_limits))
            print(f"{s} seed {seed}: {time.time() - t0:.0f} s", flush=True)
            d = pd.concat(parts, ignore_index=True)
            if a.rows:
                d.to_csv(a.rows, index=False)
    pd.set_option("display.width", 250)
    summ = summary(d)
    summ.to_csv(a.out, index=False)
    print(summ.round(3).to_string(index=False))
    stem = str(Path(a.out).with_suffix(""))
    for col in ("p_exercise", "baseline_pain"):
        f = by_fifth(d, col)
        f.to_csv(f"{stem}_by_{col}.csv", index=False)
        print(f"\nby fifth of {col}")
        print(f.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
