"""The scorer's per-task batch path: everything the scorer needs for one task and one comparator
in one pass (:func:`task_scores`), with the compiled kernels (:mod:`predict.kernels`) where an export
was prepared for them (:func:`prepare_fast`), else the numpy reference.

The same estimands and the same conditional draws as :func:`predict.evaluate.point`,
:func:`predict.uncertainty.estimation_se`, :func:`~predict.uncertainty.arm_se` and the missing-data
variances (equal up to floating-point rounding; tested), computed without re-imputing per function
and without evaluating what does not move between draws: a linear learner's predictor is additive
over features, so on each draw only the basis columns of the missing features change; a tree whose
path uses only observed features ends in the same leaf on every draw.
"""
from __future__ import annotations

import logging

import numpy as np

from predict import column_kernels, kernels
from predict.evaluate import expected
from predict.impute import bound, impute_mean, pattern_groups, pattern_parts
from predict.linear import memo_scope, LINEAR_KINDS, block_delta, block_matrix, compile_basis, linear_eta, theta_split
from predict.numeric import mean_fn, var_rows
from predict.trees import booster
from predict.uncertainty import arm_missing_variance, arm_se, estimation_se, missing_variance_fast


log = logging.getLogger("predict.batch")


def _raw_draws(exp: dict, name: str, D: np.ndarray, miss: np.ndarray) -> np.ndarray:
    return kernels.forest_draws(exp["_forests"][name], D, miss)


def _draws_expected(exp: dict, D: np.ndarray, Fim: np.ndarray, miss: np.ndarray, comparator: str,
                    active_only: bool = False):
    """(exercise, comparator) expected outcomes (n, M) on the draws D (n, M, p): what :func:`expected`
    gives on the flattened draws. ``Fim``: the conditional-mean imputation of the same rows."""
    kind = exp["kind"]
    n, M = D.shape[0], D.shape[1]
    if kind in LINEAR_KINDS or kind == "t_learner":
        lin = exp["linear"]
        comps = exp["comparators"]
        _, _, _, beta, gamma = theta_split(lin, len(comps))
        eta = linear_eta(lin, comps, Fim)
        dp = np.zeros((n, M))
        block_delta(lin["prog"], beta, D, Fim, miss, dp)
        dm = np.zeros((n, M))
        block_delta(lin.get("modifier"), gamma, D, Fim, miss, dm)
        f = mean_fn(lin["link"])
        ea = eta["__active__"][:, None] + dp + dm
        if kind == "t_learner":
            ea = ea + _raw_draws(exp, "active", D, miss)
        if active_only:
            return f(ea), None
        ec = eta[comparator][:, None] + dp
        if kind == "t_learner":
            ec = ec + _raw_draws(exp, "control", D, miss)
        return f(ea), f(ec)
    if kind in ("x_learner", "dr_learner"):
        a = _draws_expected(exp["nuisance"], D, Fim, miss, comparator, active_only=True)[0]
        if active_only:
            return a, None
        bc = exp["combine"]["class_benefit"][comparator] + _draws_benefit_h(exp, D, miss)
        return a, (a + bc if exp["outcome_type"] == "continuous" else np.clip(a - bc, 0, 1))
    if kind == "stacked":
        mem = exp["members"]
        w = np.asarray(mem["weights"], float)
        wn = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
        subs = [_draws_expected(e, D, Fim, miss, comparator) for e in mem["exports"]]
        cont = exp["outcome_type"] == "continuous"
        act = sum(wi * s[0] for wi, s in zip(wn, subs))
        bc = sum(wi * ((s[1] - s[0]) if e["outcome_type"] == "continuous" else (s[0] - s[1]))
                 for wi, s, e in zip(w, subs, mem["exports"]))
        return act, (act + bc if cont else np.clip(act - bc, 0, 1))
    raise ValueError(f"unknown learner kind {kind!r}")


def _draws_benefit_h(exp: dict, D: np.ndarray, miss: np.ndarray) -> np.ndarray:
    if exp["kind"] == "x_learner":
        e = exp["combine"]["e"]
        return e * _raw_draws(exp, "tau0", D, miss) + (1 - e) * _raw_draws(exp, "tau1", D, miss)
    return _raw_draws(exp, "tau", D, miss)


