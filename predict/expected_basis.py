"""The expected basis of a patient with missing inputs: E[B(X) | observed] instead of B(E[X | observed]).

A linear block's columns are non-linear in the features (restricted cubic spline terms, products of
two features), so plugging the conditional mean of a missing feature into them is not the expected
prediction (Jensen). Under the imputer's conditional normal (:mod:`predict.impute`; a missing
feature f has the conditional marginal N(m_f, S_ff) given the observed ones) each column's
expectation needs at most two features' conditional moments, computed deterministically (no
sampling):

- a spline term of one feature f: Gauss-Hermite quadrature with :data:`GH_NODES` nodes,
  E[g(X_f)] = sum_i w_i g(clip(m_f + sqrt(S_ff) t_i)), the imputer's bounds applied to each node
  (the draws of :func:`predict.impute.impute_draws` are bounded the same way); m_f unbounded;
- a product (x_a - o_a)(x_b - o_b): (m'_a - o_a)(m'_b - o_b) + S_ab with m' the bounded conditional
  means (what the linear columns see) and S_ab the conditional covariance (0 when either is
  observed); the bounds are not applied inside the covariance term;
- linear and one-hot columns: unchanged (the bounded conditional mean; binary features have
  linear columns only, where the conditional mean is their expectation under the Gaussian model).

Observed features, and so every column of a complete patient, are untouched: the numbers of a
patient without missing inputs are those of :func:`predict.linear.basis_compiled`, bit for bit.

:func:`cond_spread` makes the :class:`Spread` (conditional means, SDs and covariances of the
rows with something missing) from an imputer and the raw features; training builds one for its
within-trial imputation (``training.learners.missing``); :func:`expect_columns` replaces a basis
matrix's affected entries by their expectations. The compiled kernel (:mod:`predict.fused`) does the
same arithmetic with the same nodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predict.impute import Imputer, pattern_groups, pattern_solve
from predict.numeric import rcs_term

GH_NODES = 20
_T, _W = np.polynomial.hermite.hermgauss(GH_NODES)
NODES = np.sqrt(2.0) * _T  # standard-normal nodes: E[g(Z)] = sum WEIGHTS g(NODES)
WEIGHTS = _W / np.sqrt(np.pi)
NODES.setflags(write=False)
WEIGHTS.setflags(write=False)

EXPECTED = "expected"  # the linear part's ``missing`` value: its blocks see E[B(X) | observed]


@dataclass(frozen=True, eq=False)
class Spread:
    """The conditional distribution of the rows of a feature matrix that have something missing:
    ``rows`` (their positions), ``mean`` (r, p; unbounded conditional means, observed values
    kept), ``sd`` (r, p; conditional SDs, 0 where observed), ``pat`` (r,) an index into ``cov``
    (K, p, p; the conditional covariance of each row's pattern, zero rows/columns where observed),
    and the imputer's bounds ``lower``/``upper`` (p,)."""

    rows: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    pat: np.ndarray
    cov: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def pattern_moments(imp: Imputer, mean: np.ndarray, cov: np.ndarray, F: np.ndarray, keys, inv):
    """(unbounded conditional means (n, p), per-pattern conditional covariances (K, p, p)) of F's
    rows under N(mean, cov): the regression A and Cholesky factor L of
    :func:`predict.impute.pattern_solve` (the covariance is L L', as the draws' is)."""
    n, p = F.shape
    out = F.copy()
    covs = np.zeros((len(keys), p, p))
    for k, m in enumerate(keys):
        if not m.any():
            continue
        rows = inv == k
        o = ~m
        A, L = pattern_solve(imp, cov, m)
        cm = np.broadcast_to(mean[m], (int(rows.sum()), int(m.sum()))).copy()
        if o.any():
            cm += (F[np.ix_(rows, o)] - mean[o]) @ A
        out[np.ix_(rows, m)] = cm
        covs[k][np.ix_(m, m)] = L @ L.T
    return out, covs


def cond_spread(imp: Imputer | dict, F: np.ndarray) -> Spread | None:
    """The :class:`Spread` of F's rows under a scoring imputer (pooled mean, total covariance);
    None when nothing is missing."""
    miss = np.isnan(F)
    if not miss.any():
        return None
    imp = Imputer.of(imp)
    keys, inv = pattern_groups(F)
    mean, covs = pattern_moments(imp, imp.mean, imp.cov, F, keys, inv)
    rows = np.flatnonzero(miss.any(axis=1))
    return make_spread(rows, mean[rows], covs, inv[rows], imp.lower, imp.upper)


def make_spread(rows, mean, covs, pat, lower, upper) -> Spread:
    """A :class:`Spread` (the SDs from the covariances' diagonals)."""
    pat = np.asarray(pat, np.int64)
    diag = np.diagonal(covs, axis1=1, axis2=2)[pat] if len(covs) else np.zeros(mean.shape)
    sd = np.sqrt(np.clip(diag, 0.0, None))
    return Spread(np.asarray(rows, np.int64), mean, sd, pat, covs, np.asarray(lower, float), np.asarray(upper, float))


def merge(parts: list, n: int) -> Spread | None:
    """One Spread from several over disjoint rows of the same n-row matrix (pattern indices offset)."""
    parts = [s for s in parts if s is not None and s.rows.size]
    if not parts:
        return None
    off, pats, covs = 0, [], []
    for s in parts:
        pats.append(s.pat + off)
        covs.append(s.cov)
        off += s.cov.shape[0]
    lo, hi = parts[0].lower, parts[0].upper
    rows = np.concatenate([s.rows for s in parts])
    order = np.argsort(rows, kind="stable")
    cat = lambda xs: np.concatenate(xs)[order]  # noqa: E731
    return Spread(rows[order], cat([s.mean for s in parts]), cat([s.sd for s in parts]), cat(pats),
                  np.concatenate(covs), lo, hi)


def expect_columns(plan, B: np.ndarray, Fimp: np.ndarray, spread: Spread | None) -> np.ndarray:
    """``B`` (the standardised basis of ``plan``, a :class:`predict.linear.BasisPlan`, at the
    bounded conditional means ``Fimp``) with the spline and product columns of ``spread``'s rows
    replaced by their conditional expectations (module docstring); a new array (B itself if
    ``spread`` is None or touches nothing)."""
    if spread is None or not spread.rows.size or not (plan.r_pos.size or plan.x_pos.size):
        return B
    B = B.copy()
    r = spread.rows
    if plan.r_pos.size:
        S = spread.sd[:, plan.r_feat]  # (r, c)
        hit = S > 0
        if hit.any():
            ri, ci = np.nonzero(hit)
            f = plan.r_feat[ci]
            X = spread.mean[ri, f][:, None] + S[ri, ci][:, None] * NODES  # (h, Q)
            X = np.minimum(np.maximum(X, spread.lower[f][:, None]), spread.upper[f][:, None])
            V = rcs_term(X, *(a[ci][:, None] for a in (plan.r_tj, plan.r_t2, plan.r_t1, plan.r_c1, plan.r_c2,
                                                         plan.r_d, plan.r_norm)))
            v = V @ WEIGHTS
            pos = plan.r_pos[ci]
            B[r[ri], pos] = (v - plan.loc[pos]) / plan.scale[pos]
    if plan.x_pos.size:
        C = spread.cov[spread.pat[:, None], plan.x_feat[None, :], plan.x_feat2[None, :]]  # (r, c)
        hit = C != 0
        if hit.any():
            ri, ci = np.nonzero(hit)
            a, b = plan.x_feat[ci], plan.x_feat2[ci]
            rr = r[ri]
            v = (Fimp[rr, a] - plan.x_origin[ci]) * (Fimp[rr, b] - plan.x_origin2[ci]) + C[ri, ci]
            pos = plan.x_pos[ci]
            B[rr, pos] = (v - plan.loc[pos]) / plan.scale[pos]
    return B


def product_shift(plan, n: int, spread: Spread | None) -> np.ndarray:
    """(n, products): the conditional covariance S_ab each product column's expectation adds to
    the product of the bounded means (0 where either feature is observed): what an explanation
    splits between the product's two features (:mod:`predict.explain`)."""
    out = np.zeros((n, plan.x_pos.size))
    if spread is None or not spread.rows.size or not plan.x_pos.size:
        return out
    out[spread.rows] = spread.cov[spread.pat[:, None], plan.x_feat[None, :], plan.x_feat2[None, :]]
    return out
