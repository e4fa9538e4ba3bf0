"""Aggregate network data: read arm-level or contrast-level summaries into per-trial contrasts.

Two documented input formats (CSV, one header line; see docs/network.md):

* **arm** — columns ``trial, treatment, n, mean, sd`` (one row per arm). Contrasts are
  differences of arm means (MD) or Hedges' g (SMD, pooled SD over the trial's arms).
* **contrast** — columns ``trial, treatment1, treatment2, estimate, se`` with
  ``estimate = treatment1 − treatment2``. A multi-arm trial must give every pair of its arms;
  the arm variances v_i are solved from se_ij² = v_i + v_j (as netmeta does for multi-arm
  trials), which also gives the covariance of the contrasts.

Every trial becomes a :class:`StudyContrasts`: contrasts of its arms against its first arm in
the global treatment order, with the within-trial covariance S (for MD from arm data
S = diag(v_arms) + v_base, the shared baseline making multi-arm contrasts correlated; for SMD
the large-sample covariance of Gleser & Olkin 2009: Var g_i = 1/n_i + 1/n_0 + g_i²/(2N),
Cov(g_i, g_j) = 1/n_0 + g_i g_j/(2N)).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from predict.errors import LbpError

ARM_COLUMNS = ("trial", "treatment", "n", "mean", "sd")
CONTRAST_COLUMNS = ("trial", "treatment1", "treatment2", "estimate", "se")


@dataclass
class StudyContrasts:
    """One trial: ``treatments[1:]`` minus ``treatments[0]`` (``y``) with covariance ``S``."""

    trial: str
    treatments: tuple
    y: np.ndarray
    S: np.ndarray
    source: str = "aggregate"  # "aggregate" or "ipd"
    n: dict = field(default_factory=dict)

    @property
    def design(self) -> str:
        return ":".join(self.treatments)

    def rebased(self, base: str) -> "StudyContrasts":
        """The same trial with contrasts against ``base`` (a linear map of y and S)."""
        if base == self.treatments[0]:
            return self
        k = list(self.treatments).index(base)
        m = len(self.treatments)
        # full arm vector relative to old base: a = [0, y]; new contrasts a_j - a_k for j != k
        T = np.zeros((m - 1, m - 1))
        order = [base] + [t for t in self.treatments if t != base]
        for r, t in enumerate(order[1:]):
            j = list(self.treatments).index(t)
            if j > 0:
                T[r, j - 1] += 1.0
            T[r, k - 1] -= 1.0
        return StudyContrasts(self.trial, tuple(order), T @ self.y, T @ self.S @ T.T, self.source, dict(self.n))


def _where(file: str, row: int | None = None, column: str | None = None) -> str:
    s = file
    if row is not None:
        s += f" line {row}"
    if column is not None:
        s += f" column {column!r}"
    return s


def _numeric(df: pd.DataFrame, cols, file: str) -> None:
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise LbpError(f"{_where(file, i + 2, c)}: {df[c].iloc[i]!r} is not a number (missing values are not allowed here)")
        df[c] = v.astype(float)


def rows_of(table: pd.DataFrame, outcome: str, follow_up: str) -> pd.DataFrame:
    """The rows of ``table`` for one outcome and follow-up; a table without an ``outcome`` or
    ``follow_up`` column holds one of them only, and all its rows are kept."""
    t = table
    if "outcome" in t.columns:
        t = t[t["outcome"] == outcome]
    if "follow_up" in t.columns:
        t = t[t["follow_up"] == follow_up]
    return t


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise LbpError(f"{p}: aggregate data file not found")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as exc:  # noqa: BLE001 - report any parse failure with the file name
        raise LbpError(f"{p}: cannot read as CSV ({exc})") from exc


def detect_format(df: pd.DataFrame, file: str = "aggregate data") -> str:
    cols = set(df.columns)
    if set(ARM_COLUMNS) <= cols:
        return "arm"
    if set(CONTRAST_COLUMNS) <= cols:
        return "contrast"
    raise LbpError(f"{file}: columns {sorted(cols)} match neither the arm format {list(ARM_COLUMNS)} "
                   f"nor the contrast format {list(CONTRAST_COLUMNS)}")


def load_aggregate(data: str | Path | pd.DataFrame, measure: str = "MD", order: list | None = None,
                   file: str | None = None) -> list[StudyContrasts]:
    """Read a table (path or DataFrame) in either format into per-trial contrasts.

    ``measure``: "MD" (mean difference, arm or contrast data) or "SMD" (Hedges' g; arm data
    only; contrast data are taken as already on the SMD scale). ``order``: global treatment
    order used to pick each trial's baseline (default: sorted names)."""
    if measure not in ("MD", "SMD"):
        raise LbpError(f"measure must be 'MD' or 'SMD', not {measure!r}")
    if isinstance(data, pd.DataFrame):
        df = data.astype({c: str for c in data.columns if data[c].dtype == object}).copy()
        file = file or "aggregate table"
    else:
        file = file or str(data)
        df = read_table(data)
    fmt = detect_format(df, file)
    for c in ("trial",) + (("treatment",) if fmt == "arm" else ("treatment1", "treatment2")):
        df[c] = df[c].astype(str).str.strip()
        empty = df[c] == ""
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise LbpError(f"{_where(file, i + 2, c)}: empty")
    if fmt == "arm":
        _numeric(df, ("n", "mean", "sd"), file)
        for c, ok, msg in (("n", df["n"] >= 2, "n must be at least 2"), ("sd", df["sd"] > 0, "sd must be positive")):
            if not ok.all():
                i = int(np.flatnonzero(~ok.to_numpy())[0])
                raise LbpError(f"{_where(file, i + 2, c)}: {msg} (got {df[c].iloc[i]})")
        treats = sorted(set(df["treatment"])) if order is None else list(order)
        return [_from_arms(t, g, measure, treats, file) for t, g in df.groupby("trial", sort=False)]
    _numeric(df, ("estimate", "se"), file)
    if not (df["se"] > 0).all():
        i = int(np.flatnonzero(~(df["se"] > 0).to_numpy())[0])
        raise LbpError(f"{_where(file, i + 2, 'se')}: se must be positive (got {df['se'].iloc[i]})")
    same = df["treatment1"] == df["treatment2"]
    if same.any():
        i = int(np.flatnonzero(same.to_numpy())[0])
        raise LbpError(f"{_where(file, i + 2, 'treatment2')}: a trial cannot compare {df['treatment1'].iloc[i]!r} with itself")
    treats = sorted(set(df["treatment1"]) | set(df["treatment2"])) if order is None else list(order)
    return [_from_contrasts(t, g, treats, file) for t, g in df.groupby("trial", sort=False)]


