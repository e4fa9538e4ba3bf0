"""Explanations: per-patient contributions of each feature to a predicted benefit, in outcome units
(exact additive terms of the linear parts; LightGBM TreeSHAP of the tree parts; first-order terms
per arm for binary outcomes).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.evaluate import point
from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.linear import basis, basis_compiled, linear_eta
from predict.numeric import expit
from predict.trees import booster_contrib, tree_input


def linear_terms(lin: dict, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per feature: the active-arm modifier term (M - center) gamma split by feature, and the
    prognostic term P beta split by feature: (n, p) each, plus the gamma-part total."""
    p = F.shape[1]
    n_prog, n_mod = lin["n_prog"], lin["n_mod"]
    theta = np.asarray(lin["theta"], float)
    beta = theta[len(theta) - n_mod - n_prog: len(theta) - n_mod]
    gamma = theta[len(theta) - n_mod:]
    prog = block_by_feature(lin["prog"], F, beta, p, centred=False)
    mod = block_by_feature(lin.get("modifier"), F, gamma, p, centred=True)
    return prog, mod, gamma


def block_by_feature(block, F, coef, p, centred):
    out = np.zeros((F.shape[0], p))
    if block is None or len(coef) == 0 or not block["basis"]:  # no features (a study without covariates)
        return out
    plan = block.get("_plan")
    B = basis_compiled(plan, F) if plan is not None else basis(block["basis"], F)
    if block["type"] == "index":
        w = np.asarray(block["beta"], float) * coef[0]
        ctr = np.asarray(block["center"], float)[0] * coef[0] if centred else 0.0
        loc_share = ctr / len(block["basis"])
        terms = B * w - loc_share
    else:
        ctr = np.asarray(block["center"], float) if centred else np.zeros(B.shape[1])
        terms = (B - ctr) * np.asarray(coef, float)
    # add each feature's columns in column order (as a loop over the columns would), one "slot"
    # (the k-th column of every feature) at a time
    for cols, feats in _feature_slots(block):
        out[:, feats] += terms[:, cols]
    return out


def _feature_slots(block: dict) -> list:
    slots = block.get("_slots")
    if slots is None:
        seen: dict = {}
        by_slot: dict = {}
        for i, c in enumerate(block["basis"]):
            k = seen.get(c["feature"], 0)
            seen[c["feature"]] = k + 1
            by_slot.setdefault(k, ([], []))
            by_slot[k][0].append(i)
            by_slot[k][1].append(c["feature"])
        slots = [(np.asarray(a, np.intp), np.asarray(b, np.intp)) for _, (a, b) in sorted(by_slot.items())]
        block["_slots"] = slots
    return slots


def explain_from_export(exp: dict, X: pd.DataFrame, comparator: str) -> pd.DataFrame:
    """Per-patient contributions of each feature to ``benefit_vs_<comparator>``, in outcome
    units (continuous: points on 0-100; binary: risk difference), with columns ``base``
    (benefit at the reference), one column per feature and ``residual`` so that
    base + sum(features) + residual = predicted benefit exactly.

    Continuous linear kinds: exact additive terms (residual 0). Continuous tree kinds:
    TreeSHAP (LightGBM ``pred_contrib``, path-dependent) of the boosters entering the benefit
    (residual 0). Binary outcomes: first-order (delta-method) terms p(1-p) x logit-scale
    contribution per arm; the non-linearity of the logistic link goes to ``residual``.
    Missing features: linear kinds explain the imputed value; trees their native missing rule.
    """
    names = exp["features"]["names"]
    F = feature_matrix(exp["features"], X)
    Fimp = impute_mean(exp["imputer"], F)
    base, contrib = explain(exp, F, Fimp, comparator)
    _, ben = point(exp, F)
    df = pd.DataFrame(contrib, columns=names, index=X.index)
    df.insert(0, "base", base)
    df["residual"] = ben[comparator] - base - contrib.sum(axis=1)
    return df


def explain(exp: dict, F: np.ndarray, Fimp: np.ndarray, comparator: str):
    kind, comps = exp["kind"], exp["comparators"]
    n, p = F.shape
    cont = exp["outcome_type"] == "continuous"
    if kind in ("constant", "effect_model", "risk_model", "t_learner"):
        lin = exp["linear"]
        eta = linear_eta(lin, comps, Fimp)
        prog, mod, _ = linear_terms(lin, Fimp)
        c_act, c_cmp = prog + mod, prog.copy()
        if kind == "t_learner":
            Ft = tree_input(exp, F, Fimp)
            s1 = booster_contrib(exp["boosters"]["active"], Ft)
            s0 = booster_contrib(exp["boosters"]["control"], Ft)
            c_act = c_act + s1[:, :p]
            c_cmp = c_cmp + s0[:, :p]
            eta = {"__active__": eta["__active__"] + s1.sum(1), comparator: eta[comparator] + s0.sum(1)}
        if cont:
            contrib = c_cmp - c_act
            total = eta[comparator] - eta["__active__"]
            return total - contrib.sum(1), contrib
        pa, pc = expit(eta["__active__"]), expit(eta[comparator])
        contrib = (pa * (1 - pa))[:, None] * c_act - (pc * (1 - pc))[:, None] * c_cmp
        # reference: the linear predictors with every feature term removed (constant per model)
        base = expit(eta["__active__"] - c_act.sum(1)) - expit(eta[comparator] - c_cmp.sum(1))
        return base, contrib
    if kind in ("x_learner", "dr_learner"):
        Ft = tree_input(exp, F, Fimp)
        if kind == "x_learner":
            e = exp["combine"]["e"]
            s = e * booster_contrib(exp["boosters"]["tau0"], Ft) + (1 - e) * booster_contrib(exp["boosters"]["tau1"], Ft)
        else:
            s = booster_contrib(exp["boosters"]["tau"], Ft)
        b0 = exp["combine"]["class_benefit"][comparator] + s[:, p]
        return b0, s[:, :p]
    if kind == "stacked":
        mem = exp["members"]
        base = np.zeros(n)
        contrib = np.zeros((n, p))
        for w, e in zip(mem["weights"], mem["exports"]):
            b, c = explain(e, F, Fimp, comparator)
            base += w * b
            contrib += w * c
        return base, contrib
    raise ValueError(f"unknown learner kind {kind!r}")
