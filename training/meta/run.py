"""Run many one-stage models in worker processes and collect long-form rows (deterministic order).

A :class:`Runner` owns one process pool for a whole replication: the interaction and overall
models, the subgroup models behind the forest plots and the figures themselves go to the same
workers, so nothing waits for a second pool and the main process writes its CSVs and tables
while the workers fit. Jobs are chunks of specs that share rows (each worker selects, sorts and
codes those rows once, see :class:`~training.meta.rows.Rows`), submitted most expensive first
(logistic models cost ~3× linear ones) so that no worker idles at the end. Results never depend
on the scheduling: every model is fitted from the same inputs whichever worker takes it.
"""
from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.meta.design import ModelSpec, build_design, select_rows
from training.meta.fit import fit_model
from training.meta.rows import Rows

_ANALYSIS: pd.DataFrame | None = None
_ACTIVE = "exercise"
_RESIDUAL = "common"
_MISSING = ("complete_cases", 5)  # or ("mi", M): multiple imputation (training.impute.meta)
_ROWS: dict = {}
_MI: dict = {}  # rows key -> the M imputed copies of those rows (shared by every model on them)
CHUNK = 20  # specs per job: small enough to balance two workers, large enough to amortise IPC
SUBGROUP_CHUNK = 4  # subgroup models are queued last and are heavier: small jobs keep the tail short


def _init(analysis: pd.DataFrame, active: str, residual: str, missing=("complete_cases", 5)) -> None:
    global _ANALYSIS, _ACTIVE, _RESIDUAL, _MISSING
    _ANALYSIS, _ACTIVE, _RESIDUAL, _MISSING = analysis, active, residual, tuple(missing)
    _ROWS.clear()
    _MI.clear()
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _slim(analysis: pd.DataFrame) -> pd.DataFrame:
    """The columns the models use, key columns as plain objects (arrow-string ops dominate small models)."""
    cols = [c for c in analysis.columns if c not in ("arm", "instrument", "week", "subtype")]
    analysis = analysis[cols].copy()
    for c in ("trial", "participant", "treatment", "outcome", "follow_up"):
        analysis[c] = analysis[c].astype(object)
    return analysis


def _rows_for(spec: ModelSpec) -> Rows:
    """The spec's outcome × follow-up × comparison rows, shared by every model on them."""
    key = (spec.outcome, spec.follow_up, spec.comparators)
    if key not in _ROWS:
        _ROWS[key] = Rows(select_rows(_ANALYSIS, spec, _ACTIVE))
    return _ROWS[key]


def _one(spec: ModelSpec) -> dict:
    rows = _rows_for(spec)
    # A dataset (for this outcome, follow-up and comparison) of one trial gets the single-trial
    # analysis; with several trials a model needs at least two of them.
    min_trials = 1 if len(rows.trial_labels) == 1 else 2
    try:
        if _MISSING[0] == "mi" and min_trials == 2:
            return _one_mi(spec, rows)
        design = build_design(_ANALYSIS, spec, _ACTIVE, rows=rows, min_trials=min_trials)
    except LbpError as exc:
        return {
            "outcome": spec.outcome, "follow_up": spec.follow_up, "comparison": spec.comparison,
            "variable": spec.modifier or "treatment", "model": "adjusted" if spec.adjusted else "unadjusted",
            "studies": 0, "participants": 0, "excluded_missing": np.nan, "scale": "log_or" if spec.binary_outcome else "md",
            "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "tau": np.nan,
            "tau_at_boundary": False, "pi_low": np.nan, "pi_high": np.nan, "inference": "", "status": "not estimable",
            "message": str(exc), "analysis": "",
        }
    return fit_model(design, _RESIDUAL)


def _one_mi(spec: ModelSpec, rows: Rows) -> dict:
    """The spec's model by multiple imputation; the M imputed copies are made once per rows."""
    from training.impute.meta import fit_model_mi, imputed_frames

    key = (spec.outcome, spec.follow_up, spec.comparators)
    if key not in _MI:
        _MI[key] = imputed_frames(rows.frame, _MISSING[1], seed=0)[0]
    return fit_model_mi(_ANALYSIS, spec, _ACTIVE, residual=_RESIDUAL, rows=rows.frame, frames=_MI[key])


