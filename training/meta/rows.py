"""The rows one outcome × follow-up × comparison shares across all its models, as numpy arrays.

A replication fits ~40 models (every modifier, unadjusted and adjusted) on the same rows;
selecting, sorting and group-averaging them with pandas for every model cost more than the
smaller fits themselves. :class:`Rows` sorts once (by trial, then participant), codes the
trials once and keeps the numeric columns as arrays; each model then takes its complete-case
subset with numpy masks and centres its covariates in one grouped mean (:func:`group_centre`).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from predict.errors import LbpError


class Rows:
    """Rows sorted by (trial, participant) with trials coded 0..k-1 in sorted label order."""

    def __init__(self, d: pd.DataFrame):
        d = d.sort_values(["trial", "participant"], kind="mergesort")
        self.frame = d
        self.index = d.index
        labels = d["trial"].astype(str).to_numpy(dtype=object)
        self.trial_labels, self.codes = np.unique(labels, return_inverse=True)
        self.treat = d["treat"].to_numpy(float)
        self._cols: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def has(self, column: str) -> bool:
        return column in self.frame.columns

    def col(self, column: str) -> np.ndarray:
        """A column as float (cached: the same few columns serve every model). ``name[level]`` is
        the 0/1 indicator of a categorical column's level (NaN where the column is missing)."""
        if column not in self._cols:
            lv = re.fullmatch(r"(.+)\[(.*)\]", column)
            if column not in self.frame.columns and lv and lv.group(1) in self.frame.columns:
                v = self.frame[lv.group(1)]
                self._cols[column] = np.where(v.isna(), np.nan, (v.astype(str) == lv.group(2)).astype(float))
                return self._cols[column]
            try:
                self._cols[column] = self.frame[column].to_numpy(float)
            except (TypeError, ValueError):
                bad = next((x for x in self.frame[column].dropna() if not _is_number(x)), None)
                raise LbpError(f"column {column!r} has non-numeric values (e.g. {bad!r}); a covariate with "
                               f"levels must be declared 'categorical' with its categories in the study config")
        return self._cols[column]

    def trials_with_both_arms(self, keep: np.ndarray) -> np.ndarray:
        """Boolean per trial code: the kept rows of that trial include both arms (treat 0 and 1)."""
        k = len(self.trial_labels)
        c, t = self.codes[keep], self.treat[keep]
        lo = np.full(k, np.inf)
        hi = np.full(k, -np.inf)
        np.minimum.at(lo, c, t)
        np.maximum.at(hi, c, t)
        return (lo == 0) & (hi == 1)


def group_centre(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values − their group mean, the group mean) per row, for each column of ``values``
    (n × c); ``codes`` are group numbers.

    The means come from pandas' grouped mean (compensated summation, rows in order), bit for bit
    what ``groupby(trial).transform("mean")`` gave: a naive sum differs in the last bits, which is
    enough to flip the sign of a numerically zero curvature in models whose between-trial
    variance is not identified (2 trials) and so change their messages. All of a model's
    columns go through one groupby call (the per-column results are the same).
    """
    means = pd.DataFrame(values).groupby(codes, sort=True).mean().to_numpy()[codes]
    return values - means, means


def _is_number(x) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False
