"""Trees: LightGBM boosters from their native text (cached), raw scores and TreeSHAP
contributions, and which feature matrix each booster of a learner sees (``tree_missing``,
:func:`nan_unseen`, :func:`tree_input`).

A booster whose training rows always had a feature splits on it with LightGBM missing type None:
a NaN there would be read as 0 (LightGBM's rule), a branch chosen by the value 0, never learned.
Such a missing value is replaced by the conditional mean E[X | observed] (the imputer's, ``Fimp``)
before the walk; features whose splits saw NaN in training (missing type NaN, or Zero) keep
LightGBM's learned missing-value branch.

This is the reference: raw scores are LightGBM's own. The compiled program evaluates the same
trees from ``booster.dump_model()`` (:mod:`predict.kernels`) and reproduces them exactly.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np


_BOOSTER_CACHE: dict[int, tuple[str, Any]] = {}


_BOOSTER_LOCK = threading.Lock()


_UNSEEN_CACHE: dict[int, tuple[str, np.ndarray]] = {}


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


def nan_unseen(model_str) -> np.ndarray:
    """The features (sorted indices) this booster splits on with LightGBM missing type None: its
    training rows never had them missing. Read from the model text itself (each tree's
    ``decision_type``: bits 2-3 = missing type, 0 None, 1 Zero, 2 NaN), so every stored artifact
    carries it; cached by the text."""
    if not isinstance(model_str, str):
        model_str = booster(model_str).model_to_string()
    key = hash(model_str)
    hit = _UNSEEN_CACHE.get(key)
    if hit is not None and hit[0] == model_str:
        return hit[1]
    feats: set[int] = set()
    split = None
    for line in model_str.splitlines():
        if line.startswith("Tree="):
            split = None
        elif line.startswith("split_feature="):
            split = [int(v) for v in line[14:].split()]
        elif line.startswith("decision_type=") and split is not None:
            dt = [int(v) for v in line[14:].split()]
            if len(dt) != len(split):
                raise ValueError("LightGBM model text: decision_type and split_feature differ in length")
            feats.update(f for f, d in zip(split, dt) if (d >> 2) & 3 == 0)
        elif line.startswith("end of trees"):
            break
    out = np.array(sorted(feats), dtype=np.int64)
    with _BOOSTER_LOCK:
        if len(_UNSEEN_CACHE) > 512:
            _UNSEEN_CACHE.clear()
        _UNSEEN_CACHE[key] = (model_str, out)
    return out


def tree_input(learner, name: str, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    """The matrix booster ``name`` of a tree learner sees: Fimp (``tree_missing`` "impute"), or F
    (NaN = missing: "native") with the missing entries of the booster's :func:`nan_unseen`
    features replaced by Fimp's conditional means. Rows with nothing of those missing keep F
    exactly (F itself is returned when no row has)."""
    if learner.tree_missing != "native":
        return Fimp
    cols = nan_unseen(learner.boosters[name])
    cols = cols[cols < F.shape[1]]
    if not cols.size:
        return F
    sub = F[:, cols]
    gap = np.isnan(sub)
    if not gap.any():
        return F
    out = F.copy()
    out[:, cols] = np.where(gap, Fimp[:, cols], sub)
    return out