def _fit_chunk(specs: list[ModelSpec]) -> list[dict]:
    return [_one(s) for s in specs]


def _subgroup_one(spec: ModelSpec, cfg) -> pd.DataFrame | None:
    from training.meta.subgroups import subgroup_effects

    try:
        return subgroup_effects(_ANALYSIS, cfg, spec, rows=_rows_for(spec).frame)
    except LbpError:
        return None  # no observed values / too few trials for this modifier: no subgroup rows


def _subgroup_chunk(specs: list[ModelSpec], cfg) -> list[pd.DataFrame | None]:
    return [_subgroup_one(s, cfg) for s in specs]


class _Deferred:
    """In-process stand-in for a Future: runs when its result is asked for (so progress shows)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


def _chunks(specs: Sequence[ModelSpec], size: int = CHUNK) -> list[list[int]]:
    """Spec positions in chunks of at most ``size`` sharing rows, most expensive chunk first."""
    by_rows = defaultdict(list)
    for i, s in enumerate(specs):
        by_rows[(s.outcome, s.follow_up, s.comparators)].append(i)
    chunks = [idx[j:j + size] for idx in by_rows.values() for j in range(0, len(idx), size)]
    cost = [sum(3 if specs[i].binary_outcome else 1 for i in c) for c in chunks]
    return [c for _, c in sorted(zip(cost, chunks), key=lambda t: -t[0])]


class Runner:
    """Worker processes holding the analysis data (in-process when ``workers <= 1``).

    ``submit_fits`` / ``submit_subgroups`` queue jobs and return a function that collects the
    results in the order of the specs; ``submit`` runs any picklable function on a worker.
    """

    def __init__(self, analysis: pd.DataFrame, *, active: str = "exercise", residual: str = "common",
                 workers: int | None = None, missing: tuple = ("complete_cases", 5)):
        self.args = (_slim(analysis), active, residual, tuple(missing))
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Runner":
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(self.workers, initializer=_init, initargs=self.args)
        else:
            _init(*self.args)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=exc[0] is not None)

    def submit(self, fn, *args, **kwargs):
        if kwargs:
            fn = partial(fn, **kwargs)
        return self.pool.submit(fn, *args) if self.pool is not None else _Deferred(fn, args)

    def _queue(self, fn, specs, extra, label, progress, size=CHUNK):
        chunks = _chunks(specs, size)
        jobs = [(c, self.submit(fn, [specs[i] for i in c], *extra)) for c in chunks]

        def collect() -> list:
            out = [None] * len(specs)

            def each():
                for c, job in jobs:
                    for i, r in zip(c, job.result()):
                        out[i] = r
                        yield r

            it = each() if progress is None else progress(each(), label, total=len(specs))
            for _ in it:
                pass
            return out

        return collect

    def submit_fits(self, specs: Sequence[ModelSpec], progress: Callable | None = None) -> Callable[[], list[dict]]:
        return self._queue(_fit_chunk, specs, (), "fitting models", progress)

    def submit_subgroups(self, cfg, specs: Sequence[ModelSpec], progress: Callable | None = None):
        return self._queue(_subgroup_chunk, specs, (cfg,), "subgroup effects", progress, SUBGROUP_CHUNK)


def fit_many(analysis: pd.DataFrame, specs: Sequence[ModelSpec], *, active: str = "exercise", residual: str = "common",
             workers: int | None = None, progress: Callable | None = None,
             missing: tuple = ("complete_cases", 5)) -> pd.DataFrame:
    """Fit every spec; rows come back in the order of ``specs`` whatever the scheduling.
    ``missing=("mi", M)``: by multiple imputation (``training.impute.meta``)."""
    if len(specs) < 4:
        workers = 1
    with Runner(analysis, active=active, residual=residual, workers=workers, missing=missing) as run:
        return pd.DataFrame(run.submit_fits(specs, progress)())
