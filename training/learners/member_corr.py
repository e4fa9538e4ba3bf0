"""The correlation of a stack's members' estimation errors, from the IECV folds (issue 23, session 13).

A stack's benefit is sum_k w_k b_k(x); its estimation variance is w' Sigma w with
Sigma_jk = rho_jk SE_j SE_k, where SE_k is member k's own trial-cluster bootstrap SE and rho_jk
the correlation of the members' estimation errors. Until session 13 every stack used rho = 1
(the members' SEs added, the largest variance any correlation allows); on data written outside
the team the members' error correlations were 0.28-0.71 and the served SE about 25% above the
error (BENCHMARKS.md, session 12 s12i).

Estimator (no truth needed): the IECV folds already refit every member leaving one trial (or,
with many trials, one group of trials) out. Each fold's members predict the same reference
patients (a fixed subsample of the task's training rows, :func:`reference_rows`), which gives
J leave-one-cluster-out replicates b_(j)k(x_i) of every member's benefit at every reference
patient. Their jackknife covariance across members,

    C_jk = sum_i sum_f (b_(f)j(x_i) - mean_f b_(f)j(x_i)) (b_(f)k(x_i) - mean_f b_(f)k(x_i)),

estimates (up to the jackknife's factor (J - 1) / J, or (G - 1) / G for G groups, which cancels in
the correlation) the trial-cluster sampling covariance of the members' benefits: the delete-one
(delete-group) jackknife and the cluster bootstrap agree to first order for smooth statistics
(Efron 1981, "Nonparametric estimates of standard error: the jackknife, the bootstrap and other
methods", Biometrika 68:589; Efron & Stein 1981; for clusters deleted whole, Shao & Tu 1995,
"The Jackknife and Bootstrap", sec. 2.3 and 6.2), so it is the correlation that matches the members'
own SEs, which come from a trial-cluster bootstrap. The correlation is pooled over reference
patients by summing their covariances before normalising (a variance-weighted average of the
patients' correlations; positive semi-definite by construction), per comparator.

Few trials make it noisy, and a correlation estimated too low gives an interval too narrow, so it
is shrunk towards 1 (the old, conservative rule): R_s = (1 - lam) R + lam 11', with lam chosen so
that the mean off-diagonal correlation rho_bar moves to its one-SE upper bound on the Fisher z
scale, tanh(atanh(rho_bar) + 1 / sqrt(J - 3)) (about an 84% one-sided upper confidence bound;
Fisher 1921). A convex combination of two correlation matrices stays one (positive semi-definite,
unit diagonal). With fewer than :data:`MIN_FOLDS` folds R_s = 11' (the old rule).

What it does not estimate: a member's bias (its error that the refits share, e.g. a shape no member
can fit). The model-averaging (between-member) term of the stack's interval stays for that
(``predict.uncertainty.between_variance``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: reference patients predicted by every fold's members (a fixed subsample of the task's rows)
REF_ROWS = 200
#: fewer folds than this: no estimate (the members' SEs added, rho = 1)
MIN_FOLDS = 5


def reference_rows(X: pd.DataFrame, n: int = REF_ROWS, seed: int = 0) -> pd.DataFrame:
    """A fixed subsample of ``n`` rows of ``X`` (all of them if fewer), in their original order."""
    if len(X) <= n:
        return X
    idx = np.sort(np.random.default_rng(seed).choice(len(X), size=n, replace=False))
    return X.iloc[idx]


def shrink_to_one(R: np.ndarray, folds: int) -> tuple[np.ndarray, float]:
    """(R shrunk towards the all-ones matrix as the module docstring says, the weight lam of 11')."""
    K = R.shape[0]
    if K < 2:
        return np.ones((K, K)), 1.0
    if folds < MIN_FOLDS:
        return np.ones((K, K)), 1.0
    off = R[~np.eye(K, dtype=bool)]
    rbar = float(np.clip(off.mean(), -0.999999, 0.999999))
    if rbar >= 0.999999:
        return np.ones((K, K)), 1.0
    upper = float(np.tanh(np.arctanh(rbar) + 1.0 / np.sqrt(folds - 3)))
    lam = float(np.clip((upper - rbar) / (1.0 - rbar), 0.0, 1.0))
    return (1.0 - lam) * R + lam * np.ones((K, K)), lam


def jackknife_corr(reps: np.ndarray) -> tuple[np.ndarray, int]:
    """(K x K correlation pooled over reference patients, folds used) from ``reps`` (J folds, n
    reference patients, K members) of the members' benefit; folds where a member has no prediction
    for a patient leave that patient's fold out (complete cases per patient). A member whose
    benefit never moves across folds gets correlation 1 with every other (conservative)."""
    reps = np.asarray(reps, float)
    J, n, K = reps.shape
    ok = np.isfinite(reps).all(axis=2)  # (J, n)
    C = np.zeros((K, K))
    for i in range(n):
        f = ok[:, i]
        if f.sum() < 2:
            continue
        d = reps[f, i, :] - reps[f, i, :].mean(axis=0)
        C += d.T @ d
    used = int(ok.any(axis=1).sum())
    sd = np.sqrt(np.diag(C))
    R = np.ones((K, K))
    good = sd > 1e-12 * max(float(sd.max(initial=0.0)), 1e-300)
    for j in range(K):
        for k in range(K):
            if j != k and good[j] and good[k]:
                R[j, k] = float(np.clip(C[j, k] / (sd[j] * sd[k]), -1.0, 1.0))
    return R, used


def member_correlations(fold_refs: list, learners: list) -> dict | None:
    """The IECV's member correlation: ``fold_refs`` one dict per fold {learner: {comparator: benefit
    at the reference patients}} (``training.iecv.run_fold``); ``learners`` their order. Returns
    {"learners": [...], "folds": J, "corr": {c: K x K shrunk}, "raw": {c: K x K}, "shrink": {c: lam}}
    or None without folds."""
    fold_refs = [f for f in fold_refs if f]
    if not fold_refs:
        return None
    names = [n for n in learners if any(n in f for f in fold_refs)]
    comps = sorted({c for f in fold_refs for d in f.values() for c in d})
    n = max(len(a) for f in fold_refs for d in f.values() for a in d.values())
    out = {"learners": names, "folds": len(fold_refs), "corr": {}, "raw": {}, "shrink": {}}
    for c in comps:
        reps = np.full((len(fold_refs), n, len(names)), np.nan)
        for j, f in enumerate(fold_refs):
            for k, name in enumerate(names):
                a = f.get(name, {}).get(c)
                if a is not None:
                    reps[j, :, k] = a
        R, used = jackknife_corr(reps)
        Rs, lam = shrink_to_one(R, used)
        out["raw"][c], out["corr"][c], out["shrink"][c] = R, Rs, lam
    return out


def submatrix(mc: dict | None, names: list) -> dict | None:
    """{comparator: correlation among ``names`` (in that order)} from :func:`member_correlations`,
    or None if any name is missing."""
    if not mc or any(n not in mc["learners"] for n in names):
        return None
    idx = [mc["learners"].index(n) for n in names]
    return {c: np.asarray(R)[np.ix_(idx, idx)] for c, R in mc["corr"].items()}
