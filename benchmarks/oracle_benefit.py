"""Oracle bounds for the benefit learners' root PEHE (issue 23): what any learner can reach at all.

Used by ``benchmarks/bench_learners.py`` (rows ``oracle_*`` beside the learners; ``--oracle-only`` for
the oracle rows alone, no fits). ``python benchmarks/oracle_benefit.py CSV...`` prints the margin table
(``margin_table``) from bench_learners outputs of the same scenarios and seeds (the data are a
deterministic function of scenario and seed, so an oracle-only run pairs with an earlier run's
learners and peers).

Truth, per participant of a comparator trial (benefit of exercise vs their own trial's comparator
mix, positive = exercise better): ``t_mix`` = the trial-specific truth (the fitted-participant and
new-trial PEHE's target), ``t_avg`` = ``t_mix`` minus the trial's own random class effects (``A u_t,c``):
the true conditional-average benefit of the (complete, latent) covariates in an average trial.

Oracle predictors (none of them is a learner one could ship; they bound what learners can do):

- ``oracle_avg``: ``t_avg`` itself. Its PEHE against ``t_mix`` is the *irreducible trial-effect part*:
  no function of the patient's covariates can predict a new trial's own effect, so on new trials no
  learner of x beats it (up to the luck of a finite sample); on fitted participants a plain learner
  (no trial deviation) cannot beat it either.
- ``oracle_avg_in_trial``: ``t_avg`` plus an empirical-Bayes estimate of each fitted trial's own
  effect from that trial's outcomes, given every participant's exact expected outcome (the contrast
  of the arm-mean outcome noise is the only error; shrunk with the true between-trial variance). The
  bound for the *in-trial* estimator on fitted participants if the covariates were complete.
- ``oracle_observed``: the best learner of the *observed* features with noise-free labels: fitted on a
  large independent sample of the training design (``--oracle-scale`` times the data, default 10;
  seed + 20000) to its ``t_avg``: least squares on an additive spline basis (``oracle_additive``: every
  feature linear + 3-knot restricted cubic spline, mean-imputed, missing indicators, comparator
  classes) plus LightGBM with native missing values on the residual. It adds to ``oracle_avg`` what
  the missing covariates cost even with a perfect outcome signal and unlimited data (an estimate of
  the observed-data Bayes error from above: its own approximation error is included; 3x -> 10x -> 30x
  the data changed it by < 3% then < 0.5%). ``oracle_observed_in_trial``: the same plus the in-trial
  oracle's estimate of each fitted trial's deviation from it (the bound of the in-trial estimator).
- ``oracle_additive``: how much of the truth an additive spline model (no interactions) represents
  with noise-free labels.

Error decomposition of a learner's prediction ``b`` (new trials: ``b`` is independent of the new trial's
own effect, so the cross term is ~0): PEHE^2(b, t_mix) = PEHE^2(b, t_avg) + PEHE^2(t_avg, t_mix) + 2 cov,
i.e. learnable part (``pehe_avg_trial`` / ``pehe_avg_new``) and irreducible part (``oracle_avg``'s PEHE).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def rmse(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def in_trial_oracle(b, t_mix, noise, cls, trial, ok, Wmix, comps: list, active: str) -> np.ndarray:
    """``b`` plus an empirical-Bayes estimate of each fitted trial's own deviation from it, as an
    oracle that knows every participant's expected outcome can estimate it from the trial's outcomes.

    The deviation of trial t, ``D_t`` = mean over its comparator-trial participants of ``t_mix - b``
    (constant within a trial for ``b`` = the average-trial truth: the trial's own class effects mixed
    over its comparators), is observed through the trial's outcomes with the error of the arm-mean
    contrast of the outcome noise ``noise = y - expected outcome in the own trial``:
    ``e_t = sum_c W_c mean_c(noise) - mean_active(noise)``, variance ``sum_c W_c^2 s_c^2/n_c + s_a^2/n_a``.
    Shrunk by ``v / (v + var)``, ``v`` = the variance of ``D_t`` across the trials (the truth's)."""
    b = np.asarray(b, float)
    out = b.copy()
    idx = np.flatnonzero(ok)
    trials = [t for t in np.unique(trial[ok])]
    D = {t: float(np.mean((t_mix - b)[idx[trial[idx] == t]])) for t in trials}
    v = float(np.var(list(D.values()), ddof=1)) if len(D) > 1 else 0.0
    for t in trials:
        mt = trial == t
        a = mt & (cls == active)
        w = Wmix[idx[trial[idx] == t][0]]
        e = -float(noise[a].mean())
        var = float(noise[a].var(ddof=1)) / a.sum() if a.sum() > 1 else 0.0
        for i, c in enumerate(comps):
            mc = mt & (cls == c)
            if w[i] <= 0 or not mc.any():
                continue
            e += w[i] * float(noise[mc].mean())
            var += w[i] ** 2 * (float(noise[mc].var(ddof=1)) / mc.sum() if mc.sum() > 1 else 0.0)
        out[mt] = b[mt] + (D[t] + e) * v / (v + var) if v + var > 0 else b[mt]
    return out


def design(d: pd.DataFrame, feats: list, comps: list, means=None, ind_cols=None):
    """Mean-imputed features, missing indicators (columns that vary in the training data) and the
    trial's comparator classes (one-hot); ``means``/``ind_cols`` from the training data when
    building new data. Shared with the peers of ``bench_learners.py`` (``peer_design``)."""
    X = d[feats].astype(float)
    means = X.mean().fillna(0.0) if means is None else means
    ind = X.isna().astype(float).add_suffix("_missing")
    if ind_cols is None:
        ind_cols = list(ind.columns[ind.std() > 0])
    ind = ind.reindex(columns=ind_cols, fill_value=0.0)
    Xi = X.fillna(means).fillna(0.0)
    tcls = {t: set(g["treatment"]) - {"exercise"} for t, g in d.groupby("trial")}
    C = pd.DataFrame({f"cmp_{c}": d["trial"].map(lambda t: float(c in tcls[t])) for c in comps}, index=d.index)
    return Xi, ind, C, means, ind_cols


def _additive(Xi: pd.DataFrame, knots: dict | None = None, missing: pd.DataFrame | None = None):
    from predict.linear import rcs

    cols, knots = [Xi.to_numpy()], knots if knots is not None else {}
    for f in Xi.columns:
        x = Xi[f].to_numpy()
        if f not in knots:
            obs = x[~missing[f].to_numpy()] if missing is not None else x
            k = np.quantile(obs, [0.1, 0.5, 0.9]) if np.unique(obs).size > 5 else None
            knots[f] = k if k is not None and np.all(np.diff(k) > 1e-9) else None
        if knots[f] is not None:
            cols.append(rcs(x, knots[f]))
    return np.column_stack(cols), knots


def observed_oracles(big: tuple, feats: list, comps: list, frames: list, seed: int) -> dict:
    """{name: [prediction for each frame in ``frames``]} of the observed-data oracles trained on the
    large noise-free sample ``big`` = (frame, average-trial truth, comparator-trial mask):
    ``oracle_additive`` (least squares on an additive spline basis + missing indicators + classes) and
    ``oracle_observed`` (LightGBM with native missing values started from the additive fit)."""
    from lightgbm import LGBMRegressor

    bdf, bt, bok = big
    d = bdf.loc[bok].reset_index(drop=True)
    t = np.asarray(bt, float)[bok]
    Xi, ind, C, means, ind_cols = design(d, feats, comps)
    A, knots = _additive(Xi, None, d[feats].isna())
    A = np.column_stack([A, ind.to_numpy(), C.to_numpy(), np.ones(len(d))])
    beta = np.linalg.lstsq(A, t, rcond=None)[0]
    G = pd.concat([d[feats].astype(float), C], axis=1).to_numpy()
    params = dict(n_estimators=800, learning_rate=0.03, num_leaves=31, min_child_samples=20, subsample=0.8,
                  subsample_freq=1, reg_lambda=1.0, n_jobs=1, verbose=-1, random_state=seed)
    gbm = LGBMRegressor(**params).fit(G, t - A @ beta)
    out = {"oracle_additive": [], "oracle_observed": []}
    for f in frames:
        fXi, find, fC, _, _ = design(f, feats, comps, means, ind_cols)
        fA = np.column_stack([_additive(fXi, knots)[0], find.to_numpy(), fC.to_numpy(), np.ones(len(f))])
        lin = fA @ beta
        out["oracle_additive"].append(lin)
        out["oracle_observed"].append(lin + gbm.predict(pd.concat([f[feats].astype(float), fC], axis=1).to_numpy()))
    return out


def oracle_rows(base: dict, y, cls, trial, active, expected_own, recols, Wmix, comps, t_mix, t_avg, ok,
                nt_mix, nt_avg, nok, df, new_df, feats, seed, within_sd, big=None) -> list:
    """Rows (as bench_learners' rows: ``pehe``, ``pehe_avg_trial``, ``pehe_new``, ``pehe_avg_new``,
    ``spread``) of the oracle predictors; ``base`` = the row's scenario/seed keys."""
    rows = []
    noise = np.asarray(y, float) - np.asarray(expected_own, float)
    preds = {"oracle_avg": (t_avg[ok], nt_avg[nok]),
             "oracle_avg_in_trial": (in_trial_oracle(t_avg, t_mix, noise, cls, trial, ok, Wmix, comps, active)[ok],
                                     nt_avg[nok])}
    if big is not None:
        for k, (b, bn) in observed_oracles(big, feats, comps, [df, new_df.loc[nok]], seed).items():
            preds[k] = (b[ok], bn)
            if k == "oracle_observed":
                preds[k + "_in_trial"] = (in_trial_oracle(b, t_mix, noise, cls, trial, ok, Wmix, comps, active)[ok], bn)
    for name, (b, bn) in preds.items():
        rows.append({**base, "learner": name, "pehe": rmse(b, t_mix[ok]), "pehe_avg_trial": rmse(b, t_avg[ok]),
                     "pehe_new": rmse(bn, nt_mix[nok]), "pehe_avg_new": rmse(bn, nt_avg[nok]),
                     "bias": float(np.mean(b - t_mix[ok])), "bias_new": float(np.mean(bn - nt_mix[nok])),
                     "spread": within_sd(b, trial[ok]), "sd_true_benefit": float(np.std(t_mix[ok])),
                     "n": int(ok.sum())})
    return rows


PEERS = ("econml_dr", "econml_cf", "causalml_x")


def margin_table(res: pd.DataFrame, ours: str = "selected") -> pd.DataFrame:
    """Per scenario and target: best peer (lowest seed-mean PEHE), ours, the oracle bound, and the
    ratios ``ours / peer - 1`` (achieved) and ``bound / peer - 1`` (the most any learner could reach).

    Targets: ``fitted in-trial`` (ours = selected_in_trial; bound = oracle_observed_in_trial),
    ``fitted plain`` (selected; oracle_observed), ``new`` (selected; the lower of oracle_observed and,
    where a new trial measures every covariate, oracle_avg). The learnable part of ours =
    sqrt(PEHE^2 - irreducible^2), irreducible = oracle_avg's PEHE (the trial's own effect)."""
    m = res.groupby(["scenario", "learner"])[["pehe", "pehe_new"]].mean()
    out = []
    for sc in res["scenario"].unique():
        g = m.loc[sc]
        peers = g.loc[[p for p in PEERS if p in g.index]]
        if peers.empty or "oracle_avg" not in g.index:
            continue
        for target, col, me, bound in (("fitted in-trial", "pehe", f"{ours}_in_trial", "oracle_observed_in_trial"),
                                       ("fitted plain", "pehe", ours, "oracle_observed"),
                                       ("new", "pehe_new", ours, "oracle_observed")):
            if me not in g.index:
                continue
            bp = peers[col].idxmin()
            peer = float(peers.loc[bp, col])
            b = float(g.loc[bound, col])
            if target == "new" and ">" in sc:  # the shifted trial measures every covariate (edge_trial)
                b = min(b, float(g.loc["oracle_avg", col]))
            irr = float(g.loc["oracle_avg", col]) if target != "fitted in-trial" else float(g.loc["oracle_avg_in_trial", col])
            o = float(g.loc[me, col])
            out.append({"scenario": sc, "target": target, "best_peer": bp, "peer": peer, "target_0.8": 0.8 * peer,
                        "ours": o, "bound": b, "achieved": o / peer - 1, "reachable": b / peer - 1,
                        "irreducible": irr, "ours_learnable": float(np.sqrt(max(o ** 2 - irr ** 2, 0.0))),
                        "bound_learnable": float(np.sqrt(max(b ** 2 - irr ** 2, 0.0)))})
    return pd.DataFrame(out)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="oracle margin table from bench_learners CSVs (same scenarios and seeds)")
    ap.add_argument("csv", nargs="+", help="bench_learners outputs (learners + peers, and oracle rows)")
    ap.add_argument("--ours", default="selected", help="our learner's row name (its in-trial row: + '_in_trial')")
    a = ap.parse_args(argv)
    res = pd.concat([pd.read_csv(f) for f in a.csv], ignore_index=True)
    res = res.drop_duplicates(["scenario", "seed", "learner"], keep="last")
    t = margin_table(res, a.ours)
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(t.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
