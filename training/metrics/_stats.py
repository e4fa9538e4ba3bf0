"""Small numerical helpers: OLS / logistic fits with sandwich SEs, loess, concordance."""
from __future__ import annotations

import numpy as np
from scipy import stats

from predict.errors import LbpError


# ----------------------------------------------------------------------------- concordance
def _n_tied_pairs(x: np.ndarray) -> float:
    """Pairs with equal ``x`` (sum over distinct values of count * (count - 1) / 2): the counts of
    ``np.unique(x, return_counts=True)`` from one sort, without its per-call overhead."""
    n = x.shape[0]
    if n < 2:
        return 0.0
    s = np.sort(x)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    counts = np.diff(np.append(starts, n))
    return float((counts * (counts - 1) / 2).sum())


def concordance_counts(pred: np.ndarray, obs: np.ndarray) -> tuple[float, float]:
    """Harrell-type concordance counts of ``pred`` against ``obs``.

    Only pairs with different ``obs`` are comparable; a comparable pair scores 1 if ``pred``
    is ordered as ``obs``, 1/2 if ``pred`` is tied, 0 otherwise. Returns (score, n_comparable)
    so that C = score / n_comparable. O(n log n) via Kendall's P - Q:
    score = (n_comparable + (P - Q)) / 2.
    """
    n = obs.shape[0]
    if n < 2:
        return 0.0, 0.0
    n0 = n * (n - 1) / 2.0
    den = n0 - _n_tied_pairs(obs)
    if den <= 0:
        return 0.0, 0.0
    tp = _n_tied_pairs(pred)
    if tp >= n0:  # pred constant: every comparable pair is a tie in pred
        return den / 2.0, den
    if n <= DIRECT_MAX_N:
        p_minus_q = _p_minus_q_direct(pred, obs)
    else:
        tau = stats.kendalltau(pred, obs, variant="b").statistic
        p_minus_q = float(tau) * np.sqrt((n0 - tp) * den)
        p_minus_q = float(np.round(p_minus_q))  # P - Q is an integer
    return (den + p_minus_q) / 2.0, den


DIRECT_MAX_N = 200  # up to this size P - Q by the O(n^2) sign products (exact; faster than scipy's
# O(n log n) kendalltau there, whose per-call overhead dominated the bootstrap of c-for-benefit)


def _p_minus_q_direct(pred: np.ndarray, obs: np.ndarray) -> float:
    """Kendall's P - Q (concordant minus discordant pairs) counted directly: sum over i < j of
    sign(pred_i - pred_j) sign(obs_i - obs_j) (an exact integer)."""
    pred = np.asarray(pred, float)
    obs = np.asarray(obs, float)
    sp = np.sign(pred[:, None] - pred[None, :])
    so = np.sign(obs[:, None] - obs[None, :])
    return float(np.einsum("ij,ij->", sp, so)) / 2.0


def stratified_concordance(pred: np.ndarray, obs: np.ndarray, strata: np.ndarray | None) -> tuple[float, float]:
    if strata is None:
        return concordance_counts(pred, obs)
    num = den = 0.0
    for rows in stratum_rows(strata):
        a, b = concordance_counts(pred[rows], obs[rows])
        num += a
        den += b
    return num, den


