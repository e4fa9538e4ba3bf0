"""Where does a learner's 95% CI miss its estimand (the benefit in an average trial)?

For one scenario x seed: fit the named learners as ``train`` does (``training.train.make_learner``;
bootstrap sizes as ``bench_learners``), predict with intervals on the training participants of
comparator trials and, against the simulator's average-trial truth (``bench_learners.load_task``),
write per participant x comparator class: prediction, truth, SE (from the CI), the standardised error
z = (prediction - truth) / SE, the features and whether any input is missing. For linear learners also
``coef_term``: tr(S V), what their coefficients' uncertainty adds to the expected variance of the
benefit over the draws of the patient's missing inputs (``training.learners.missing_allowance.
coefficient_draw_variance``; not in the served SE), and ``hit_post``: coverage with it added.
``--report`` then summarises coverage, mean z (bias) and SD of z (variance) overall and by quintile of
chosen features / of the prediction / by trial, over the given CSVs. Diagnosis only (issue 23, i23k).

Usage::

    python benchmarks/diag_ci_coverage.py --scenario curvilinear --seed 1 --learners effect_model x_learner \
        --out /tmp/diag_curv_1.csv
    python benchmarks/diag_ci_coverage.py --report /tmp/diag_curv_*.csv --by baseline_pain episode_months

A learner name may carry ``:no_shrinkage_bias`` (linear learners: the trial-cluster bootstrap covariance
without the ridge shrinkage-bias term, to see what that term does to coverage; s12i) and ``risk_model:omitted``
(the risk model with its omitted-interaction allowance, ``training.learners.omitted_interactions``; s12v).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_participant(scenario: str, seed: int, learners: list, n_boot_lin: int = 100, n_boot_tree: int = 10,
                    outcome: str = "pain", follow_up: str = "short") -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    from benchmarks.bench_learners import load_task
    from predict.features import feature_matrix
    from training.learners.missing_allowance import coefficient_draw_variance
    from training.learners.stacking import comparator_mix
    from training.train import make_learner

    warnings.simplefilter("ignore")
    with threadpool_limits(1):
        df, truth, cfg, recols = load_task(scenario, seed, outcome, follow_up)
        otype = "continuous" if outcome != "global_recovery" else "binary"
        feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
        X = df[["trial", "treatment"] + feats]
        y = df["value"].to_numpy(float)
        cls = df["treatment"].astype(str).to_numpy()
        trial = df["trial"].astype(str).to_numpy()
        comps = sorted(set(cls) - {cfg.active})
        ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any()
                       for t in trial])
        W = comparator_mix(trial, cls, cfg.active, comps)
        miss = df[feats].isna().any(axis=1).to_numpy()
        out = []
        for name in learners:
            base, _, opt = name.partition(":")  # "effect_model:no_shrinkage_bias": the bootstrap covariance alone
            m = make_learner(base, otype, cfg, seed, boot_trees=n_boot_tree, boot_linear=n_boot_lin)
            if opt == "no_shrinkage_bias":
                m.shrinkage_bias = False
            elif opt == "omitted" and base == "risk_model":
                m.omitted_interactions = True
            elif opt:
                raise ValueError(f"unknown learner option {opt!r} (known: no_shrinkage_bias; risk_model:omitted)")
            m = m.fit(X, y)
            p = m.predict_interval(X)
            exp = m.to_export()
            coef = (coefficient_draw_variance(exp, feature_matrix(exp["features"], X)) if "linear" in exp
                    and exp.get("interval", {}).get("method") == "delta" else np.zeros(len(X)))
            for i, c in enumerate(comps):
                msk = ok & (W[:, i] > 0)
                if f"benefit_vs_{c}_se" not in p or not msk.any():
                    continue
                ta = truth[f"benefit_vs_{c}"].to_numpy()[msk] - recols[c][msk]
                b = p[f"benefit_vs_{c}"].to_numpy()[msk]
                se = p[f"benefit_vs_{c}_se"].to_numpy()[msk]
                lo, hi = p[f"benefit_vs_{c}_ci_low"].to_numpy()[msk], p[f"benefit_vs_{c}_ci_high"].to_numpy()[msk]
                out.append(pd.DataFrame({"scenario": scenario, "seed": seed, "learner": name, "comparator": c,
                                         "trial": trial[msk], "pred": b, "truth": ta, "se": se,
                                         "hit": (ta >= lo) & (ta <= hi), "z": (b - ta) / np.where(se > 0, se, np.nan),
                                         "coef_term": coef[msk],
                                         "hit_post": np.abs(b - ta) <= 1.959963984540054 * np.sqrt(se ** 2 + coef[msk]),
                                         "any_missing": miss[msk]}).join(df.loc[msk, feats].reset_index(drop=True)))
    return pd.concat(out, ignore_index=True)


def summary(d: pd.DataFrame, by: str | None = None, q: int = 5) -> pd.DataFrame:
    """Coverage, mean z (bias in SE units), SD z, mean SE and RMSE per learner (x group)."""
    keys = ["scenario", "learner"]
    if by is not None:
        d = d.assign(group=pd.qcut(d[by], q, duplicates="drop") if d[by].dtype.kind == "f" and d[by].nunique() > q
                     else d[by])
        keys.append("group")
    g = d.groupby(keys, observed=True)
    return pd.DataFrame({"n": g.size(), "coverage": g["hit"].mean(), "coverage_post": g["hit_post"].mean(),
                         "mean_z": g["z"].mean(), "sd_z": g["z"].std(), "mean_coef_term": g["coef_term"].mean(),
                         "mean_se": g["se"].mean(),
                         "rmse": g.apply(lambda x: np.sqrt(np.mean((x.pred - x.truth) ** 2))),
                         "mean_err": g.apply(lambda x: np.mean(x.pred - x.truth))}).round(3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="curvilinear")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--learners", nargs="*", default=["effect_model", "x_learner", "dr_learner"])
    ap.add_argument("--n-boot-trees", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", nargs="*", default=None, help="CSV files written by this script: summarise them")
    ap.add_argument("--by", nargs="*", default=["pred", "baseline_pain", "episode_months", "any_missing"])
    ap.add_argument("--summary-out", default=None, help="with --report: write the tables to this CSV")
    a = ap.parse_args(argv)
    if a.report:
        d = pd.concat([pd.read_csv(f) for f in a.report], ignore_index=True)
        tables = [summary(d).reset_index().assign(by="all")]
        tables += [summary(d, b).reset_index().assign(by=b) for b in a.by]
        with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 20):
            for t in tables:
                print(f"\n-- by {t['by'].iloc[0]}")
                print(t.drop(columns="by").to_string(index=False))
        if a.summary_out:
            out = pd.concat(tables, ignore_index=True)
            out["group"] = out["group"].astype(str) if "group" in out else ""
            out.to_csv(a.summary_out, index=False)
        return
    d = per_participant(a.scenario, a.seed, a.learners, n_boot_tree=a.n_boot_trees)
    d.to_csv(a.out or f"diag_ci_{a.scenario}_{a.seed}.csv", index=False)
    with pd.option_context("display.width", 200):
        print(summary(d))


if __name__ == "__main__":
    main()
