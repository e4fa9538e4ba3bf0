"""Penalised (ridge) linear and logistic fits with trial-stratified intercepts, spline bases,
and the shared structure of the linear learners.

Structure (identity link for continuous outcomes, logit for binary)::

    eta = alpha_trial + a_class + P(x) beta + 1[active] (M(x) - Mbar_trial) gamma

``alpha_trial`` trial fixed effects (unpenalised), ``a_class`` comparator offsets relative to the
active class (nearly unpenalised), ``P`` a rich prognostic basis (linear + restricted cubic
splines, weakly penalised), ``M`` the modifier basis centred at its *trial* mean so the
interaction uses within-trial information only (Hua et al. 2017; Riley et al. 2020),
penalised strongly. Penalties are set as prior SDs (empirical-Bayes reading of ridge):
lambda = sigma^2 / s^2 for Gaussian outcomes (sigma from the constant-effect fit), 1 / s^2 on
the log-odds scale. For a new trial the intercept is the size-weighted mean of alpha_trial.
"""
from __future__ import annotations

import numpy as np

from predict.expected_basis import Spread, expect_columns
from predict.linear import basis, compile_basis
from predict.numeric import expit
from training.learners.separation import firth_fit, near_boundary, separated
from training.learners.strata_fit import Strata, block_inverse, hessian_blocks, logistic_strata

RCS_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.5, 0.725, 0.95)}


def make_basis(F: np.ndarray, spec: dict, n_knots: int = 3, splines: bool = True,
               only: list | None = None) -> list:
    """Column specs (linear + RCS terms for continuous features with >= 10 distinct values,
    linear for binary, one-hot for categorical) standardised on the complete matrix F."""
    cols = []
    for j, (name, typ) in enumerate(zip(spec["names"], spec["types"])):
        if only is not None and name not in only:
            continue
        x = F[:, j]
        cand = []
        if typ == "categorical":
            for lv in range(1, len(spec["categories"][name])):
                cand.append({"feature": j, "kind": "onehot", "level": float(lv)})
        else:
            cand.append({"feature": j, "kind": "linear"})
            if typ == "continuous" and splines and np.unique(x).size >= 10 and n_knots >= 3:
                knots = np.quantile(x, RCS_QUANTILES[n_knots])
                if np.unique(knots).size == n_knots:
                    for t in range(n_knots - 2):
                        cand.append({"feature": j, "kind": "rcs", "knots": knots.tolist(), "term": t})
        cols += standardise(cand, F)
    return cols


def design(cols: list, F: np.ndarray, spread: Spread | None = None) -> np.ndarray:
    """The standardised basis columns ``cols`` at the conditionally imputed F; with ``spread`` (the
    missing values' conditional distribution, ``GaussianImputer.spread_train``) the expected basis
    E[B(X) | observed] of the rows with missing values (:mod:`predict.expected_basis`), as the
    scorer evaluates a linear part exported with ``missing`` = "expected"."""
    B = basis(cols, F)
    return B if spread is None or not cols else expect_columns(compile_basis(cols), B, F, spread)


def standardise(cand: list, F: np.ndarray) -> list:
    """The candidate column specs whose basis values vary on ``F``, each given ``loc``/``scale`` =
    the mean and SD of its values there (columns that do not vary are left out)."""
    cols = []
    for c in cand:
        c["loc"], c["scale"] = 0.0, 1.0
        v = basis([c], F)[:, 0]
        sd = float(v.std())
        if sd < 1e-9:
            continue
        c["loc"], c["scale"] = float(v.mean()), sd
        cols.append(c)
    return cols


