"""IECV performance of the deployed stack, not only of its members.

When a task's selected model is the convex R-loss stack, the model that is deployed is the stack.
Its held-out predictions are the stack weights applied to every member's held-out predictions
(the benefit as sum_i w_i b_i, the expected outcomes with the normalised weights, as the runtime
combines them, ``predict.runtime``), and its per-trial metrics are computed and pooled exactly as
a learner's (``training.iecv.trial_metrics``, ``pool_per_trial``), under the learner name
``stacked``.

Caveat (stated in the card): the weights were chosen on these same held-out predictions, so the
stack's IECV performance is slightly optimistic (not nested cross-validation); the members'
numbers are free of that choice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

STACK = "stacked"
MIN_WEIGHT = 1e-6  # the weights train.py keeps when it builds the deployed stack


def stacked_predictions(pred: pd.DataFrame, weights: dict) -> pd.DataFrame | None:
    """The stack's held-out predictions (one row per participant) or None when fewer than two
    members have weight or a member's prediction is missing for every row."""
    w = {k: float(v) for k, v in (weights or {}).items() if v > MIN_WEIGHT}
    if len(w) < 2 or pred is None or not len(pred):
        return None
    sub = pred[pred["learner"].isin(list(w))]
    cols = ["benefit", "expected_own", "expected_comparator"]
    rows = pd.Index(sorted(set(sub["row"])), name="row")
    wide = {c: sub.pivot_table(index="row", columns="learner", values=c, aggfunc="first", dropna=False)
            .reindex(index=rows, columns=list(w)) for c in cols}
    names = [k for k in w if sub["learner"].eq(k).any()]
    if len(names) < 2:
        return None
    wv = np.array([w[k] for k in names])
    wn = wv / wv.sum()
    base = sub.drop_duplicates("row").set_index("row").loc[rows]
    out = base.drop(columns=["learner"] + cols).copy()
    out["benefit"] = wide["benefit"][names].to_numpy(float) @ wv
    out["expected_own"] = wide["expected_own"][names].to_numpy(float) @ wn
    out["expected_comparator"] = wide["expected_comparator"][names].to_numpy(float) @ wn
    out["learner"] = STACK
    return out.reset_index()


def stacked_per_trial(pred: pd.DataFrame, weights: dict, outcome_type: str, n_boot: int, seed: int,
                      metrics_fn) -> pd.DataFrame:
    """Per held-out trial metrics of the stack (the columns of ``IecvResult.per_trial``);
    ``metrics_fn`` is ``training.iecv.trial_metrics``. Empty if there is no stack."""
    cols = ["learner", "trial", "metric", "estimate", "ci_low", "ci_high", "n"]
    sp = stacked_predictions(pred, weights)
    if sp is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for k, (h, g) in enumerate(sp.groupby("fold", sort=True)):
        b = g["benefit"].to_numpy(float)
        if not np.isfinite(b).any():
            continue
        for m, est, lo, hi in metrics_fn(b, g["y"].to_numpy(float), g["treat"].to_numpy(float), outcome_type,
                                         g["expected_own"].to_numpy(float), g["expected_comparator"].to_numpy(float),
                                         g["e"].to_numpy(float), n_boot, seed + k):
            rows.append({"learner": STACK, "trial": h, "metric": m, "estimate": est, "ci_low": lo, "ci_high": hi,
                         "n": len(g)})
    return pd.DataFrame(rows, columns=cols)