def stratum_rows(strata: np.ndarray) -> list:
    """The row positions of each distinct value of ``strata``, values in sorted order and rows in
    their original order: ``[np.flatnonzero(strata == s) for s in np.unique(strata)]`` from one
    stable sort (no mask over all rows per stratum)."""
    strata = np.asarray(strata)
    n = strata.shape[0]
    if n == 0:
        return []
    order = np.arange(n) if n < 2 or bool(np.all(strata[1:] >= strata[:-1])) else np.argsort(strata, kind="stable")
    s = strata[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    return np.split(order, starts[1:])


# ----------------------------------------------------------------------------- regression
def ols_sandwich(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, se: str):
    """OLS with HC3 (``se='hc3'``) or CR1 cluster-robust (``se='cluster'``) covariance.

    Returns (beta, cov, df) where df is n - p for HC3 and G - 1 for CR1 (t reference)."""
    n, p = X.shape
    rank = np.linalg.matrix_rank(X)
    if rank < p:
        raise LbpError("design matrix is rank deficient (e.g. constant predicted benefit)")
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ y
    e = y - X @ beta
    if se == "cluster":
        G = np.unique(groups).shape[0]
        if G < 2:
            raise LbpError("cluster-robust SE needs at least 2 clusters")
        meat = np.zeros((p, p))
        for g in np.unique(groups):
            m = groups == g
            s = X[m].T @ e[m]
            meat += np.outer(s, s)
        c = G / (G - 1) * (n - 1) / max(n - p, 1)
        cov = c * bread @ meat @ bread
        df = G - 1
    elif se == "hc3":
        h = np.einsum("ij,jk,ik->i", X, bread, X)
        w = (e / np.clip(1 - h, 1e-10, None)) ** 2
        cov = bread @ (X.T * w) @ X @ bread
        df = max(n - p, 1)
    else:
        raise LbpError(f"se must be 'hc3' or 'cluster', got {se!r}")
    return beta, cov, df


def logistic_fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None,
                 max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton-Raphson (no penalty); under separation
    Firth's estimate instead (:func:`logistic_fit_firth`)."""
    return logistic_fit_firth(X, y, offset, max_iter, tol)[0]


def logistic_fit_firth(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None,
                       max_iter: int = 100, tol: float = 1e-10) -> tuple[np.ndarray, bool]:
    """(estimate, firth): the maximum-likelihood logistic regression by Newton-Raphson (no penalty),
    ``firth`` False. Where that fails - no convergence, a coefficient beyond 50 on the log-odds scale, a
    singular information - and Konis's LP test finds the data separated, the maximum-likelihood
    estimate does not exist: Firth's penalised-likelihood estimate instead (same offset), ``firth``
    True (training.learners.firth_profile). Otherwise LbpError, saying whether separation was found."""
    n, p = X.shape
    off = np.zeros(n) if offset is None else offset
    beta = np.zeros(p)
    converged = False
    for _ in range(max_iter):
        eta = off + X @ beta
        mu = 1 / (1 + np.exp(-eta))
        W = np.clip(mu * (1 - mu), 1e-12, None)
        grad = X.T @ (y - mu)
        H = X.T @ (X * W[:, None])
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            break
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    if converged and np.all(np.isfinite(beta)) and np.max(np.abs(beta)) <= 50:
        return beta, False
    from training.learners.firth_profile import firth  # only here: the learners package is heavy to import
    from training.learners.separation import separated

    if separated(X, y):
        f = firth(X, y, off)
        if f.converged:
            return f.beta, True
        raise LbpError("logistic fit: separation (Konis's LP test), and Firth's penalised-likelihood fit did not converge")
    raise LbpError("logistic fit did not converge (no separation found by Konis's LP test)")


def logistic_cov(X, y, beta, offset, groups, se: str):
    """Covariance for a logistic fit: 'quasi' (Pearson-dispersion scaled model-based),
    'hc0' sandwich, or 'cluster' (CR1). Returns (cov, df) where df=None means normal reference."""
    n, p = X.shape
    off = np.zeros(n) if offset is None else offset
    mu = 1 / (1 + np.exp(-(off + X @ beta)))
    W = np.clip(mu * (1 - mu), 1e-12, None)
    bread = np.linalg.inv(X.T @ (X * W[:, None]))
    r = y - mu
    if se == "quasi":
        phi = float(np.sum(r**2 / W) / max(n - p, 1))
        return bread * phi, max(n - p, 1)
    if se == "hc0":
        meat = (X * (r**2)[:, None]).T @ X
        return bread @ meat @ bread, None
    if se == "cluster":
        G = np.unique(groups).shape[0]
        if G < 2:
            raise LbpError("cluster-robust SE needs at least 2 clusters")
        meat = np.zeros((p, p))
        for g in np.unique(groups):
            m = groups == g
            s = X[m].T @ r[m]
            meat += np.outer(s, s)
        return G / (G - 1) * bread @ meat @ bread, G - 1
    raise LbpError(f"unknown se {se!r}")


def wald_ci(est: float, se: float, df: float | None, level: float) -> tuple[float, float]:
    q = stats.norm.ppf(0.5 + level / 2) if df is None else stats.t.ppf(0.5 + level / 2, df)
    return est - q * se, est + q * se


# ----------------------------------------------------------------------------- smoother
def loess(x: np.ndarray, y: np.ndarray, x_eval: np.ndarray | None = None, *, span: float = 0.75,
          degree: int = 2, chunk: int = 512) -> np.ndarray:
    """Local polynomial regression (Cleveland's loess without robustness iterations), as R's
    ``loess(y ~ x, span=0.75, degree=2, family='gaussian')`` evaluated exactly (no kd-tree
    interpolation): at each point the nearest ``ceil(span*n)`` observations get tricube weights
    on distance / (distance to the farthest of them) and a weighted polynomial fit of ``degree``.
    Reproduces any polynomial of degree <= ``degree`` exactly."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = x.shape[0]
    if x_eval is None:
        x_eval = x
    x_eval = np.asarray(x_eval, float)
    if n < degree + 1:
        raise LbpError(f"loess needs at least {degree + 1} points, got {n}")
    q = int(min(n, max(degree + 1, np.floor(span * n))))
    scale = np.std(x) or 1.0
    xs, xe = x / scale, x_eval / scale
    out = np.empty(xe.shape[0])
    for s in range(0, xe.shape[0], chunk):
        x0 = xe[s:s + chunk]
        dx = xs[None, :] - x0[:, None]
        d = np.abs(dx)
        h = np.partition(d, q - 1, axis=1)[:, q - 1]
        h = np.where(h <= 0, 1e-12, h) * (1 + 1e-10)
        if span > 1:  # R: enlarge the bandwidth beyond the range
            h = h * span
        u = np.clip(d / h[:, None], 0, 1)
        w = (1 - u**3) ** 3
        mom = [w.sum(axis=1)]
        wy = [(w * y[None, :]).sum(axis=1)]
        pw = w
        for k in range(1, 2 * degree + 1):
            pw = pw * dx
            mom.append(pw.sum(axis=1))
            if k <= degree:
                wy.append((pw * y[None, :]).sum(axis=1))
        mom = np.stack(mom, axis=1)
        A = np.stack([mom[:, j:j + degree + 1] for j in range(degree + 1)], axis=1)
        b = np.stack(wy, axis=1)
        try:
            coef = np.linalg.solve(A, b[:, :, None])[:, :, 0]
            if not np.all(np.isfinite(coef)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            coef = np.einsum("mjk,mk->mj", np.linalg.pinv(A, rcond=1e-10), b)
        out[s:s + chunk] = coef[:, 0]
    return out
