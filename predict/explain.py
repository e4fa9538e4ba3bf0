"""Explanations: per-patient contributions of each feature to a predicted benefit, in outcome units
(exact additive terms of the linear parts; LightGBM TreeSHAP of the tree parts; first-order terms
per arm for binary outcomes).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.evaluate import linear_spread, point
from predict.expected_basis import Spread, expect_columns, product_shift
from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.learner_model import EffectTreeLearner, Learner, LinearLearner, StackedLearner, TLearner, as_learner
from predict.linear import Block, Linear, basis_compiled, linear_eta, product
from predict.numeric import expit
from predict.trees import booster_contrib, tree_input


def linear_terms(lin: Linear, F: np.ndarray, spread: Spread | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per feature: the active-arm modifier term (M - center) gamma split by feature, and the
    prognostic term P beta split by feature: (n, p) each, plus the gamma-part total. ``spread``:
    the rows' missing inputs, for a part that takes the expected basis (a missing feature's columns
    then hold their expectations, and a product's covariance term is split like the product)."""
    spread = lin.spread_of(spread)
    p = F.shape[1]
    n_prog, n_mod = lin.n_prog, lin.n_mod
    theta = lin.theta
    beta = theta[len(theta) - n_mod - n_prog: len(theta) - n_mod]
    gamma = theta[len(theta) - n_mod:]
    prog = block_by_feature(lin.prog, F, beta, p, centred=False, spread=spread)
    mod = block_by_feature(lin.modifier, F, gamma, p, centred=True, spread=spread)
    return prog, mod, gamma


def block_by_feature(block: Block | None, F, coef, p, centred, spread: Spread | None = None):
    out = np.zeros((F.shape[0], p))
    if block is None or len(coef) == 0 or not block.basis:  # no features (a study without covariates)
        return out
    B = expect_columns(block.plan, basis_compiled(block.plan, F), F, spread)
    if block.type == "index":
        w = block.beta * coef[0]
        ctr = block.center[0] * coef[0] if centred else 0.0
        loc_share = ctr / len(block.basis)
        terms = B * w - loc_share
    else:
        ctr = block.center if centred else np.zeros(B.shape[1])
        terms = (B - ctr) * np.asarray(coef, float)
    # add each feature's columns in column order (as a loop over the columns would), one "slot"
    # (the k-th column of every feature) at a time
    for cols, feats in block.slots:
        out[:, feats] += terms[:, cols]
    plan = block.plan
    if plan.x_pos.size:
        # a product column k (x_a - o_a)(x_b - o_b) / s_k: each of its two features gets its exact
        # two-player Shapley value relative to the origins o (the training means, the reference the
        # linear columns' terms are measured from): half of the product term each; the term's
        # constant part (its value at the origins minus the centre) stays in the base
        wk = (block.beta * coef[0] if block.type == "index" else np.asarray(coef, float))[plan.x_pos]
        # (expected basis: the product of the means plus the conditional covariance, split the same way)
        raw = product(F[:, plan.x_feat], F[:, plan.x_feat2], plan.x_origin, plan.x_origin2)
        if spread is not None:
            raw = raw + product_shift(plan, F.shape[0], spread)
        half = 0.5 * raw * (wk / plan.scale[plan.x_pos])
        for j in range(plan.x_pos.size):
            out[:, plan.x_feat[j]] += half[:, j]
            out[:, plan.x_feat2[j]] += half[:, j]
    return out