def _check_known(names, order, file, row, col):
    for i, t in zip(row, names):
        if t not in order:
            raise LbpError(f"{_where(file, i, col)}: treatment {t!r} is not in the treatment list")


def _from_arms(trial: str, g: pd.DataFrame, measure: str, order: list, file: str) -> StudyContrasts:
    rows = list(g.index + 2)
    _check_known(g["treatment"], order, file, rows, "treatment")
    if g["treatment"].duplicated().any():
        i = rows[int(np.flatnonzero(g["treatment"].duplicated().to_numpy())[0])]
        raise LbpError(f"{_where(file, i, 'treatment')}: trial {trial!r} lists treatment {g['treatment'].loc[i - 2]!r} twice "
                       "(merge arms of the same treatment first)")
    if len(g) < 2:
        raise LbpError(f"{_where(file, rows[0], 'trial')}: trial {trial!r} has only one arm")
    g = g.assign(_o=g["treatment"].map(order.index)).sort_values("_o")
    n, m, s = g["n"].to_numpy(), g["mean"].to_numpy(), g["sd"].to_numpy()
    names = tuple(g["treatment"])
    if measure == "MD":
        v = s**2 / n
        y = m[1:] - m[0]
        S = np.diag(v[1:]) + v[0]
    else:
        df_ = n.sum() - len(n)
        sp = np.sqrt(((n - 1) * s**2).sum() / df_)
        J = 1 - 3 / (4 * df_ - 1)
        y = J * (m[1:] - m[0]) / sp
        N = n.sum()
        S = 1 / n[0] + np.outer(y, y) / (2 * N)
        S[np.diag_indices_from(S)] += 1 / n[1:]
    return StudyContrasts(trial, names, y, S, "aggregate", dict(zip(names, n.astype(int).tolist())))


