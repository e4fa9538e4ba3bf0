"""Shared plumbing for the metric library: input checks, sign convention, cluster bootstrap.

Conventions (used by every metric):

* ``benefit`` (predicted) is positive when the intervention (the active class) is better. For a
  continuous outcome where higher is worse (0-100) benefit = E[Y | comparator] - E[Y | intervention];
  for a binary good outcome benefit = P(Y=1 | intervention) - P(Y=1 | comparator).
* Observed outcomes are turned to the same sign with ``higher_is_better``: the *oriented*
  outcome is ``g = y`` if higher is better, else ``g = -y``. Observed benefit is then always
  ``g(intervention) - g(comparator)``.
* ``treat`` is 1 for the intervention, 0 for the comparator.
* ``cluster`` (trial id) is optional. With clusters, matching and grouping happen within a
  cluster and confidence intervals come from a cluster bootstrap (trials resampled with
  replacement, a resampled copy of a trial being a cluster of its own, then by default
  participants within arm inside each trial: ``bootstrap='two_stage'``; ``'cluster'`` resamples
  trials only). With one cluster the bootstrap resamples participants within each arm.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.orientation import orient

OUTCOME_TYPES = ("continuous", "binary")


# ----------------------------------------------------------------------------- results
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if not math.isfinite(v) else v
    return obj


@dataclass(frozen=True)
class MetricResult:
    """Base class: small frozen result; ``to_dict()`` is JSON-able (NaN/inf become None)."""

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


# ----------------------------------------------------------------------------- inputs
def as_1d(x: Any, name: str, n: int | None = None, *, allow_nan: bool = False) -> np.ndarray:
    if x is None:
        raise LbpError(f"{name} is required")
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        raise LbpError(f"{name} must be a 1-D array, got a scalar")
    a = a.reshape(-1) if a.ndim == 2 and 1 in a.shape else a
    if a.ndim != 1:
        raise LbpError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise LbpError(f"length mismatch: {name} has {a.shape[0]} values, expected {n}")
    if not allow_nan:
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise LbpError(
                f"{name} has {int(bad.sum())} missing/non-finite value(s) (first at position {first})"
            )
    return a


def as_2d(x: Any, name: str, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise LbpError(f"{name} must be 2-D (participants x covariates), got shape {a.shape}")
    if a.shape[0] != n:
        raise LbpError(f"length mismatch: {name} has {a.shape[0]} rows, expected {n}")
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise LbpError(f"{name} has {int(bad.sum())} missing value(s) (first at row {r}, column {c})")
    return a


def check_outcome_type(outcome_type: str) -> str:
    if outcome_type not in OUTCOME_TYPES:
        raise LbpError(f"outcome_type must be one of {OUTCOME_TYPES}, got {outcome_type!r}")
    return outcome_type


def check_binary(y: np.ndarray, name: str) -> None:
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise LbpError(f"{name} must be 0/1 for a binary outcome; position {first} is {y[first]!r}")


def cluster_codes(cluster: Any, n: int) -> tuple[np.ndarray, list]:
    """Integer codes 0..k-1 and the original labels; ``None`` means one cluster."""
    if cluster is None:
        return np.zeros(n, dtype=int), [None]
    c = np.asarray(cluster)
    if c.ndim != 1 or c.shape[0] != n:
        raise LbpError(f"length mismatch: cluster has shape {c.shape}, expected ({n},)")
    codes, labels = pd.factorize(pd.Series(c), use_na_sentinel=True)
    if (codes < 0).any():
        raise LbpError(f"cluster has {int((codes < 0).sum())} missing value(s)")
    return codes.astype(int), [_jsonable(v) if isinstance(v, np.generic) else v for v in labels]


def check_treat(t: np.ndarray) -> np.ndarray:
    bad = ~np.isin(t, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise LbpError(f"treat must be 1 (intervention) or 0 (comparator); position {first} is {t[first]!r}")
    return t.astype(int)


def propensity_array(propensity: Any, treat: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Allocation probability per participant: given (scalar/array) or the within-cluster share."""
    n = treat.shape[0]
    if propensity is None:
        e = np.empty(n)
        for k in np.unique(codes):
            m = codes == k
            e[m] = treat[m].mean()
        return e
    p = np.asarray(propensity, dtype=float)
    e = np.full(n, float(p)) if p.ndim == 0 else as_1d(p, "propensity", n)
    if ((e <= 0) | (e >= 1)).any():
        raise LbpError("propensity must be strictly between 0 and 1")
    return e


@dataclass
class Prepared:
    benefit: np.ndarray
    y: np.ndarray
    g: np.ndarray  # oriented outcome
    treat: np.ndarray
    codes: np.ndarray
    labels: list
    outcome_type: str

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def n_clusters(self) -> int:
        return int(self.codes.max()) + 1 if self.n else 0