def _draws_benefit(exp: dict, D: np.ndarray, Fim: np.ndarray, miss: np.ndarray, comparator: str) -> np.ndarray:
    """The benefit vs ``comparator`` on the draws (n, M): :func:`benefit_only` on the flattened
    draws, skipping what cancels for continuous outcomes."""
    kind = exp["kind"]
    if exp["outcome_type"] != "continuous":
        a, c = _draws_expected(exp, D, Fim, miss, comparator)
        return a - c
    if kind in LINEAR_KINDS or kind == "t_learner":
        lin = exp["linear"]
        if lin["link"] != "identity":
            a, c = _draws_expected(exp, D, Fim, miss, comparator)
            return c - a
        comps = exp["comparators"]
        _, _, offs, _, gamma = theta_split(lin, len(comps))
        b0 = np.full(Fim.shape[0], offs[list(comps).index(comparator)])
        if gamma.size:
            b0 = b0 - block_matrix(lin.get("modifier"), Fim) @ gamma
        dm = np.zeros((D.shape[0], D.shape[1]))
        block_delta(lin.get("modifier"), gamma, D, Fim, miss, dm)
        b = b0[:, None] - dm
        if kind == "t_learner":
            b = b + _raw_draws(exp, "control", D, miss) - _raw_draws(exp, "active", D, miss)
        return b
    if kind in ("x_learner", "dr_learner"):
        return exp["combine"]["class_benefit"][comparator] + _draws_benefit_h(exp, D, miss)
    if kind == "stacked":
        mem = exp["members"]
        return sum(w * _draws_benefit(e, D, Fim, miss, comparator) for w, e in zip(mem["weights"], mem["exports"]))
    raise ValueError(f"unknown learner kind {kind!r}")


def fast_ready(exp: dict) -> bool:
    """True when :func:`task_scores` can use the compiled kernels for ``exp`` (prepared by
    :func:`prepare_export` with numba available and every booster and linear layout supported)."""
    return bool(exp.get("_fast_ok"))


def task_scores(exp: dict, F: np.ndarray, comparator: str, arms: bool = False, groups=None) -> dict:
    """Everything the scorer needs for one task and one comparator, in one pass:
    ``exercise``, ``comparator`` (expected outcomes), ``benefit``, ``se_est`` (bootstrap SE of
    the benefit), ``var_missing`` (variance of the benefit over the conditional draws of the
    missing features), and with ``arms`` (continuous outcomes, learners with per-arm SEs)
    ``arm_se`` = (SE exercise, SE comparator) and ``arm_var_missing`` = (var exercise, var
    comparator). Same numbers as the separate functions, up to floating-point rounding.
    ``groups``: :func:`pattern_groups` of F if the caller has it (shared across tasks)."""
    with memo_scope():
        return _task_scores(exp, F, comparator, arms, groups)


def _task_scores(exp: dict, F: np.ndarray, comparator: str, arms: bool, groups) -> dict:
    imp = exp["imputer"]
    n = F.shape[0]
    cont = exp["outcome_type"] == "continuous"
    keys, inv = groups if groups is not None else pattern_groups(F)
    fast = fast_ready(exp)
    if fast:
        A_all, N_all = pattern_parts(imp, keys)
        CM = column_kernels.cond_mean(F, np.asarray(imp["mean"], float), A_all, inv)
        Fimp = bound(imp, CM)
    else:
        Fimp = impute_mean(imp, F)
    ex = expected(exp, F, Fimp)
    a, c = ex["__active__"], ex[comparator]
    out = {"exercise": a, "comparator": c, "benefit": c - a if cont else a - c,
           "se_est": estimation_se(exp, F, Fimp, [comparator])[comparator]}
    se_arm = arm_se(exp, Fimp, comparator, F) if arms and cont else None
    out["arm_se"] = se_arm
    if not fast:
        if se_arm is None:
            out["var_missing"] = missing_variance_fast(exp, F, comparator)
        else:
            vb, va, vc = arm_missing_variance(exp, F, comparator)
            out["var_missing"], out["arm_var_missing"] = vb, (va, vc)
        return out
    vb, va, vc = np.zeros(n), np.zeros(n), np.zeros(n)
    out["var_missing"] = vb
    if se_arm is not None:
        out["arm_var_missing"] = (va, vc)
    rows = np.flatnonzero(np.isnan(F).any(axis=1))
    M = N_all.shape[1]
    if rows.size == 0 or M < 2:
        return out
    every = rows.size == n  # then reuse Fimp itself, so the memoised linear parts at Fimp serve the draws too
    D = column_kernels.fill_draws(CM if every else CM[rows], inv if every else inv[rows], N_all, np.asarray(imp["binary"], bool),
                     np.asarray(imp["lower"], float), np.asarray(imp["upper"], float))
    miss = np.ascontiguousarray(np.isnan(F if every else F[rows]))
    Fim = Fimp if every else Fimp[rows]
    if se_arm is None:
        vb[rows] = var_rows(_draws_benefit(exp, D, Fim, miss, comparator))
    else:
        da, dc = _draws_expected(exp, D, Fim, miss, comparator)
        v3 = var_rows(np.concatenate([dc - da, da, dc], axis=0))  # the three variances in one pass
        k = da.shape[0]
        vb[rows], va[rows], vc[rows] = v3[:k], v3[k:2 * k], v3[2 * k:]
    return out


