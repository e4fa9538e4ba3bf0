"""A DataFrame of patients -> the model's feature matrix (NaN = missing), as the learners see it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd



def feature_matrix(features: dict, X: pd.DataFrame) -> np.ndarray:
    """The model's features as a float matrix (NaN = missing). Absent columns are missing;
    categorical values map to their level index (unknown level -> missing)."""
    names, types = features["names"], features["types"]
    cats = features.get("categories", {})
    F = np.full((len(X), len(names)), np.nan)
    for j, (name, typ) in enumerate(zip(names, types)):
        if name not in X.columns:
            continue
        col = X[name]
        if typ == "categorical":
            lv = {str(v): i for i, v in enumerate(cats[name])}
            F[:, j] = [lv.get(str(v), np.nan) if not pd.isna(v) else np.nan for v in col]
        else:
            F[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    return F