def _from_contrasts(trial: str, g: pd.DataFrame, order: list, file: str) -> StudyContrasts:
    rows = list(g.index + 2)
    _check_known(g["treatment1"], order, file, rows, "treatment1")
    _check_known(g["treatment2"], order, file, rows, "treatment2")
    arms = sorted(set(g["treatment1"]) | set(g["treatment2"]), key=order.index)
    k = len(arms)
    pairs = {}
    for r, (a, b, e, se) in zip(rows, g[["treatment1", "treatment2", "estimate", "se"]].itertuples(index=False)):
        key = frozenset((a, b))
        if key in pairs:
            raise LbpError(f"{_where(file, r, 'treatment2')}: trial {trial!r} gives the {a} vs {b} contrast twice")
        # store as arms[j] - arms[i] with i < j in the global order
        sign = 1.0 if order.index(a) > order.index(b) else -1.0
        pairs[key] = (sign * e, se, r)
    if len(pairs) != k * (k - 1) // 2:
        missing = [f"{a} vs {b}" for a, b in combinations(arms, 2) if frozenset((a, b)) not in pairs]
        raise LbpError(f"{_where(file, rows[0], 'trial')}: multi-arm trial {trial!r} must give every pair of its "
                       f"{k} arms; missing {', '.join(missing)}")
    base = arms[0]
    y = np.array([pairs[frozenset((base, t))][0] for t in arms[1:]])
    if k == 2:
        se = pairs[frozenset(arms)][1]
        return StudyContrasts(trial, tuple(arms), y, np.array([[se**2]]))
    # consistency within the trial: (j - i) = (j - base) - (i - base)
    A, b = [], []
    for i, j in combinations(range(k), 2):
        e, se, r = pairs[frozenset((arms[i], arms[j]))]
        if i > 0 and abs(e - (y[j - 1] - y[i - 1])) > 1e-6 * max(1.0, abs(e)) + 1e-4:
            raise LbpError(f"{_where(file, r, 'estimate')}: trial {trial!r}: {arms[j]} vs {arms[i]} = {e:g} is not "
                           f"consistent with the other contrasts of the trial ({y[j - 1] - y[i - 1]:g})")
        row = np.zeros(k)
        row[i] = row[j] = 1.0
        A.append(row)
        b.append(se**2)
    v, *_ = np.linalg.lstsq(np.array(A), np.array(b), rcond=None)
    if (v <= 0).any():
        raise LbpError(f"{_where(file, rows[0], 'se')}: trial {trial!r}: the standard errors of its contrasts imply a "
                       "negative arm variance (se_ij² = v_i + v_j has no positive solution)")
    S = np.diag(v[1:]) + v[0]
    return StudyContrasts(trial, tuple(arms), y, S)


def to_contrast_table(studies: list[StudyContrasts]) -> pd.DataFrame:
    """Every pairwise contrast of every trial (estimate = treatment1 − treatment2)."""
    out = []
    for s in studies:
        full = np.concatenate([[0.0], s.y])
        V = np.zeros((len(full), len(full)))
        V[1:, 1:] = s.S
        for i, j in combinations(range(len(full)), 2):
            var = V[i, i] + V[j, j] - 2 * V[i, j]
            out.append({"trial": s.trial, "treatment1": s.treatments[j], "treatment2": s.treatments[i],
                        "estimate": full[j] - full[i], "se": float(np.sqrt(var)), "source": s.source})
    return pd.DataFrame(out)
