"""The numpy reference: the expected outcome per class and the benefit for every learner kind
(the estimand, written once; the compiled program in :mod:`predict.program` / :mod:`predict.fused`
is held equal to it by tests).

For a patient with covariates x: the expected outcome under each class in an *average* trial
(trial effects at their weighted mean) and the benefit of the active class vs each comparator,
positive = active better: continuous E[Y|c,x] - E[Y|active,x]; binary P(Y=1|active,x) - P(Y=1|c,x).
Linear parts see the conditional-mean imputation ``Fimp``; trees see ``F`` with NaN (their native
missing-value rule) or ``Fimp`` (``tree_missing`` = ``impute``).
"""
from __future__ import annotations

import numpy as np

from predict.impute import impute_mean
from predict.linear import block_matrix, linear_eta, theta_split
from predict.numeric import mean_fn
from predict.trees import raw_score, tree_input


def expected(exp: dict, F: np.ndarray, Fimp: np.ndarray, active_only: bool = False) -> dict:
    """Expected outcome per class (keys: comparators and '__active__') at complete Fimp
    (linear parts) and raw F (trees; native NaN handling). ``active_only``: the
    '__active__' entry alone (what X/DR learners need from their nuisance T-learner)."""
    kind = exp["kind"]
    comps = exp["comparators"]
    if kind in ("constant", "effect_model", "risk_model"):
        lin = exp["linear"]
        eta = linear_eta(lin, comps, Fimp)
        f = mean_fn(lin["link"])
        return {k: f(v) for k, v in eta.items()}
    if kind == "t_learner":
        lin = exp["linear"]
        eta = linear_eta(lin, comps, Fimp)
        Ft = tree_input(exp, F, Fimp)
        r1 = raw_score(exp, "active", Ft)
        f = mean_fn(lin["link"])
        out = {"__active__": f(eta["__active__"] + r1)}
        if active_only:
            return out
        r0 = raw_score(exp, "control", Ft)
        for c in comps:
            out[c] = f(eta[c] + r0)
        return out
    if kind in ("x_learner", "dr_learner"):
        base = expected(exp["nuisance"], F, Fimp, active_only=True)
        b = benefit_h(exp, F, Fimp)
        out = {"__active__": base["__active__"]}
        for c in comps:
            bc = exp["combine"]["class_benefit"][c] + b
            out[c] = base["__active__"] + bc if exp["outcome_type"] == "continuous" else np.clip(base["__active__"] - bc, 0, 1)
        return out
    if kind == "stacked":
        mem = exp["members"]
        w = np.asarray(mem["weights"], float)
        wn = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
        subs = [expected(e, F, Fimp) for e in mem["exports"]]
        bens = [benefit_from_expected(e, s) for e, s in zip(mem["exports"], subs)]
        act = sum(wi * s["__active__"] for wi, s in zip(wn, subs))
        out = {"__active__": act}
        for c in comps:
            bc = sum(wi * b[c] for wi, b in zip(w, bens))
            out[c] = act + bc if exp["outcome_type"] == "continuous" else np.clip(act - bc, 0, 1)
        return out
    raise ValueError(f"unknown learner kind {kind!r}")


def benefit_h(exp: dict, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    Ft = tree_input(exp, F, Fimp)
    if exp["kind"] == "x_learner":
        e = exp["combine"]["e"]
        return e * raw_score(exp, "tau0", Ft) + (1 - e) * raw_score(exp, "tau1", Ft)
    return raw_score(exp, "tau", Ft)


def benefit_from_expected(exp: dict, ex: dict) -> dict:
    a = ex["__active__"]
    if exp["outcome_type"] == "continuous":
        return {c: ex[c] - a for c in exp["comparators"]}
    return {c: a - ex[c] for c in exp["comparators"]}


def point(exp: dict, F: np.ndarray, Fimp: np.ndarray | None = None) -> tuple[dict, dict]:
    """(expected per class, benefit per comparator) at the patient's features F (NaN =
    missing; linear parts use the conditional-mean imputation, trees their native NaN rule).
    ``Fimp``: ``impute_mean(exp["imputer"], F)`` if the caller has it already."""
    if Fimp is None:
        Fimp = impute_mean(exp["imputer"], F)
    ex = expected(exp, F, Fimp)
    return ex, benefit_from_expected(exp, ex)


def benefit_only(exp: dict, F: np.ndarray, Fimp: np.ndarray, comparator: str) -> np.ndarray:
    """The benefit vs ``comparator`` alone (what :func:`point` gives, up to floating-point
    rounding), skipping the parts that cancel for continuous outcomes (prognostic terms, the
    active-arm outcome of X/DR learners). Binary outcomes go through :func:`expected`."""
    kind = exp["kind"]
    if exp["outcome_type"] != "continuous":
        ex = expected(exp, F, Fimp)
        return ex["__active__"] - ex[comparator]
    comps = exp["comparators"]
    if kind in ("constant", "effect_model", "risk_model", "t_learner"):
        lin = exp["linear"]
        if lin["link"] != "identity":
            ex = expected(exp, F, Fimp)
            return ex[comparator] - ex["__active__"]
        C = len(comps)
        theta, b0, offs, beta, gamma = theta_split(lin, C)
        b = np.full(F.shape[0], offs[list(comps).index(comparator)])
        if gamma.size:
            b = b - block_matrix(lin.get("modifier"), Fimp) @ gamma
        if kind == "t_learner":
            Ft = tree_input(exp, F, Fimp)
            b = b + raw_score(exp, "control", Ft) - raw_score(exp, "active", Ft)
        return b
    if kind in ("x_learner", "dr_learner"):
        return exp["combine"]["class_benefit"][comparator] + benefit_h(exp, F, Fimp)
    if kind == "stacked":
        mem = exp["members"]
        return sum(w * benefit_only(e, F, Fimp, comparator) for w, e in zip(mem["weights"], mem["exports"]))
    raise ValueError(f"unknown learner kind {kind!r}")
