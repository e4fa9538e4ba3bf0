"""Each fitted trial's class deviation estimated jointly with the same trial's deviations in
related tasks (other follow-ups, other outcomes): a multivariate empirical-Bayes BLUP.

Measured in ``benchmarks/diag_in_trial.py`` (issue 23, session 11): not adopted (it did not lower the
in-trial PEHE), so it lives here, beside the package's univariate estimator
(``training.learners.trial_specific.univariate_deviations``). Component 0 is the task of interest; components
1..K-1 are residuals of learners of related tasks for the *same participants* (NaN where a
participant has no value there). Per trial t and comparator class c (>= 2 participants in both arms
for component 0):

- raw deviations d_t,k = mean residual_k in the active arm - in the class's arm (oriented: larger =
  active better), with the within-trial covariance S_t,kl = sum over the two arms of
  cov_arm(r_k, r_l) n_kl / (n_k n_l) (n_kl participants with both; the covariance of two arm means);
- between-trial covariance Sigma_c = D_c R D_c: D_c the per-component REML SDs (as the univariate
  estimator: classes with < ``min_trials`` trials borrow the SD pooled over classes); R the
  between-trial correlation, by moments pooled over classes (cross-products of the class-centred raw
  deviations minus the mean within-trial covariance, over the moment variances; clipped to [-1, 1]
  and projected to the nearest positive semi-definite correlation matrix by eigenvalue clipping);
- mu_c by GLS with weights (Sigma_c + S_t)^-1, and the BLUP of component 0,
  u_t = mu_c,0 + [Sigma_c (Sigma_c + S_t)^-1 (d_t - mu_c)]_0 over the components the trial has.
  Posterior variance: [Sigma - Sigma (Sigma + S_t)^-1 Sigma]_00 + (1 - [Sigma (Sigma + S_t)^-1]_00)^2 Var(mu_c,0)
  (the mean's uncertainty entered as in the univariate estimator; an approximation).

With K = 1 this is the univariate estimator of ``trial_specific`` (same tau, mu, BLUP). A component
whose tau is 0 carries no deviation, and if the task of interest has tau 0 every trial gets mu (no
spread is invented from the related tasks). Reference: the multivariate random-effects model of
Jackson, Riley & White (2011, Stat Med 30:2481) with a method-of-moments correlation; the BLUP as in
Riley et al. (2007, Stat Med 26:78) for borrowing strength between correlated outcomes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.learners.intervals import tau_from_deviations, trial_deviations

COLUMNS = ["trial", "comparator", "n_active", "n_comparator", "raw", "se", "mu", "tau", "shrinkage", "blup", "post_sd"]


def _arm_cov(R: np.ndarray) -> np.ndarray:
    """Covariance of the arm means of the columns of R (rows = participants, NaN = absent)."""
    K = R.shape[1]
    fin = np.isfinite(R)
    n = fin.sum(0)
    S = np.zeros((K, K))
    for k in range(K):
        for l in range(k, K):
            both = fin[:, k] & fin[:, l]
            nb = both.sum()
            if nb < 3 or n[k] < 2 or n[l] < 2:
                continue
            a, b = R[both, k], R[both, l]
            c = float(np.sum((a - a.mean()) * (b - b.mean())) / (nb - 1))
            S[k, l] = S[l, k] = c * nb / (n[k] * n[l])
    return S


def raw_deviations(R: np.ndarray, trial: np.ndarray, cls: np.ndarray, active: str, comps: list) -> list:
    """Per trial x class (>= 2 per arm in component 0): (trial, class, n_a, n_c, d (K,), S (K, K))."""
    out = []
    for t in np.unique(trial):
        m = trial == t
        a = m & (cls == active)
        for c in comps:
            b = m & (cls == c)
            fa, fb = np.isfinite(R[a]), np.isfinite(R[b])
            if fa[:, 0].sum() < 2 or fb[:, 0].sum() < 2:
                continue
            ok = (fa.sum(0) >= 2) & (fb.sum(0) >= 2)
            with np.errstate(invalid="ignore"):
                d = np.where(ok, np.nanmean(np.where(fa, R[a], np.nan), 0) - np.nanmean(np.where(fb, R[b], np.nan), 0),
                             np.nan)
            S = _arm_cov(R[a]) + _arm_cov(R[b])
            if S[0, 0] <= 0:
                continue
            out.append((str(t), c, int(fa[:, 0].sum()), int(fb[:, 0].sum()), d, S))
    return out


def between_correlation(rows: list, K: int) -> np.ndarray:
    """Between-trial correlation of the K components by moments pooled over classes (see module)."""
    C, V, N = np.zeros((K, K)), np.zeros(K), np.zeros((K, K))
    for c in {r[1] for r in rows}:
        D = np.array([r[4] for r in rows if r[1] == c])
        S = np.array([r[5] for r in rows if r[1] == c])
        if len(D) < 2:
            continue
        for k in range(K):
            for l in range(K):
                both = np.isfinite(D[:, k]) & np.isfinite(D[:, l])
                nb = both.sum()
                if nb < 2:
                    continue
                dk, dl = D[both, k] - D[both, k].mean(), D[both, l] - D[both, l].mean()
                C[k, l] += float(np.sum(dk * dl)) - (nb - 1) * float(np.mean(S[both, k, l]))
                N[k, l] += nb - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(N > 0, C / np.where(N > 0, N, 1), 0.0)
    V = np.diag(C).copy()
    R = np.eye(K)
    for k in range(K):
        for l in range(K):
            if k != l and V[k] > 0 and V[l] > 0:
                R[k, l] = np.clip(C[k, l] / np.sqrt(V[k] * V[l]), -1.0, 1.0)
    w, U = np.linalg.eigh((R + R.T) / 2)
    R = (U * np.clip(w, 0.0, None)) @ U.T
    s = np.sqrt(np.clip(np.diag(R), 1e-12, None))
    return R / np.outer(s, s)


def multivariate_deviations(R: np.ndarray, trial: np.ndarray, cls: np.ndarray, active: str, comps: list,
                            min_trials: int = 3) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """BLUPs of component 0's class deviations (see module). ``R``: (n, K) oriented residuals,
    column 0 the task of interest. Returns (one row per trial x class with the columns of
    ``InTrialBenefit.deviations_``, {class: tau of component 0, '__pooled__': ...}, the
    between-trial correlation matrix)."""
    R = np.asarray(R, float)
    K = R.shape[1]
    taus = [tau_from_deviations(trial_deviations(R[:, k], trial, cls, active, comps), comps, min_trials)
            for k in range(K)]
    rows = raw_deviations(R, trial, cls, active, comps)
    Rho = between_correlation(rows, K)
    out = []
    for c in comps:
        rc = [r for r in rows if r[1] == c]
        if not rc:
            continue
        sd = np.array([taus[k][c] for k in range(K)])
        Sig = Rho * np.outer(sd, sd)
        D = np.array([r[4] for r in rc])
        Ss = [r[5] for r in rc]
        avail = [np.flatnonzero(np.isfinite(d)) for d in D]
        A, bvec = np.zeros((K, K)), np.zeros(K)  # GLS for mu (components seen in any trial)
        Ms = []
        for d, S, ix in zip(D, Ss, avail):
            M = np.linalg.pinv(Sig[np.ix_(ix, ix)] + S[np.ix_(ix, ix)])
            Ms.append(M)
            A[np.ix_(ix, ix)] += M
            bvec[ix] += M @ d[ix]
        seen = np.flatnonzero(np.diag(A) > 0)
        Ainv = np.linalg.pinv(A[np.ix_(seen, seen)])
        mu = np.zeros(K)
        mu[seen] = Ainv @ bvec[seen]
        var_mu0 = float(Ainv[list(seen).index(0), list(seen).index(0)])
        for r, d, S, ix, M in zip(rc, D, Ss, avail, Ms):
            G = Sig[0, ix] @ M  # (|ix|,): row 0 of Sigma (Sigma + S)^-1
            blup = mu[0] + float(G @ (d[ix] - mu[ix]))
            B0 = float(G[0])  # ix always contains 0, first
            cond = float(Sig[0, 0] - G @ Sig[ix, 0])
            out.append({"trial": r[0], "comparator": c, "n_active": r[2], "n_comparator": r[3], "raw": float(d[0]),
                        "se": float(np.sqrt(S[0, 0])), "mu": mu[0], "tau": sd[0], "shrinkage": B0, "blup": blup,
                        "post_sd": float(np.sqrt(max(cond, 0.0) + (1 - B0) ** 2 * var_mu0))})
    return pd.DataFrame(out, columns=COLUMNS), taus[0], Rho
