"""Run many one-stage models (in parallel, deterministic order) and collect long-form rows."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.meta.design import ModelSpec, build_design
from training.meta.fit import fit_model

_ANALYSIS: pd.DataFrame | None = None
_ACTIVE = "exercise"
_RESIDUAL = "common"


def _init(analysis: pd.DataFrame, active: str, residual: str) -> None:
    global _ANALYSIS, _ACTIVE, _RESIDUAL
    _ANALYSIS, _ACTIVE, _RESIDUAL = analysis, active, residual
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _one(spec: ModelSpec) -> dict:
    try:
        design = build_design(_ANALYSIS, spec, _ACTIVE)
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
    analysis = analysis[cols]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers <= 1 or len(specs) < 4:
        _init(analysis, active, residual)
        it = specs if progress is None else progress(specs, "fitting models")
        return pd.DataFrame([_one(s) for s in it])
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(analysis, active, residual)) as pool:
        results = pool.map(_one, specs, chunksize=max(1, len(specs) // (workers * 8)))
        if progress is not None:
            results = progress(results, "fitting models", total=len(specs))
        return pd.DataFrame(list(results))