def prepare(
    benefit: Any,
    y: Any,
    treat: Any,
    cluster: Any,
    outcome_type: str,
    higher_is_better: bool,
    *,
    need_both_arms: bool = True,
) -> Prepared:
    check_outcome_type(outcome_type)
    y = as_1d(y, "y")
    n = y.shape[0]
    b = as_1d(benefit, "benefit", n)
    t = check_treat(as_1d(treat, "treat", n))
    codes, labels = cluster_codes(cluster, n)
    if outcome_type == "binary":
        check_binary(y, "y")
    if need_both_arms:
        both = [k for k in range(len(labels)) if 0 < t[codes == k].sum() < (codes == k).sum()]
        if not both:
            raise LbpError(
                "every cluster has a single arm: a treatment effect cannot be observed "
                "(need intervention and comparator participants within at least one trial)"
            )
    return Prepared(b, y, orient(y, higher_is_better), t, codes, labels, outcome_type)


def rng_of(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


# ----------------------------------------------------------------------------- bootstrap
BOOTSTRAP_SCHEMES = ("two_stage", "cluster")


def _resample_arms(arms: list, rng: np.random.Generator) -> np.ndarray:
    """Participants of one cluster drawn with replacement within each arm (``arms``: the cluster's
    row indices per arm; arm sizes kept)."""
    # m[rng.integers(0, m.size, m.size)] draws exactly what rng.choice(m, size=m.size, replace=True) draws (the
    # Generator's with-replacement choice is that call; tests/test_metrics_speed.py checks it) without choice's
    # per-call overhead (a bootstrap calls this for every arm of every drawn cluster)
    return np.concatenate([m[rng.integers(0, m.size, m.size)] for m in arms if m.size])


def bootstrap_samples(codes: np.ndarray, treat: np.ndarray, n_boot: int, rng: np.random.Generator,
                      scheme: str = "two_stage"):
    """Yield ``(index, new_codes)`` bootstrap samples.

    Two or more clusters: clusters are drawn with replacement; each drawn copy gets its own
    code so that within-cluster operations (matching, stratification) never mix copies. With
    ``scheme='two_stage'`` (default) participants are then resampled within arm inside each
    drawn cluster (Davison & Hinkley 1997, sec. 3.8: slightly conservative, but keeps the
    within-trial sampling variance when there are few trials, where resampling trials alone
    badly understates uncertainty); ``scheme='cluster'`` keeps drawn clusters intact.
    One cluster: participants drawn with replacement within each arm (arm sizes fixed).
    """
    if scheme not in BOOTSTRAP_SCHEMES:
        raise LbpError(f"bootstrap must be one of {BOOTSTRAP_SCHEMES}, got {scheme!r}")
    k = int(codes.max()) + 1
    members = [np.flatnonzero(codes == j) for j in range(k)]
    # each cluster's arms, split once (not again on every replicate)
    arms = [[m[treat[m] == a] for a in (0, 1)] for m in members]
    if k >= 2:
        for _ in range(n_boot):
            draw = rng.integers(0, k, size=k)
            if scheme == "two_stage":
                parts = [_resample_arms(arms[j], rng) for j in draw]
            else:
                parts = [members[j] for j in draw]
            idx = np.concatenate(parts)
            new = np.repeat(np.arange(len(parts)), [p.shape[0] for p in parts])
            yield idx, new
    else:
        for _ in range(n_boot):
            idx = _resample_arms(arms[0], rng)
            yield idx, np.zeros(idx.shape[0], dtype=int)


def percentile_ci(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        if draws.ndim == 2 and draws.size and not np.isnan(draws).any():
            # no NaN: np.quantile gives nanquantile's values (same sort and interpolation) in one call, where
            # nanquantile loops over the columns in Python (tests/test_metrics_plumbing.py checks the equality)
            lo, hi = np.quantile(draws, [a, 1 - a], axis=0)
            return lo, hi
        lo = np.nanquantile(draws, a, axis=0)
        hi = np.nanquantile(draws, 1 - a, axis=0)
    return lo, hi


def run_bootstrap(
    stat: Callable[[np.ndarray, np.ndarray], Any],
    codes: np.ndarray,
    treat: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    level: float,
    max_fail: float = 0.5,
    scheme: str = "two_stage",
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Percentile CI of ``stat(idx, new_codes)`` (scalar or 1-D). Replicates that raise
    ``LbpError`` or return NaN count as failed; if more than ``max_fail`` fail, CI is NaN.
    Returns (lo, hi, n_failed, draws)."""
    if not 0 < level < 1:
        raise LbpError(f"ci level must be in (0, 1), got {level}")
    if n_boot <= 0:
        return np.nan, np.nan, 0, np.empty((0,))
    out = []
    failed = 0
    for idx, new in bootstrap_samples(codes, treat, n_boot, rng, scheme):
        try:
            v = np.asarray(stat(idx, new), dtype=float)
        except LbpError:
            failed += 1
            continue
        if not np.isfinite(v).any():
            failed += 1
            continue
        out.append(v)
    if not out or failed > max_fail * n_boot:
        return np.nan, np.nan, failed, np.asarray(out)
    draws = np.asarray(out)
    lo, hi = percentile_ci(draws, level)
    return lo, hi, failed, draws


def fnum(x: Any) -> float:
    return float(np.asarray(x, dtype=float))
