"""The one orientation convention of training: an *oriented* outcome is larger = better for the
patient, so a benefit is oriented(active) - oriented(comparator) and positive favours the active
class.

Continuous outcomes of the default study (pain, function on 0-100) are higher = worse, binary ones
(global recovery, harmonised as 1 = good result) higher = better.
"""
from __future__ import annotations

import numpy as np


def higher_is_better(outcome_type: str) -> bool:
    """Whether larger values are better for an outcome of this type (``'continuous'``: 0-100, higher =
    worse; ``'binary'``: 1 = good result)."""
    return outcome_type != "continuous"


def orient(y, higher_is_better: bool) -> np.ndarray:
    """The outcome oriented so that larger = better (a new float array)."""
    y = np.asarray(y, float)
    return y.copy() if higher_is_better else -y
