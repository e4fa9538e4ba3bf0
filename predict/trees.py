"""Trees: LightGBM boosters from their native text (cached), raw scores and TreeSHAP
contributions, and which feature matrix a learner's trees see (``tree_missing``).

This is the reference: raw scores are LightGBM's own. The compiled program evaluates the same
trees from ``booster.dump_model()`` (:mod:`predict.kernels`) and reproduces them exactly.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np


_BOOSTER_CACHE: dict[int, tuple[str, Any]] = {}


_BOOSTER_LOCK = threading.Lock()


def booster(model_str):
    """A LightGBM Booster from its native text (cached by the string's hash; the text itself is
    kept as the key so two different texts never share a booster). A ``lightgbm.Booster`` is
    returned as is."""
    if not isinstance(model_str, str):
        if hasattr(model_str, "predict") and hasattr(model_str, "model_to_string"):
            return model_str
        raise TypeError(f"a booster must be a LightGBM model string, not {type(model_str).__name__}")
    key = hash(model_str)
    hit = _BOOSTER_CACHE.get(key)
    if hit is not None and hit[0] == model_str:
        return hit[1]
    import lightgbm as lgb

    b = lgb.Booster(model_str=model_str)
    with _BOOSTER_LOCK:
        if len(_BOOSTER_CACHE) > 512:
            _BOOSTER_CACHE.clear()
        _BOOSTER_CACHE[key] = (model_str, b)
    return b


def booster_raw(model_str, F: np.ndarray) -> np.ndarray:
    return booster(model_str).predict(F, raw_score=True, num_threads=1)


def booster_contrib(model_str, F: np.ndarray) -> np.ndarray:
    """TreeSHAP (path-dependent) contributions on the raw scale: (n, p + 1), last = bias."""
    return booster(model_str).predict(F, pred_contrib=True, num_threads=1)


def raw_score(learner, name: str, F: np.ndarray) -> np.ndarray:
    """Raw score of booster ``name`` of a tree learner (:mod:`predict.learner_model`; LightGBM's own
    prediction: the reference; the compiled program reproduces it exactly)."""
    return booster_raw(learner.boosters[name], F)


def tree_input(learner, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    """The matrix a tree learner's boosters see: F with NaN (``tree_missing`` "native") or Fimp."""
    return F if learner.tree_missing == "native" else Fimp
