"""Penalised fits with one free intercept per trial (stratum), without the trial dummies.

The Hessian of a model ``eta = alpha[trial] + Z b`` has a diagonal trial block: with
``W`` the working weights,

    H = [[diag(h)   , D'WZ         ],     h_j = sum_{i in j} W_i + pen_a
         [(D'WZ)'   , Z'WZ + pen_z ]]

so a Newton step solves the k x k Schur complement ``S = Z'WZ + pen_z - (D'WZ)' diag(1/h) (D'WZ)``
and back-substitutes the J intercepts: O(n k^2 + J k^2) per step instead of O(n (J + k)^2) with
J dummy columns (a 60-trial logistic fit with ~60 other terms: ~4x fewer flops, and the dense
n x (J + k) design is never formed). It is the same Newton iteration as on the full system
(same start, same steps up to rounding), hence the same optimum; ``tests/test_strata_fit.py``
compares it with :func:`training.learners.linear.fit_penalised` on the dense design.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from predict.numeric import expit

RIDGE = 1e-10  # the dense fits' jitter on the whole diagonal


class Strata:
    """Rows grouped by trial code 0..J-1: per-trial sums (weighted) as one sparse product."""

    def __init__(self, trial: np.ndarray, J: int):
        self.trial, self.J = np.asarray(trial), int(J)
        self.order = np.argsort(self.trial, kind="stable")
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(self.trial, minlength=self.J))])

    def counts(self) -> np.ndarray:
        return np.diff(self.indptr).astype(float)

    def sums(self, v: np.ndarray) -> np.ndarray:
        """(J,) per-trial sums of a row vector (zeros for trials without rows)."""
        return np.bincount(self.trial, weights=v, minlength=self.J)

    def weighted_sums(self, W: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """(J, k) per-trial sums of the rows of W[:, None] * Z: D'WZ with D the trial dummies."""
        Dw = sparse.csr_matrix((W[self.order], self.order, self.indptr), shape=(self.J, self.trial.size))
        return np.asarray(Dw @ Z)


def hessian_blocks(st: Strata, Z: np.ndarray, W: np.ndarray, pen_a, pen_z: np.ndarray):
    """(h, B, C): the trial block's diagonal h (J), the cross block B = D'WZ (J x k) and the
    Z block C = Z'WZ + diag(pen_z) (k x k), each with the dense fits' jitter on the diagonal."""
    h = st.sums(W) + pen_a + RIDGE
    B = st.weighted_sums(W, Z)
    sZ = Z * np.sqrt(W)[:, None]
    C = sZ.T @ sZ  # numpy computes a.T @ a as a symmetric rank-k update
    C[np.diag_indices_from(C)] += pen_z + RIDGE
    return h, B, C


def schur_solve(h: np.ndarray, B: np.ndarray, C: np.ndarray, ga: np.ndarray, gz: np.ndarray):
    """Solve [[diag(h), B], [B', C]] [da; dz] = [ga; gz] through the Schur complement of diag(h)."""
    Bh = B / h[:, None]
    S = C - B.T @ Bh
    dz = np.linalg.solve(S, gz - Bh.T @ ga)
    da = (ga - B @ dz) / h
    return da, dz


def block_inverse(h: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The full (J + k) x (J + k) inverse of [[diag(h), B], [B', C]] from its blocks."""
    J, k = B.shape
    Bh = B / h[:, None]
    Si = np.linalg.inv(C - B.T @ Bh)
    Azz = Si
    Aaz = -Bh @ Si
    Aaa = np.diag(1.0 / h) - Aaz @ Bh.T
    A = np.empty((J + k, J + k))
    A[:J, :J], A[:J, J:], A[J:, :J], A[J:, J:] = Aaa, Aaz, Aaz.T, Azz
    return A


def logistic_strata(y: np.ndarray, trial: np.ndarray, J: int, Z: np.ndarray, pen_a: float, pen_z: np.ndarray,
                    max_iter: int = 100, tol: float = 1e-9, start: tuple | None = None) -> np.ndarray:
    """[alpha_1..J, b]: argmin of the logistic negative log-likelihood of
    ``alpha[trial] + Z b`` + 0.5 (pen_a |alpha|^2 + sum pen_z b^2), by the Newton iteration of
    :func:`training.learners.linear.fit_penalised` on [D, Z] (start 0, stop when the largest
    step < tol) with the trial block eliminated in each step (module docstring).

    ``start`` = (alpha, b): begin there instead of at 0 (e.g. a bootstrap replicate or a
    neighbouring penalty from the fit next to it: fewer steps to the same optimum, which is
    unique - the penalised objective is strictly convex). Should that Newton run not converge
    (no step control), the fit is repeated from 0."""
    st = Strata(trial, J)
    k = Z.shape[1]
    if start is not None:
        out = _newton(y, trial, st, Z, pen_a, pen_z, max_iter, tol, np.array(start[0], float), np.array(start[1], float))
        if out is not None:
            return out
    out = _newton(y, trial, st, Z, pen_a, pen_z, max_iter, tol, np.zeros(J), np.zeros(k))
    if out is None:  # as fit_penalised: the last iterate after max_iter steps
        out = _newton(y, trial, st, Z, pen_a, pen_z, max_iter, tol, np.zeros(J), np.zeros(k), last=True)
    return out


def _newton(y, trial, st, Z, pen_a, pen_z, max_iter, tol, a, bz, last: bool = False):
    for _ in range(max_iter):
        mu = expit(a[trial] + Z @ bz)
        W = np.clip(mu * (1 - mu), 1e-8, None)
        r = y - mu
        ga = st.sums(r) - pen_a * a
        gz = Z.T @ r - pen_z * bz
        h, B, C = hessian_blocks(st, Z, W, pen_a, pen_z)
        da, dz = schur_solve(h, B, C, ga, gz)
        a, bz = a + da, bz + dz
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(bz))):
            return None if not last else np.concatenate([a, bz])
        if max(np.max(np.abs(da), initial=0.0), np.max(np.abs(dz), initial=0.0)) < tol:
            return np.concatenate([a, bz])
    return None if not last else np.concatenate([a, bz])
