"""Rubin's rules: pool the estimates of M analyses of multiply imputed data sets.

For a parameter vector Q estimated on each of M completed data sets (estimates Q_m, covariances
U_m)::

    Qbar = mean_m Q_m                      pooled estimate
    Ubar = mean_m U_m                      within-imputation variance
    B    = cov_m(Q_m) (ddof = 1)           between-imputation variance
    T    = Ubar + (1 + 1/M) B              total variance

Per component, with lambda = (1 + 1/M) B / T (the share of the variance due to missing data) and
r = (1 + 1/M) B / Ubar (the relative increase in variance), the degrees of freedom are Barnard &
Rubin's (1999, Biometrika 86:948) small-sample version::

    nu_old = (M - 1) / lambda^2
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lambda)
    nu     = nu_old * nu_obs / (nu_old + nu_obs)

with nu_com the complete-data degrees of freedom (infinite for z-based analyses: then nu = nu_old,
Rubin 1987). The fraction of missing information is (r + 2 / (nu + 3)) / (r + 1). Intervals are
Qbar +- t_{nu, 1 - alpha/2} sqrt(T). A joint test of k components uses Li, Raghunathan & Rubin's
(1991) D1 statistic, F on (k, nu_1).

Checked against statsmodels' ``MICE.combine`` (Qbar, T) and R ``mice::pool.scalar`` /
``mice::pool`` (Barnard-Rubin df, fmi), see tests/test_impute_rubin.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Pooled:
    """Rubin's rules result for k parameters (arrays of length k; ``T``/``Ubar``/``B`` k x k)."""

    estimate: np.ndarray
    Ubar: np.ndarray
    B: np.ndarray
    T: np.ndarray
    m: int
    df: np.ndarray
    riv: np.ndarray
    lam: np.ndarray
    fmi: np.ndarray

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.T), 0.0, None))

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        q = stats.t.ppf(0.5 + level / 2, np.where(np.isfinite(self.df), self.df, 1e12))
        return self.estimate - q * self.se, self.estimate + q * self.se

    def p(self) -> np.ndarray:
        z = np.abs(self.estimate) / np.where(self.se > 0, self.se, np.nan)
        return 2 * stats.t.sf(z, np.where(np.isfinite(self.df), self.df, 1e12))


def barnard_rubin_df(m: int, lam: np.ndarray, df_com: float = np.inf) -> np.ndarray:
    """Barnard-Rubin (1999) degrees of freedom for m imputations, missing-data share ``lam``
    and complete-data df ``df_com`` (``inf``: Rubin's 1987 df (m - 1) / lam^2)."""
    lam = np.clip(np.asarray(lam, float), 1e-12, 1.0)
    nu_old = (m - 1) / lam ** 2
    if not np.isfinite(df_com):
        return nu_old
    nu_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
    return nu_old * nu_obs / (nu_old + nu_obs)


def pool(estimates, covariances, df_com: float = np.inf) -> Pooled:
    """Pool M estimates (M x k, or M for one parameter) with their covariances (M x k x k, or
    M variances / M x k variances) by Rubin's rules (module docstring)."""
    Q = np.asarray(estimates, float)
    if Q.ndim == 1:
        Q = Q[:, None]
    M, k = Q.shape
    if M < 2:
        raise ValueError("Rubin's rules need at least 2 imputations")
    U = np.asarray(covariances, float)
    if U.ndim == 1:
        U = U[:, None, None]
    elif U.ndim == 2:  # variances per component
        U = np.stack([np.diag(u) for u in U])
    if U.shape != (M, k, k):
        raise ValueError(f"covariances must be {M} x {k} x {k}; got {U.shape}")
    qbar = Q.mean(axis=0)
    ubar = U.mean(axis=0)
    B = np.atleast_2d(np.cov(Q, rowvar=False, ddof=1))
    T = ubar + (1 + 1 / M) * B
    b, u, t = np.diag(B), np.diag(ubar), np.diag(T)
    lam = np.where(t > 0, (1 + 1 / M) * b / np.where(t > 0, t, 1.0), 0.0)
    riv = np.where(u > 0, (1 + 1 / M) * b / np.where(u > 0, u, 1.0), np.inf)
    df = np.where(b > 0, barnard_rubin_df(M, lam, df_com), df_com if np.isfinite(df_com) else np.inf)
    r_fin = np.where(np.isfinite(riv), riv, 0.0)  # (no within variance: all information missing, fmi 1)
    fmi = np.where(np.isfinite(riv), (r_fin + 2 / (np.where(np.isfinite(df), df, 1e300) + 3)) / (r_fin + 1), 1.0)
    return Pooled(qbar, ubar, B, T, M, df, riv, lam, fmi)


def d1_test(p: Pooled, index=None) -> dict:
    """Joint Wald test that the components ``index`` of a pooled estimate are 0: Li, Raghunathan &
    Rubin's (1991) D1 = Qbar' Ubar^-1 Qbar / (k (1 + r)), r = (1 + 1/M) tr(B Ubar^-1) / k, on an
    F(k, nu_1) reference (nu_1: Li et al.'s 4 + (t - 4)(1 + (1 - 2/t)/r)^2 with t = k(M - 1) > 4,
    else t (1 + 1/k)(1 + 1/r)^2 / 2; large-sample: no complete-data df correction)."""
    idx = np.arange(p.estimate.size) if index is None else np.asarray(index)
    q = p.estimate[idx]
    U = p.Ubar[np.ix_(idx, idx)]
    B = p.B[np.ix_(idx, idx)]
    k, M = idx.size, p.m
    Uinv = np.linalg.inv(U)
    r = (1 + 1 / M) * float(np.trace(B @ Uinv)) / k
    D1 = float(q @ Uinv @ q) / (k * (1 + r))
    t = k * (M - 1)
    if r <= 0:
        nu1 = np.inf
    elif t > 4:
        nu1 = 4 + (t - 4) * (1 + (1 - 2 / t) / r) ** 2
    else:
        nu1 = t * (1 + 1 / k) * (1 + 1 / r) ** 2 / 2
    pval = float(stats.f.sf(D1, k, nu1)) if np.isfinite(nu1) else float(stats.chi2.sf(D1 * k, k))
    return {"statistic": D1, "df1": k, "df2": nu1, "p": pval, "riv": r}
