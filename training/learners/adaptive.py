"""Adaptive (feature-wise) shrinkage of the effect model's modifiers.

The effect model puts one N(0, s^2) prior on every standardised interaction column (one ridge
penalty, ``s`` chosen by trial-grouped cross-validation of the R-loss). With many candidate
modifiers of which few matter, one ``s`` is a compromise: large enough for the real modifiers'
shapes (e.g. a plateau's spline terms), it lets every noise modifier in too; small enough to silence
them, it flattens the real ones. Adaptive ridge (a two-stage empirical-Bayes reading of the adaptive
lasso, Zou 2006; Grandvalet 1998) gives each *feature* its own prior SD

    s_f = k * s * (g_f / rms(g))^p,   g_f = RMS of the feature's stage-1 interaction coefficients,

where stage 1 is the fit at the cross-validated common ``s`` (all of a feature's basis columns —
linear, spline, one-hot levels — share one ``s_f``, so a shape is kept or shrunk as a whole).

Honest selection: the candidates (k, p) compete with the common-``s`` fit on the *same* held-out
trials, and inside every fold the stage-1 weights come from that fold's training trials only (the
held-out outcomes never choose their own weights). The adaptive fit is used only if it lowers the
cross-validated R-loss.

Exported within the existing effect-model format: a prior SD ``s_f`` on a column equals the common
penalty on the column multiplied by ``w_f = s_f / s``, so the chosen weights are folded into the
basis columns' ``scale`` (``value = w_f (v - loc) / scale``) and features with ``w_f = 0`` drop out.
The runtime sees an ordinary linear modifier block.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.learners.cv_loss import held_out_r_loss, pooled, training_rows
from training.learners.linear import StructuredFit, prior_lambda, trial_centre

MULTIPLIERS = (0.5, 1.0, 2.0)
POWERS = (0.5, 1.0)
MIN_WEIGHT = 1e-3  # a feature whose relative prior SD falls below this is dropped


def feature_weights(gamma: np.ndarray, col_feature: np.ndarray, power: float) -> np.ndarray:
    """Per-column weight ``(g_f / rms(g))^p`` from stage-1 coefficients ``gamma`` (standardised
    columns); ``g_f`` = RMS of feature f's columns; features count once each in the normalisation.
    Weights below ``MIN_WEIGHT`` are set to 0."""
    gamma = np.asarray(gamma, float)
    col_feature = np.asarray(col_feature)
    feats = np.unique(col_feature)
    g = {f: float(np.sqrt(np.mean(gamma[col_feature == f] ** 2))) for f in feats}
    rms = float(np.sqrt(np.mean(np.square(list(g.values())))))
    if rms <= 0:
        return np.zeros(gamma.size)
    w = np.array([(g[f] / rms) ** power for f in col_feature])
    return np.where(w < MIN_WEIGHT, 0.0, w)


def _stage(d, P, M, rows, comps, lam_main, lam):
    _, codes = np.unique(d.trial[rows], return_inverse=True)
    Mr = M[rows]
    f = StructuredFit(d.family, lam_main, lam).fit(d.y[rows], codes, d.cls[rows], d.treat[rows], comps, P[rows],
                                                    trial_centre(Mr, codes))
    return f, Mr.mean(axis=0)


def cv_adaptive(d, P: np.ndarray, M: np.ndarray, col_feature: np.ndarray, sd: float, lam_main: float, sigma2: float,
                prog: np.ndarray, folds: list, multipliers=MULTIPLIERS, powers=POWERS) -> pd.DataFrame:
    """Trial-grouped CV R-loss of the common-``sd`` fit (row ``power`` = 0) and of every adaptive
    candidate (``multiplier`` k, ``power`` p), on the same folds; weights from each fold's training
    trials. Columns: multiplier, power, r_loss."""
    fam = d.family
    lam = prior_lambda(fam, sigma2, sd)
    cands = [(1.0, 0.0)] + [(k, p) for p in powers for k in multipliers]
    losses = {c: [] for c in cands}
    for te in folds:
        comps_tr, rows = training_rows(d, te)
        f1, Mbar = _stage(d, P, M, rows, comps_tr, lam_main, lam)
        C = len(comps_tr)
        gamma = f1.theta_[1 + C + P.shape[1]:]
        for k, p in cands:
            if p == 0.0:
                theta, w, Mb = f1.theta_, np.ones(M.shape[1]), Mbar
            else:
                w = feature_weights(gamma, col_feature, p)
                f2, Mb = _stage(d, P, M * w, rows, comps_tr, lam_main, prior_lambda(fam, sigma2, k * sd))
                theta = f2.theta_
            losses[(k, p)].append(held_out_r_loss(d, te, theta, P[te], M[te] * w - Mb, comps_tr, prog))
    return pd.DataFrame([{"multiplier": k, "power": p, "r_loss": pooled(v)} for (k, p), v in losses.items()])


def adaptive_weights(d, P, M, col_feature, sd, lam_main, sigma2, prog, folds, always: bool = False, **kw):
    """(column weights or None, chosen prior SD, CV table): the adaptive candidate with the lowest
    CV R-loss if it beats the common-``sd`` fit on the same folds (with ``always``: the best adaptive
    candidate regardless), with its weights from a stage-1 fit on all the data; else (None, sd, table)."""
    table = cv_adaptive(d, P, M, col_feature, sd, lam_main, sigma2, prog, folds, **kw)
    pool = table[table["power"] > 0] if always else table
    best = pool.loc[pool["r_loss"].idxmin()]
    if best["power"] == 0.0:
        return None, sd, table
    C = len(d.comps)
    f1 = StructuredFit(d.family, lam_main, prior_lambda(d.family, sigma2, sd)).fit(
        d.y, d.trial, d.cls, d.treat, d.comps, P, trial_centre(M, d.trial))
    w = feature_weights(f1.theta_[1 + C + P.shape[1]:], col_feature, float(best["power"]))
    return w, float(best["multiplier"]) * sd, table
