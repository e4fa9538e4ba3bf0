"""Input checking and per-group data layout shared by the LMM and GLMM fitters.

All problems raise :class:`predict.errors.LbpError` with a message naming the argument
(and the columns, when names are known). Data values are never put into messages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predict.errors import LbpError


@dataclass
class Design:
    """Rows sorted by group; Z columns scaled to unit root-mean-square (``z_scale``).

    ``gidx`` maps each (sorted) row to its group number; ``starts`` are the first row of
    each group, ``order`` the permutation applied to the caller's rows.
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray  # scaled: Z_original / z_scale
    z_scale: np.ndarray
    gidx: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    labels: list
    order: np.ndarray
    fixed_names: list[str]
    random_names: list[str]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def q(self) -> int:
        return self.Z.shape[1]

    @property
    def m(self) -> int:
        return len(self.starts)


def _as_matrix(a, name: str, n_expected: int | None) -> tuple[np.ndarray, list[str] | None]:
    cols = None
    if hasattr(a, "columns"):  # pandas DataFrame
        cols = [str(c) for c in a.columns]
    elif hasattr(a, "name") and hasattr(a, "to_numpy"):  # pandas Series
        cols = [str(a.name)] if a.name is not None else None
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError) as exc:
        raise LbpError(f"{name} must be numeric ({exc})") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise LbpError(f"{name} must be a 2-D array (rows x columns); got {arr.ndim} dimensions")
    if n_expected is not None and arr.shape[0] != n_expected:
        raise LbpError(f"{name} has {arr.shape[0]} rows but y has {n_expected}; they must match")
    if arr.shape[1] == 0:
        raise LbpError(f"{name} has no columns")
    return arr, cols


def _check_finite(arr: np.ndarray, name: str, names: list[str] | None) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        if arr.ndim == 2:
            cols = np.flatnonzero(bad.any(axis=0))
            label = [names[j] if names else f"column {j}" for j in cols[:10]]
            rows = np.flatnonzero(bad.any(axis=1))
            raise LbpError(
                f"{name} contains {int(bad.sum())} missing or non-finite value(s) in {len(rows)} row(s) "
                f"(first row {int(rows[0])}; columns {', '.join(map(str, label))}); "
                "remove or impute them before fitting")
        rows = np.flatnonzero(bad)
        raise LbpError(f"{name} contains {len(rows)} missing or non-finite value(s) (first row {int(rows[0])})")


def rank_deficient_columns(X: np.ndarray, tol: float | None = None) -> list[list[int]]:
    """Sets of columns involved in exact linear dependencies (empty list if X has full rank)."""
    Xs = X / np.maximum(np.sqrt((X ** 2).mean(axis=0)), 1e-300)
    _, s, vt = np.linalg.svd(Xs, full_matrices=False)
    if tol is None:
        tol = s.max() * max(Xs.shape) * np.finfo(float).eps * 10
    null = vt[s <= tol]
    if len(null) == 0:
        return []
    groups = []
    for v in null:
        idx = np.flatnonzero(np.abs(v) > 1e-6 * np.abs(v).max())
        groups.append(idx.tolist())
    return groups


def prepare(y, X, Z, groups, fixed_names=None, random_names=None) -> Design:
    """Validate inputs and lay rows out by group (see :class:`Design`)."""
    if y is None or X is None or Z is None or groups is None:
        raise LbpError("y, X, Z and groups are all required")
    y_arr = np.asarray(y, dtype=float) if not hasattr(y, "to_numpy") else y.to_numpy(dtype=float)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    if y_arr.ndim != 1:
        raise LbpError(f"y must be a 1-D vector; got shape {y_arr.shape}")
    n = y_arr.shape[0]
    if n == 0:
        raise LbpError("y is empty")
    X_arr, xcols = _as_matrix(X, "X", n)
    Z_arr, zcols = _as_matrix(Z, "Z", n)
    g_arr = np.asarray(groups)
    if g_arr.ndim != 1 or g_arr.shape[0] != n:
        raise LbpError(f"groups must be a 1-D vector with one entry per row of y ({n}); got shape {g_arr.shape}")

    fixed_names = list(fixed_names) if fixed_names is not None else (xcols or [f"x{j}" for j in range(X_arr.shape[1])])
    random_names = list(random_names) if random_names is not None else (zcols or [f"z{j}" for j in range(Z_arr.shape[1])])
    if len(fixed_names) != X_arr.shape[1]:
        raise LbpError(f"fixed_names has {len(fixed_names)} names but X has {X_arr.shape[1]} columns")
    if len(random_names) != Z_arr.shape[1]:
        raise LbpError(f"random_names has {len(random_names)} names but Z has {Z_arr.shape[1]} columns")
    if len(set(fixed_names)) != len(fixed_names):
        raise LbpError("fixed_names contains duplicates")
    if len(set(random_names)) != len(random_names):
        raise LbpError("random_names contains duplicates")

    _check_finite(y_arr, "y", None)
    _check_finite(X_arr, "X", fixed_names)
    _check_finite(Z_arr, "Z", random_names)
    try:
        g_missing = np.asarray([v is None or (isinstance(v, float) and np.isnan(v)) for v in g_arr.tolist()])
    except TypeError:
        g_missing = np.zeros(n, bool)
    if g_missing.any():
        raise LbpError(f"groups contains {int(g_missing.sum())} missing label(s) (first row {int(np.flatnonzero(g_missing)[0])})")

    labels, gidx = np.unique(g_arr, return_inverse=True)
    m = len(labels)
    if m < 2:
        raise LbpError(f"at least 2 groups are needed to estimate between-group variation; found {m}")
    if X_arr.shape[1] >= n:
        raise LbpError(f"X has {X_arr.shape[1]} columns but only {n} rows")
    dep = rank_deficient_columns(X_arr)
    if dep:
        parts = ["{" + ", ".join(fixed_names[j] for j in d) + "}" for d in dep]
        raise LbpError(
            "X is rank deficient: these fixed-effect columns are linearly dependent: " + "; ".join(parts)
            + " (drop one column from each set, e.g. a reference level or a trial dummy aliased with the intercept)")
    zrms = np.sqrt((Z_arr ** 2).mean(axis=0))
    if (zrms == 0).any():
        zero = [random_names[j] for j in np.flatnonzero(zrms == 0)]
        raise LbpError(f"Z column(s) {', '.join(zero)} are all zero; a random effect needs a non-zero covariate")

    order = np.argsort(gidx, kind="stable")
    gidx_s = gidx[order]
    sizes = np.bincount(gidx_s, minlength=m)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return Design(
        y=y_arr[order], X=np.ascontiguousarray(X_arr[order]), Z=np.ascontiguousarray(Z_arr[order] / zrms),
        z_scale=zrms, gidx=gidx_s, starts=starts, sizes=sizes, labels=labels.tolist(), order=order,
        fixed_names=[str(s) for s in fixed_names], random_names=[str(s) for s in random_names])


def check_choice(value, name: str, allowed) -> str:
    if value not in allowed:
        raise LbpError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def tril_index(q: int, re_cov: str) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of the free entries of the relative Cholesky factor (column-major, like lme4)."""
    if re_cov == "diagonal":
        i = np.arange(q)
        return i, i
    rows, cols = [], []
    for j in range(q):
        for i in range(j, q):
            rows.append(i)
            cols.append(j)
    return np.asarray(rows), np.asarray(cols)
