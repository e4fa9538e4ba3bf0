"""With numba, the compiled forests and basis columns of a model's typed learners
(:mod:`predict.learner_model`), from which the compiled program (:mod:`predict.program`) is built:
:class:`CompiledLearners`, made once at load and owned by whoever scores (the scorer's engine),
never written into the learners. Predictions are unchanged (the numpy reference reads the same
numbers).
"""
from __future__ import annotations

import logging

from predict import column_kernels, kernels
from predict.learner_model import Learner
from predict.linear import Block
from predict.trees import booster

log = logging.getLogger("predict.prepared")


class CompiledLearners:
    """The compiled forests and basis columns of some typed learners (and of the learners embedded
    in them). Keyed by the identity of the (immutable) learners and blocks, which it keeps alive."""

    def __init__(self, learners: list[Learner]):
        self._keep = list(learners)
        self._forests: dict[int, dict] = {}
        self._columns: dict[int, dict] = {}
        self._ok: dict[int, bool] = {}
        for L in self._keep:
            self._compile(L)

    def ready(self, learner: Learner) -> bool:
        """True when the program can take ``learner``: numba available, every booster and linear
        layout of it (and of the learners embedded in it) supported."""
        return self._ok.get(id(learner), False)

    def forest(self, learner: Learner, name: str) -> dict | None:
        """The compiled forest of booster ``name`` of ``learner`` (None if it was not compiled)."""
        return self._forests.get(id(learner), {}).get(name)

    def columns(self, block: Block) -> dict | None:
        """The basis columns of a linear block (:func:`predict.column_kernels.compile_columns`)."""
        return self._columns.get(id(block))

    def _compile(self, L: Learner) -> bool:
        ok = kernels.AVAILABLE and kernels.ready()
        if ok:
            ok = self._compile_boosters(L) & self._compile_linear(L)
        for sub in L.parts:
            ok = self._compile(sub) and ok
        self._ok[id(L)] = bool(ok)
        return bool(ok)

    def _compile_boosters(self, L: Learner) -> bool:
        ok = True
        b = getattr(L, "boosters", None) or {}
        forests = self._forests.setdefault(id(L), {})
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
        return ok

    def _compile_linear(self, L: Learner) -> bool:
        lin = getattr(L, "linear", None)
        if lin is None:
            return True
        ok = True
        sizes = []
        for blk in (lin.prog, lin.modifier):
            if blk is None:
                sizes.append(0)
                continue
            try:
                self._columns[id(blk)] = column_kernels.compile_columns(list(blk.basis))
            except (ValueError, KeyError, TypeError):
                ok = False
                continue
            sizes.append(1 if blk.type == "index" else len(blk.basis))
        if len(sizes) != 2 or sizes != [lin.n_prog, lin.n_mod] or lin.theta.size != 1 + len(L.comparators) + sum(sizes):
            ok = False
        return ok
