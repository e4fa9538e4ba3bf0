"""Run many one-stage models (in parallel, deterministic order) and collect long-form rows."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.meta.design import ModelSpec, build_design, select_rows
from training.meta.fit import fit_model

_ANALYSIS: pd.DataFrame | None = None
_ACTIVE = "exercise"
_RESIDUAL = "common"
_ROWS: dict = {}


def _init(analysis: pd.DataFrame, active: str, residual: str) -> None:
    global _ANALYSIS, _ACTIVE, _RESIDUAL
    _ANALYSIS, _ACTIVE, _RESIDUAL = analysis, active, residual
    _ROWS.clear()
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _rows_for(spec: ModelSpec) -> pd.DataFrame:
    """The spec's outcome × follow-up × comparison rows, shared by every model on them."""
    key = (spec.outcome, spec.follow_up, spec.comparators)
    if key not in _ROWS:
        _ROWS[key] = select_rows(_ANALYSIS, spec, _ACTIVE)
    return _ROWS[key]


def _one(spec: ModelSpec) -> dict:
    try:
        design = build_design(_ANALYSIS, spec, _ACTIVE, rows=_rows_for(spec))
    except LbpError as exc:
        return {
            "outcome": spec.outcome, "follow_up": spec.follow_up, "comparison": spec.comparison,
            "variable": spec.modifier or "treatment", "model": "adjusted" if spec.adjusted else "unadjusted",
            "studies": 0, "participants": 0, "excluded_missing": np.nan, "scale": "log_or" if spec.binary_outcome else "md",
            "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "tau": np.nan,
            "tau_at_boundary": False, "pi_low": np.nan, "pi_high": np.nan, "inference": "", "status": "not estimable",
            "message": str(exc),
        }
    return fit_model(design, _RESIDUAL)


def fit_many(analysis: pd.DataFrame, specs: Sequence[ModelSpec], *, active: str = "exercise", residual: str = "common",
             workers: int | None = None, progress: Callable | None = None) -> pd.DataFrame:
    """Fit every spec; rows come back in the order of ``specs`` whatever the scheduling."""
    cols = [c for c in analysis.columns if c not in ("arm", "instrument", "week", "subtype")]
    analysis = analysis[cols].copy()
    for c in ("trial", "participant", "treatment", "outcome", "follow_up"):
        analysis[c] = analysis[c].astype(object)  # plain objects: arrow-string ops dominate small models
    # Group specs by the rows they share so each worker selects them once.
    order = sorted(range(len(specs)), key=lambda i: (specs[i].outcome, specs[i].follow_up, specs[i].comparators))
    specs = [specs[i] for i in order]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers <= 1 or len(specs) < 4:
        _init(analysis, active, residual)
        it = specs if progress is None else progress(specs, "fitting models")
        rows = [_one(s) for s in it]
    else:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(analysis, active, residual)) as pool:
            results = pool.map(_one, specs, chunksize=max(1, len(specs) // (workers * 8)))
            if progress is not None:
                results = progress(results, "fitting models", total=len(specs))
            rows = list(results)
    back = [None] * len(rows)
    for pos, i in enumerate(order):
        back[i] = rows[pos]
    return pd.DataFrame(back)


def _subgroup_one(job) -> pd.DataFrame | None:
    from training.meta.subgroups import subgroup_effects

    spec, cfg = job
    try:
        return subgroup_effects(_ANALYSIS, cfg, spec)
    except LbpError:
        return None  # no observed values / too few trials for this modifier: no subgroup rows


def subgroup_many(analysis: pd.DataFrame, cfg, specs: Sequence[ModelSpec], *, workers: int | None = None,
                  progress: Callable | None = None) -> list[pd.DataFrame | None]:
    """``subgroup_effects`` for every spec (None where not estimable), in the order of ``specs``,
    in parallel like :func:`fit_many` (the fits are independent; results do not depend on scheduling)."""
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    jobs = [(s, cfg) for s in specs]
    if workers <= 1 or len(jobs) < 4:
        _init(analysis, cfg.active, "common")
        it = jobs if progress is None else progress(jobs, "subgroup effects")
        return [_subgroup_one(j) for j in it]
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(analysis, cfg.active, "common")) as pool:
        results = pool.map(_subgroup_one, jobs, chunksize=1)
        if progress is not None:
            results = progress(results, "subgroup effects", total=len(jobs))
        return list(results)