def _fast_prepare(exp: dict) -> bool:
    """Compile ``exp``'s boosters and linear blocks for the fast path; True if all of it (and its
    sub-exports) is supported."""
    if not kernels.AVAILABLE or not kernels.ready():
        return False
    ok = True
    b = exp.get("boosters")
    if isinstance(b, dict) and b:
        forests = {}
        for name, model in b.items():
            try:
                fo = kernels.compile_forest(booster(model))
            except Exception as exc:  # noqa: BLE001 - anything unexpected: LightGBM does it (logged)
                log.warning("booster %s is not compiled (%s: %s): LightGBM scores it", name, type(exc).__name__, exc)
                fo = None
            if fo is not None:
                forests[name] = fo
            else:
                ok = False
        exp["_forests"] = forests
    lin = exp.get("linear")
    if isinstance(lin, dict):
        C = len(exp.get("comparators") or [])
        sizes = []
        for key in ("prog", "modifier"):
            blk = lin.get(key)
            if blk is None:
                sizes.append(0)
                continue
            try:
                blk["_cols"] = column_kernels.compile_columns(blk["basis"])
            except (ValueError, KeyError, TypeError):
                ok = False
                continue
            sizes.append(1 if blk["type"] == "index" else len(blk["basis"]))
        theta = np.asarray(lin["theta"], float)
        if len(sizes) != 2 or sizes != [lin["n_prog"], lin["n_mod"]] or theta.size != 1 + C + sum(sizes):
            ok = False
    for sub in ([exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []) + \
            list((exp.get("members") or {}).get("exports") or []):
        ok = _fast_prepare(sub) and ok
    if exp.get("kind") not in LINEAR_KINDS + ("t_learner", "x_learner", "dr_learner", "stacked"):
        ok = False
    return ok


def prepare_export(exp: dict) -> dict:
    """Make ``exp`` faster to score repeatedly, *in place*: its lists of numbers become float
    arrays and each linear block gets a vectorised evaluation plan (``_plan``). Predictions are
    unchanged. Use it on a private copy only (the result is no longer JSON-serialisable)."""
    f = lambda v: np.asarray(v, float)  # noqa: E731
    imp = exp.get("imputer")
    if isinstance(imp, dict):
        for k in ("mean", "cov", "z", "lower", "upper"):
            if k in imp:
                imp[k] = f(imp[k])
        if "binary" in imp:
            imp["binary"] = np.asarray(imp["binary"], bool)
        imp["_cache"] = {}
        imp["_fcache"] = {}
    lin = exp.get("linear")
    if isinstance(lin, dict):
        lin["theta"] = f(lin["theta"])
        for key in ("prog", "modifier"):
            b = lin.get(key)
            if isinstance(b, dict):
                b["_plan"] = compile_basis(b["basis"])
                if "center" in b:
                    b["center"] = f(b["center"])
                if "beta" in b:
                    b["beta"] = f(b["beta"])
    iv = exp.get("interval")
    if isinstance(iv, dict):
        if "theta_cov" in iv:
            iv["theta_cov"] = f(iv["theta_cov"])
        if isinstance(iv.get("varmodel"), dict):
            iv["varmodel"] = {c: f(v) for c, v in iv["varmodel"].items()}
        if isinstance(iv.get("design"), dict):
            iv["design"] = {k: f(v) for k, v in iv["design"].items()}
    if isinstance(exp.get("nuisance"), dict):
        prepare_export(exp["nuisance"])
    for sub in (exp.get("members") or {}).get("exports") or []:
        prepare_export(sub)
    return exp


def prepare_fast(exp: dict) -> dict:
    """:func:`prepare_export` plus the compiled kernels of the scorer's fast path (``_forests``,
    ``_cols``; ``_fast_ok`` = usable), in place. Without numba nothing is added and the plain
    functions are used."""
    prepare_export(exp)
    exp["_fast_ok"] = _fast_prepare(exp)
    return exp