def explain_from_export(exp: Learner | dict, X: pd.DataFrame, comparator: str) -> pd.DataFrame:
    """Per-patient contributions of each feature to ``benefit_vs_<comparator>``, in outcome
    units (continuous: points on 0-100; binary: risk difference), with columns ``base``
    (benefit at the reference), one column per feature and ``residual`` so that
    base + sum(features) + residual = predicted benefit exactly.

    Continuous linear kinds: exact additive terms (residual 0; a product column of two features
    is split into their two-player Shapley values, half each, relative to its origins). Continuous tree kinds:
    TreeSHAP (LightGBM ``pred_contrib``, path-dependent) of the boosters entering the benefit
    (residual 0). Binary outcomes: first-order (delta-method) terms p(1-p) x logit-scale
    contribution per arm; the non-linearity of the logistic link goes to ``residual``.
    Missing features: linear kinds explain the imputed value; trees their native missing rule (a
    feature a booster never saw missing: its conditional mean, :func:`predict.trees.tree_input`).
    """
    L = as_learner(exp)
    names = L.features["names"]
    F = feature_matrix(L.features, X)
    Fimp = impute_mean(L.imputer, F)
    base, contrib = explain(L, F, Fimp, comparator)
    _, ben = point(L, F)
    df = pd.DataFrame(contrib, columns=names, index=X.index)
    df.insert(0, "base", base)
    df["residual"] = ben[comparator] - base - contrib.sum(axis=1)
    return df


def explain(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray, comparator: str):
    """(base, contributions (n, p)) of the benefit vs ``comparator`` (see :func:`explain_from_export`)."""
    L = as_learner(exp)
    return _EXPLAIN[type(L)](L, F, Fimp, comparator)


def _explain_linear(L: LinearLearner, F, Fimp, comparator):
    lin = L.linear
    sp = linear_spread(L, F)
    eta = linear_eta(lin, L.comparators, Fimp, sp)
    prog, mod, _ = linear_terms(lin, Fimp, sp)
    return _explained_arms(L, eta, prog + mod, prog.copy(), comparator)


def _explain_t(L: TLearner, F, Fimp, comparator):
    """The linear terms plus each arm's booster's TreeSHAP contributions."""
    p = F.shape[1]
    lin = L.linear
    sp = linear_spread(L, F)
    eta = linear_eta(lin, L.comparators, Fimp, sp)
    prog, mod, _ = linear_terms(lin, Fimp, sp)
    s1 = booster_contrib(L.boosters["active"], tree_input(L, "active", F, Fimp))
    s0 = booster_contrib(L.boosters["control"], tree_input(L, "control", F, Fimp))
    eta = {"__active__": eta["__active__"] + s1.sum(1), comparator: eta[comparator] + s0.sum(1)}
    return _explained_arms(L, eta, prog + mod + s1[:, :p], prog.copy() + s0[:, :p], comparator)


def _explained_arms(L: Learner, eta: dict, c_act: np.ndarray, c_cmp: np.ndarray, comparator: str):
    """(base, contributions) from each arm's linear predictor and per-feature terms: their
    difference (continuous); first-order terms p(1-p) x logit-scale terms per arm (binary)."""
    if L.continuous:
        contrib = c_cmp - c_act
        total = eta[comparator] - eta["__active__"]
        return total - contrib.sum(1), contrib
    pa, pc = expit(eta["__active__"]), expit(eta[comparator])
    contrib = (pa * (1 - pa))[:, None] * c_act - (pc * (1 - pc))[:, None] * c_cmp
    # reference: the linear predictors with every feature term removed (constant per model)
    base = expit(eta["__active__"] - c_act.sum(1)) - expit(eta[comparator] - c_cmp.sum(1))
    return base, contrib


def _explain_effect_trees(L: EffectTreeLearner, F, Fimp, comparator):
    p = F.shape[1]
    (name, w), *rest = L.tau
    c = booster_contrib(L.boosters[name], tree_input(L, name, F, Fimp))
    s = c if not rest else w * c
    for name, w in rest:
        s = s + w * booster_contrib(L.boosters[name], tree_input(L, name, F, Fimp))
    b0 = L.class_benefit[comparator] + s[:, p]
    return b0, s[:, :p]


def _explain_stacked(L: StackedLearner, F, Fimp, comparator):
    n, p = F.shape
    base = np.zeros(n)
    contrib = np.zeros((n, p))
    for w, e in zip(L.weights, L.members):
        b, c = _EXPLAIN[type(e)](e, F, Fimp, comparator)
        base += w * b
        contrib += w * c
    return base, contrib


_EXPLAIN = {LinearLearner: _explain_linear, TLearner: _explain_t, EffectTreeLearner: _explain_effect_trees,
            StackedLearner: _explain_stacked}
