"""Interactions between two modifiers for the effect model: screened product columns with their own
cross-validated prior SD.

The effect model's modifier basis is additive over features (linear, spline and one-hot columns), so
an effect that depends on a *combination* of two modifiers (heavy physical work and a high BMI
together) is out of its reach. This adds product columns ``(x_a - o_a)(x_b - o_b)`` (origins = the
features' training means; the runtime's basis kind ``product``) for a few pairs of modifier
features:

1. **Screening** (stage 1): the effect model without products is fitted at its cross-validated
   prior SD ``s``; every pair of continuous or binary modifier features is scored by the score
   statistic for adding its treatment interaction, ``(I'r)^2 / I'I`` with ``I`` = active x the
   within-trial-centred standardised product and ``r`` the stage-1 residuals (the Lagrange-multiplier
   test of the column at gamma = 0, up to the correlation with the columns already in). The
   ``n_pairs`` best pairs are kept.
2. **Prior SD of the products** ``s_p``, separate from ``s``, chosen from a grid *including 0* (the
   effect model without products) by the same trial-grouped cross-validation of the R-loss as ``s``.
   Honest: inside every fold the pairs are screened on that fold's training trials only (the held-out
   outcomes never choose their own pairs), and every candidate is scored on the same held-out trials.
3. The final fit screens the pairs on all the data and uses ``s_p``.

A prior SD ``s_p`` on a product column while the other columns keep ``s`` is the common penalty of
``s`` on the column multiplied by ``w = s_p / s`` (as :mod:`training.learners.adaptive` does for
feature weights), so ``w`` is folded into the product columns' ``scale`` and the model's fit,
bootstrap and shrinkage-bias covariance are the effect model's own.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from training.learners.cv_loss import held_out_r_loss, pooled, training_rows
from training.learners.linear import StructuredFit, design, prior_lambda, standardise, trial_centre

N_PAIRS = 3
GAUSSIAN_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # prior SD of a standardised product interaction, points
LOGIT_GRID = (0.0, 0.03, 0.06, 0.12, 0.25, 0.5)


def product_columns(d, mods: list) -> list:
    """Standardised product columns (basis kind ``product``) for every pair of the continuous or
    binary modifier features ``mods`` (names), origins at the features' means and standardised on
    the conditional-mean matrix ``d.Fi``; pairs whose product does not vary are left out."""
    names, types = d.spec["names"], d.spec["types"]
    feats = [names.index(m) for m in mods if types[names.index(m)] in ("continuous", "binary")]
    return standardise([{"feature": a, "feature2": b, "kind": "product", "origin": float(d.Fi[:, a].mean()),
                         "origin2": float(d.Fi[:, b].mean()), "loc": 0.0, "scale": 1.0}
                        for a, b in itertools.combinations(sorted(set(feats)), 2)], d.Fi)


def _fit(d, rows, P, M, comps, lam_main, lam):
    _, codes = np.unique(d.trial[rows], return_inverse=True)
    Mr = M[rows]
    f = StructuredFit(d.family, lam_main, lam).fit(d.y[rows], codes, d.cls[rows], d.treat[rows], comps, P[rows],
                                                    trial_centre(Mr, codes))
    return f, codes, Mr.mean(axis=0)


def screen(d, rows, fit, codes, Z: np.ndarray, n_pairs: int) -> np.ndarray:
    """Indices of the ``n_pairs`` columns of Z with the largest score statistic (module docstring)
    on ``rows``, from the stage-1 ``fit`` on those rows (trial codes ``codes``)."""
    mu = fit.eta_ if d.family == "gaussian" else 1.0 / (1.0 + np.exp(-fit.eta_))
    r = d.y[rows] - mu
    if d.family != "gaussian":
        w = mu * (1 - mu)
    else:
        w = np.ones(r.size)
    inter = trial_centre(Z[rows], codes) * d.treat[rows][:, None]
    num = (inter.T @ r) ** 2
    den = (inter * inter * w[:, None]).sum(axis=0)
    stat = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)
    return np.argsort(-stat, kind="stable")[:n_pairs]


def _design(M, Zk, sd, sp):
    """(modifier matrix, reference prior SD) of main columns at SD ``sd`` and products at ``sp``
    under one penalty: each block scaled by its SD over the reference SD (a block at SD 0 dropped)."""
    ref = sd if sd > 0 else sp
    parts = ([M * (sd / ref)] if sd > 0 else []) + ([Zk * (sp / ref)] if sp > 0 else [])
    return (np.hstack(parts) if parts else M[:, :0]), ref


def cv_pairs(d, P, M, Z, sd, lam_main, sigma2, prog, folds, grid, n_pairs) -> pd.DataFrame:
    """Trial-grouped CV R-loss of the product prior SDs ``grid`` (0 = no products), with the pairs
    screened inside every fold on its training trials; main modifiers at ``sd`` throughout."""
    fam = d.family
    losses = {sp: [] for sp in grid}
    for te in folds:
        comps, rows = training_rows(d, te)
        f1, codes, Mbar = _fit(d, rows, P, M if sd > 0 else M[:, :0], comps, lam_main,
                               prior_lambda(fam, sigma2, sd))
        keep = screen(d, rows, f1, codes, Z, n_pairs)
        for sp in grid:
            if sp == 0:
                theta, Mc = f1.theta_, (M[te] if sd > 0 else M[te][:, :0]) - Mbar
            else:
                Mf, ref = _design(M, Z[:, keep], sd, sp)
                f2, _, Mb = _fit(d, rows, P, Mf, comps, lam_main, prior_lambda(fam, sigma2, ref))
                theta, Mc = f2.theta_, Mf[te] - Mb
            losses[sp].append(held_out_r_loss(d, te, theta, P[te], Mc, comps, prog))
    return pd.DataFrame([{"product_sd": sp, "r_loss": pooled(v)} for sp, v in losses.items()])


def select_pairs(d, P, M, mods, sd, lam_main, sigma2, prog, folds, grid=None, n_pairs: int = N_PAIRS, spread=None):
    """(product columns with their prior SD folded into ``scale``, the reference prior SD of the
    whole modifier block, whether the main modifier columns stay, CV table, chosen product SD):
    no columns when the CV chooses ``s_p = 0``. ``M``: the main modifier basis (conditional-mean
    matrix) at prior SD ``sd`` (0: the constant-effect model); ``spread``: the missing values'
    conditional distribution when the products are to be their expectations (``training.learners.linear.design``)."""
    fam = d.family
    grid = tuple(grid or (GAUSSIAN_GRID if fam == "gaussian" else LOGIT_GRID))
    if 0.0 not in grid:
        grid = (0.0,) + grid
    cols = product_columns(d, mods)
    if not cols:
        return [], sd, True, None, 0.0
    Z = design(cols, d.Fi, spread)
    table = cv_pairs(d, P, M, Z, sd, lam_main, sigma2, prog, folds, grid, n_pairs)
    sp = float(table.loc[table["r_loss"].idxmin(), "product_sd"])
    if sp == 0.0:
        return [], sd, True, table, 0.0
    rows = np.ones(d.y.size, bool)
    f1, codes, _ = _fit(d, rows, P, M if sd > 0 else M[:, :0], d.comps, lam_main, prior_lambda(fam, sigma2, sd))
    keep = screen(d, rows, f1, codes, Z, n_pairs)
    ref = sd if sd > 0 else sp
    chosen = [{**cols[k], "scale": cols[k]["scale"] * ref / sp} for k in keep]
    return chosen, ref, sd > 0, table, sp
