"""A loaded learner export made ready to score: its lists of numbers as float arrays and each
linear block's vectorised evaluation plan (:func:`prepare_export`, on the scorer's own copy), and,
with numba, the compiled forests and basis columns the compiled program (:mod:`predict.program`)
is built from (:class:`CompiledExports`, kept beside the exports, not in them). Predictions are
unchanged (the numpy reference reads the same numbers).
"""
from __future__ import annotations

import logging

import numpy as np

from predict import column_kernels, kernels
from predict.linear import LINEAR_KINDS, compile_basis
from predict.trees import booster

log = logging.getLogger("predict.prepared")


class CompiledExports:
    """The compiled forests and basis columns of a model's prepared exports, from which the
    compiled program (:mod:`predict.program`) is built: made once (at load), owned by whoever
    scores (the scorer's engine), never written into the exports. Keyed by the identity of the
    (sub-)exports and blocks, which it keeps alive."""

    def __init__(self, exps: list[dict]):
        self._keep = list(exps)
        self._forests: dict[int, dict] = {}
        self._columns: dict[int, dict] = {}
        self._ok: dict[int, bool] = {}
        for e in self._keep:
            self._compile(e)

    def ready(self, exp: dict) -> bool:
        """True when the program can take ``exp``: numba available, every booster and linear layout
        of it (and of its sub-exports) supported."""
        return self._ok.get(id(exp), False)

    def forest(self, exp: dict, name: str) -> dict | None:
        """The compiled forest of booster ``name`` of ``exp`` (None if it was not compiled)."""
        return self._forests.get(id(exp), {}).get(name)

    def columns(self, block: dict) -> dict | None:
        """The basis columns of a linear block (:func:`predict.column_kernels.compile_columns`)."""
        return self._columns.get(id(block))

    def _compile(self, exp: dict) -> bool:
        ok = kernels.AVAILABLE and kernels.ready()
        if ok:
            ok = self._compile_boosters(exp) & self._compile_linear(exp)
        for sub in ([exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []) + \
                list((exp.get("members") or {}).get("exports") or []):
            ok = self._compile(sub) and ok
        if exp.get("kind") not in LINEAR_KINDS + ("t_learner", "x_learner", "dr_learner", "stacked"):
            ok = False
        self._ok[id(exp)] = bool(ok)
        return bool(ok)

    def _compile_boosters(self, exp: dict) -> bool:
        ok = True
        b = exp.get("boosters")
        if isinstance(b, dict) and b:
            forests = self._forests.setdefault(id(exp), {})
            for name, model in b.items():
                try:
                    fo = kernels.compile_forest(booster(model))
                except Exception as exc:  # noqa: BLE001 - anything unexpected: LightGBM does it (logged)
                    log.warning("booster %s is not compiled (%s: %s): LightGBM scores it", name, type(exc).__name__,
                                exc)
                    fo = None
                if fo is not None:
                    forests[name] = fo
                else:
                    ok = False
        return ok

    def _compile_linear(self, exp: dict) -> bool:
        lin = exp.get("linear")
        if not isinstance(lin, dict):
            return True
        ok = True
        C = len(exp.get("comparators") or [])
        sizes = []
        for key in ("prog", "modifier"):
            blk = lin.get(key)
            if blk is None:
                sizes.append(0)
                continue
            try:
                self._columns[id(blk)] = column_kernels.compile_columns(blk["basis"])
            except (ValueError, KeyError, TypeError):
                ok = False
                continue
            sizes.append(1 if blk["type"] == "index" else len(blk["basis"]))
        theta = np.asarray(lin["theta"], float)
        if len(sizes) != 2 or sizes != [lin["n_prog"], lin["n_mod"]] or theta.size != 1 + C + sum(sizes):
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