def trial_centre(M: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """M minus its trial means (one sparse product for all trials' sums)."""
    if M.shape[0] == 0 or M.shape[1] == 0:
        return M.copy()
    _, code = np.unique(trial, return_inverse=True)
    code = code.ravel()
    st = Strata(code, int(code.max()) + 1)
    sums = st.weighted_sums(np.ones(code.size), M)
    return M - (sums / st.counts()[:, None])[code]


def fit_penalised(X: np.ndarray, y: np.ndarray, pen: np.ndarray, family: str, offset: np.ndarray | None = None,
                  max_iter: int = 100, tol: float = 1e-9) -> np.ndarray:
    """argmin of the negative log-likelihood + 0.5 sum(pen * b^2) (Gaussian: least squares +
    sum(pen * b^2)); Newton iterations for the logistic model."""
    off = np.zeros(y.size) if offset is None else offset
    P = np.diag(pen)
    if family == "gaussian":
        return np.linalg.solve(X.T @ X + P + 1e-10 * np.eye(X.shape[1]), X.T @ (y - off))
    b = np.zeros(X.shape[1])
    P2 = P  # for the logistic model the penalty is 0.5 * pen * b^2 on the log-likelihood
    for _ in range(max_iter):
        mu = expit(X @ b + off)
        W = np.clip(mu * (1 - mu), 1e-8, None)
        grad = X.T @ (y - mu) - P2 @ b
        H = (X * W[:, None]).T @ X + P2 + 1e-10 * np.eye(X.shape[1])
        step = np.linalg.solve(H, grad)
        b = b + step
        if np.max(np.abs(step)) < tol:
            break
    return b


class StructuredFit:
    """One fit of the shared linear structure (module docstring) on arrays."""

    def __init__(self, family: str, lam_main: float, lam_int: float, lam_offset: float = 1e-4, lam_trial: float = 0.0):
        self.family, self.lam_main, self.lam_int = family, lam_main, lam_int
        self.lam_offset, self.lam_trial = lam_offset, lam_trial

    def fit(self, y, trial, cls, treat, comps, P, Mw, start: tuple | None = None):
        """``trial`` integer codes 0..J-1; ``Mw`` the modifier basis already trial-centred.
        ``start`` = (alpha per trial code, [offsets, beta, gamma]): where the logistic Newton
        iteration begins (e.g. :func:`replicate_start`; same optimum, fewer steps); ignored
        for Gaussian fits (closed form)."""
        n = y.size
        J = int(trial.max()) + 1
        O = np.column_stack([(cls == c).astype(float) for c in comps]) if comps else np.zeros((n, 0))
        I = Mw * treat[:, None]
        lam_t = self.lam_trial if self.family == "gaussian" else max(self.lam_trial, 1e-3)
        pen = np.concatenate([np.full(J, lam_t), np.full(O.shape[1], self.lam_offset),
                              np.full(P.shape[1], self.lam_main), np.full(I.shape[1], self.lam_int)])
        nj = np.bincount(trial, minlength=J).astype(float)
        Z = np.hstack([O, P, I])
        X = None
        if self.family == "gaussian" and lam_t == 0.0:
            # Unpenalised trial intercepts are profiled out (Frisch-Waugh-Lovell): the penalised
            # least squares of y on [D, Z] has Z's coefficients = the penalised least squares of
            # the within-trial-centred y on the within-trial-centred Z, and alpha_j = mean_j(y - Z b).
            # Same optimum as the full system at O(n k^2) instead of O(n (J + k)^2).
            b = self._fit_within(y, trial, J, nj, Z, pen[J:])
        elif self.family != "gaussian":
            # Newton on the full system with the (diagonal) trial block eliminated in each step
            # (training.learners.strata_fit): the same iterates and optimum without J dummy columns
            b = logistic_strata(y, trial, J, Z, lam_t, pen[J:], start=start)
            b = self._firth_if_separated(b, y, trial, J, Z, pen)
        else:
            D = np.zeros((n, J))
            D[np.arange(n), trial] = 1.0
            X = np.hstack([D, Z])
            b = fit_penalised(X, y, pen, self.family)
        eta = b[:J][trial] + Z @ b[J:]
        self._Z = Z
        self.alpha_trial_ = b[:J]
        alpha_bar = float(np.sum(nj * b[:J]) / nj.sum())
        self.theta_ = np.concatenate([[alpha_bar], b[J:]])
        self.eta_ = eta
        if self.family == "gaussian":
            self.sigma2_ = float(np.sum((y - eta) ** 2) / max(n - pen.size, 1))
        self._X, self._pen, self._nj, self._J, self._trial = X, pen, nj, J, trial
        return self

    def _firth_if_separated(self, b, y, trial, J, Z, pen):
        """Where the data are separated (some fitted probability at 0 or 1 and Konis's LP check,
        training.learners.separation), Firth's bias-reduced fit with the same ridge penalty instead
        of the (barely penalised) maximum likelihood that runs off to infinity; else ``b`` unchanged.
        Sets ``separated_`` (and ``firth_converged_``)."""
        self.separated_, self.firth_converged_ = False, None
        eta = b[:J][trial] + Z @ b[J:]
        if not near_boundary(eta):
            return b
        D = np.zeros((y.size, J))
        D[np.arange(y.size), trial] = 1.0
        X = np.hstack([D, Z])
        if not separated(X[:, pen < 1e11], y):  # "infinite" penalties: terms absent
            return b
        self.separated_ = True
        bf, self.firth_converged_ = firth_fit(X, y, pen)
        return bf

    @staticmethod
    def _fit_within(y, trial, J, nj, Z, pen_z):
        """[alpha_1..J, b] of the Gaussian penalised fit with free trial intercepts (FWL)."""
        ybar, Zbar, Zt, yt = within_trial(y, Z, trial, nj)
        k = Z.shape[1]
        bz = np.linalg.solve(Zt.T @ Zt + np.diag(pen_z) + 1e-10 * np.eye(k), Zt.T @ yt)
        return np.concatenate([ybar - Zbar @ bz, bz])

    def shrinkage_cov(self, sigma2: float) -> np.ndarray:
        """Prior-expected covariance of the ridge shrinkage bias of theta: with
        H = X'WX + Lambda and A = H^-1, E[bias bias'] = sigma2 A Lambda A under the prior that the
        penalty encodes (Nychka 1988: adding it to the sampling variance gives intervals with
        close to nominal coverage averaged over patients). Mapped to theta = [alpha_bar, ...].
        H is assembled from its trial / Z blocks (training.learners.strata_fit), never from the
        n x (J + k) design with trial dummies."""
        J, pen, Z = self._J, self._pen, self._Z
        if self.family == "gaussian":
            W = np.ones(Z.shape[0])
        else:
            mu = expit(self.eta_)
            W = mu * (1 - mu)
        h, B, C = hessian_blocks(Strata(self._trial, J), Z, W, pen[:J], pen[J:])
        A = block_inverse(h, B, C)
        pen_eff = np.where(pen >= 1e11, 0.0, pen)  # "infinite" penalties mean: term absent
        Bm = sigma2 * (A * pen_eff) @ A
        p = J + Z.shape[1]
        T = np.zeros((p - J + 1, p))
        T[0, :J] = self._nj / self._nj.sum()
        T[1:, J:] = np.eye(p - J)
        return T @ Bm @ T.T


def theta_path(family: str, lam_main: float, lam_ints: list, y, trial, cls, treat, comps, P, Mw) -> list:
    """theta of ``StructuredFit(family, lam_main, lam).fit(y, trial, cls, treat, comps, P, Mw[:, :k])``
    for each (lam, k) in ``lam_ints`` (k modifier columns; 0 = the constant-effect model), e.g. a
    penalty grid on one cross-validation fold. Gaussian (free trial intercepts): the within-trial
    cross-products are formed once and each grid value is one k x k solve (the same optimum as
    each fit on its own, up to rounding). Logistic: each fit's Newton iteration starts at the
    previous grid value's optimum (same rows; the same unique optimum, fewer steps)."""
    if family != "gaussian":
        out, f = [], None
        for lam, k in lam_ints:
            start = None if f is None else (f.alpha_trial_, np.concatenate(
                [f.theta_[1:], np.zeros(len(comps) + P.shape[1] + k - (f.theta_.size - 1))]))
            f = StructuredFit(family, lam_main, lam).fit(y, trial, cls, treat, comps, P, Mw[:, :k], start=start)
            out.append(f.theta_)
        return out
    n = y.size
    J = int(trial.max()) + 1
    O = np.column_stack([(cls == c).astype(float) for c in comps]) if comps else np.zeros((n, 0))
    Z = np.hstack([O, P, Mw * treat[:, None]])
    nj = np.bincount(trial, minlength=J).astype(float)
    ybar, Zbar, Zt, yt = within_trial(y, Z, trial, nj)
    G, h = Zt.T @ Zt, Zt.T @ yt
    base = np.concatenate([np.full(O.shape[1], 1e-4), np.full(P.shape[1], lam_main)])
    out = []
    for lam, k in lam_ints:
        q = base.size + k
        bz = np.linalg.solve(G[:q, :q] + np.diag(np.concatenate([base, np.full(k, lam)])) + 1e-10 * np.eye(q), h[:q])
        alpha = ybar - Zbar[:, :q] @ bz
        out.append(np.concatenate([[float(np.sum(nj * alpha) / nj.sum())], bz]))
    return out


def within_trial(y: np.ndarray, Z: np.ndarray, trial: np.ndarray, nj: np.ndarray) -> tuple:
    """Trial means of ``y`` and of each column of ``Z`` (trials with no rows: mean 0) and the
    within-trial deviations ``(ybar, Zbar, Z - Zbar[trial], y - ybar[trial])``: the
    Frisch-Waugh-Lovell step that profiles out free trial intercepts."""
    J = nj.size
    cnt = np.where(nj > 0, nj, 1.0)
    ybar = np.bincount(trial, weights=y, minlength=J) / cnt
    # the columns' trial sums as one sparse product: each trial's rows added in row order, as a
    # bincount per column adds them (the same sums, bit for bit), in one pass over Z
    Zbar = Strata(trial, J).weighted_sums(np.ones(trial.size), Z) / cnt[:, None]
    return ybar, Zbar, Z - Zbar[trial], y - ybar[trial]


class TrialBlocks:
    """Per-trial sufficient statistics of the Gaussian :class:`StructuredFit` (free trial
    intercepts), for the trial-cluster bootstrap: a replicate that draws trial j c_j times has
    the within-trial cross-products sum_j c_j Zt_j'Zt_j and sum_j c_j Zt_j'yt_j (a drawn copy is
    centred within itself, i.e. exactly as the original trial), so its theta costs O(J k^2 + k^3)
    instead of a fit on the replicate's rows. Same theta as ``StructuredFit(...).fit`` on the
    replicate (up to the order of floating-point sums)."""

    def __init__(self, y, trial, cls, treat, comps, P, M, lam_main: float, lam_int: float, lam_offset: float = 1e-4,
                 centred: bool = False):
        # centred: M is taken as given (e.g. training.learners.between.augmented), else centred within trials
        J = int(trial.max()) + 1
        O = np.column_stack([(cls == c).astype(float) for c in comps]) if comps else np.zeros((y.size, 0))
        Z = np.hstack([O, P, (M if centred else trial_centre(M, trial)) * treat[:, None]])
        k = Z.shape[1]
        self.nj = np.bincount(trial, minlength=J).astype(float)
        cnt = np.where(self.nj > 0, self.nj, 1.0)
        self.Sy = np.bincount(trial, weights=y, minlength=J)
        self.SZ = np.empty((J, k))
        for c in range(k):
            self.SZ[:, c] = np.bincount(trial, weights=Z[:, c], minlength=J)
        Zt = Z - (self.SZ / cnt[:, None])[trial]
        yt = y - (self.Sy / cnt)[trial]
        self.G = np.zeros((J, k, k))
        self.h = np.zeros((J, k))
        for j in range(J):
            m = trial == j
            self.G[j] = Zt[m].T @ Zt[m]
            self.h[j] = Zt[m].T @ yt[m]
        self.pen = np.diag(np.concatenate([np.full(O.shape[1], lam_offset), np.full(P.shape[1], lam_main),
                                           np.full(M.shape[1], lam_int)])) + 1e-10 * np.eye(k)

    def theta(self, counts: np.ndarray) -> np.ndarray:
        """theta = [alpha_bar, offsets, beta, gamma] of the replicate drawing trial j counts[j] times."""
        c = np.asarray(counts, float)
        bz = np.linalg.solve(np.tensordot(c, self.G, 1) + self.pen, c @ self.h)
        alpha_bar = (c @ self.Sy - (c @ self.SZ) @ bz) / (c @ self.nj)
        return np.concatenate([[alpha_bar], bz])


def replicate_start(fit: StructuredFit, trial: np.ndarray, idx: np.ndarray, codes: np.ndarray,
                    k: int | None = None) -> tuple:
    """A Newton start for a fit on the rows ``idx`` (trial codes ``codes``) of the data ``fit``
    was fitted on (original trial codes ``trial``): each code's intercept from its original
    trial, the other coefficients from ``fit`` (the first ``k`` of them; zeros beyond)."""
    first = np.unique(codes, return_index=True)[1]
    alpha = np.zeros(int(codes.max()) + 1)
    alpha[codes[first]] = fit.alpha_trial_[trial[idx][first]]
    b = fit.theta_[1:]
    if k is not None:
        b = np.concatenate([b[:k], np.zeros(max(k - b.size, 0))])
    return alpha, b


def replicate_counts(trial: np.ndarray, idx: np.ndarray, codes: np.ndarray, n_trials: int) -> np.ndarray:
    """How often each original trial was drawn in a trial-cluster bootstrap replicate (idx, codes)."""
    first = np.unique(codes, return_index=True)[1]
    return np.bincount(trial[idx][first], minlength=n_trials)


def linear_block(cols: list, centre: np.ndarray | None = None) -> dict:
    return {"type": "basis", "basis": cols, "center": (np.zeros(len(cols)) if centre is None else centre).tolist()}


def prior_lambda(family: str, sigma2: float, prior_sd: float) -> float:
    """Ridge penalty equivalent to a N(0, prior_sd^2) prior on a standardised coefficient."""
    if not np.isfinite(prior_sd) or prior_sd <= 0:
        return 1e12
    return (sigma2 if family == "gaussian" else 1.0) / prior_sd ** 2


def linear_benefit(theta: np.ndarray, P: np.ndarray, Mc: np.ndarray, comps: list, family: str) -> dict:
    """Benefit per comparator from theta = [alpha_bar, offsets, beta, gamma] at P and the
    modifier basis already centred (M - Mbar)."""
    C = len(comps)
    a0, off = theta[0], theta[1:1 + C]
    beta = theta[1 + C:1 + C + P.shape[1]]
    gamma = theta[1 + C + P.shape[1]:]
    base = a0 + P @ beta
    ea = base + (Mc @ gamma if gamma.size else 0.0)
    out = {}
    for i, c in enumerate(comps):
        ec = base + off[i]
        out[c] = ec - ea if family == "gaussian" else expit(ea) - expit(ec)
    return out
