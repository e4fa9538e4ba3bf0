"""The training side of the extrapolation check (``predict.support``): which inputs matter for a
fitted learner's effect modification, and the stored description of their training support.

Features: the distance is taken over the features that drive the learner's *predicted* effect
modification, not all inputs (over 19 inputs a shift in the 3-4 that matter is drowned by the rest).
Importance of feature j = SD over the training participants of its additive contribution to the
predicted benefit (``learner.explain``: exact terms for linear learners, TreeSHAP for trees),
for the first comparator (the modification is shared across classes), over at most ``MAX_ROWS``
evenly spaced training rows. Kept: features with importance >= ``REL`` x the largest, at most
``MAX_FEATURES``. A learner without effect modification (the constant model) has no such
feature: its benefit does not depend on x, so there is nothing to extrapolate (no widening).
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from predict.support import fit_support

REL = 0.25
MAX_FEATURES = 6
MAX_ROWS = 1000
MIN_IMPORTANCE = 1e-6  # outcome units (points / risk difference): below this a learner is flat in x


def modifier_importance(learner, X: pd.DataFrame) -> pd.Series:
    """Per feature: SD of its contribution to the predicted benefit (module docstring)."""
    from predict.explain import explain_from_export

    exp = copy.deepcopy(learner.export_)  # explaining caches evaluation plans inside the export
    names = exp["features"]["names"]
    if len(X) > MAX_ROWS:  # evenly spaced rows: deterministic, and enough for an SD
        X = X.iloc[np.linspace(0, len(X) - 1, MAX_ROWS).astype(int)]
    parts = []
    # effect modification is shared across comparator classes (training.learners.base), so one
    # comparator's contributions give the importance (binary outcomes differ by a p(1-p) scale only)
    for c in exp["comparators"][:1]:
        ex = explain_from_export(exp, X, c)
        parts.append(ex[[n for n in names if n in ex.columns]].std(ddof=0))
    return pd.concat(parts, axis=1).mean(axis=1).reindex(names).fillna(0.0)


def learner_support(learner, X: pd.DataFrame, F: np.ndarray) -> dict:
    """The ``support`` export entry of a fitted learner (``F``: its training feature matrix)."""
    imp = modifier_importance(learner, X)
    names = list(imp.index)
    top = imp.sort_values(ascending=False, kind="stable")
    keep = [n for n in top.index[:MAX_FEATURES]
            if top[n] >= max(REL * top.iloc[0], MIN_IMPORTANCE)] if len(top) else []
    imputer = learner.export_["imputer"]
    feats = sorted(names.index(n) for n in keep)
    if not feats:
        return {"method": "none", "features": [], "reason": "no effect modification: nothing to extrapolate"}
    out = fit_support(imputer["mean"], imputer["cov"], F, feats)
    out["importance"] = {n: float(imp[n]) for n in keep}
    return out
