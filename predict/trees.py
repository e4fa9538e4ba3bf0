"""Trees: LightGBM boosters from their native text (cached), raw scores and TreeSHAP
contributions, and which feature matrix a learner's trees see (``tree_missing``).

A booster's raw score comes from the compiled forest when :func:`predict.prepared.prepare_fast` made
one (same numbers as LightGBM, summed in the same order), else from LightGBM itself.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from predict import kernels


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


def raw_score(exp: dict, name: str, F: np.ndarray) -> np.ndarray:
    """Raw score of booster ``name`` of ``exp``: the compiled forest when :func:`prepare_export`
    made one (same numbers as LightGBM, summed in the same order), else LightGBM."""
    fo = (exp.get("_forests") or {}).get(name)
    if fo is not None:
        return kernels.forest_raw(fo, F)
    return booster_raw(exp["boosters"][name], F)


def tree_input(exp: dict, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    return F if exp.get("tree_missing", "native") == "native" else Fimp
