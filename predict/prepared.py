"""A loaded learner export made ready to score: its lists of numbers as float arrays, each linear
block's vectorised evaluation plan (:func:`prepare_export`) and, with numba, the compiled forests
and basis columns the compiled program (:mod:`predict.program`) is built from
(:func:`prepare_fast`). Predictions are unchanged (the numpy reference reads the same numbers).
"""
from __future__ import annotations

import logging

import numpy as np

from predict import column_kernels, kernels
from predict.linear import LINEAR_KINDS, compile_basis
from predict.trees import booster

log = logging.getLogger("predict.prepared")


def fast_ready(exp: dict) -> bool:
    """True when the compiled program (:mod:`predict.program`) can take ``exp`` (prepared by
    :func:`prepare_export` with numba available and every booster and linear layout supported)."""
    return bool(exp.get("_fast_ok"))


def _fast_prepare(exp: dict) -> bool:
    """Compile ``exp``'s boosters and linear blocks for the compiled program; True if all of it (and its
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
    """:func:`prepare_export` plus the compiled forests and basis columns the compiled program is built from (``_forests``,
    ``_cols``; ``_fast_ok`` = usable), in place. Without numba nothing is added and the plain
    functions are used."""
    prepare_export(exp)
    exp["_fast_ok"] = _fast_prepare(exp)
    return exp
