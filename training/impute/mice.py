"""Multilevel multiple imputation by chained equations (MICE) that includes outcome and treatment.

Why: a covariate imputed without the outcome and treatment (the conditional-mean model of
``training.learners.missing``) carries no trace of how it modifies the treatment effect, so
interactions estimated on imputed rows are attenuated towards zero. Here every incomplete covariate
x_j gets a conditional model given the other covariates, the outcome y, the treatment t and t x y
(so the joint distribution of x_j, y and t, i.e. the interaction, is preserved: White, Royston &
Wood 2011; Tilling et al. 2016 for interactions), with trial intercepts that respect clustering:

- **continuous** x_j: x_j = a_k + Z beta + e, e ~ N(0, s^2): trial fixed intercepts a_k (within-trial
  least squares), proper draws (beta*, s*) from the posterior under a flat prior (Rubin 1987;
  ``mice``'s ``norm``), a_k* | beta* ~ N(mean_k(x_j - Z beta*), s*^2 / n_k); the imputed value is
  then an observed value by predictive mean matching (a random one of the 5 donors whose predicted
  means are closest to the missing row's drawn prediction; ``mice``'s ``pmm``, ``micemd``'s
  ``2l.2stage.pmm``), which keeps skewed covariates (episode duration) inside their observed shape
  - a normal draw put implausible values there and distorted every interaction;
- **binary** x_j: logistic with a global intercept and penalised trial deviations (N(0, 3^2) on
  the logit scale, so that trials where x_j is all 0 or all 1 stay finite), draws from the
  normal approximation N(b_hat, H^-1), x_j* ~ Bernoulli;
- **categorical** x_j: hot deck, a donor's level drawn from the same trial (or, for a trial that
  never measured x_j, from a random trial that did) - crude, stated;
- **systematically missing** x_j (the trial never measured it): the trial's intercept is not
  estimable, so it is drawn from the distribution of the other trials' intercepts,
  a_k* ~ N(mu*, tau*^2), with mu and tau^2 from the estimated intercepts by DerSimonian-Laird
  moments (a two-stage random-intercept model in the spirit of ``micemd``'s ``2l.2stage``;
  Resche-Rigon & White 2018), mu* ~ N(mu_hat, var(mu_hat)) and tau*^2 = tau_hat^2 (K - 1) / chi2_{K-1}
  over the K trials that measured it (heterogeneity between trials is imputed, not assumed away).

The chain starts at the conditional means (``GaussianImputer``), sweeps the incomplete covariates
in order of increasing missingness, and keeps one completed data set every ``n_between`` sweeps
after ``n_burn`` burn-in sweeps (a single chain, as ``jomo`` does). The outcome enters by arm
(y, t and t x y), so the covariate's relation to the outcome may differ between the arms - which is
what an interaction is - while the other covariates' coefficients and the trial intercepts are
shared by the arms (fitting every model separately by arm left too few comparator rows for
covariates measured in a few trials, and the noisy comparator-arm slopes biased the interactions).
Predictive-mean-matching donors come from the same arm (a normal draw with one residual variance
for both arms attenuated the interaction to about 60% in tests/test_impute_mice.py's setting). Predictors are standardised once (from the starting values).

Libraries: scikit-learn's ``IterativeImputer`` and statsmodels' ``MICE`` impute from pooled
(single-level) models without trial effects, so a systematically missing covariate would get one
distribution for every trial; neither has a random-intercept conditional model, hence this module.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator

from predict.numeric import expit
from training.learners.missing import GaussianImputer

TRIAL_PRIOR_SD = 3.0  # logit-scale prior SD of a trial's deviation (binary covariates)
PMM_DONORS = 5  # predictive mean matching donors (mice's default)
PRED_PRIOR_SD = 3.0  # logit-scale prior SD per predictor SD (keeps separated fits finite)


def dersimonian_laird(a: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """(mu, var(mu), tau^2) of estimates ``a`` with variances ``v`` (random-effects moments)."""
    a, v = np.asarray(a, float), np.clip(np.asarray(v, float), 1e-12, None)
    K = a.size
    if K == 1:
        return float(a[0]), float(v[0]), 0.0
    w = 1 / v
    mw = np.sum(w * a) / w.sum()
    Q = float(np.sum(w * (a - mw) ** 2))
    tau2 = max(0.0, (Q - (K - 1)) / (w.sum() - np.sum(w ** 2) / w.sum()))
    ws = 1 / (v + tau2)
    return float(np.sum(ws * a) / ws.sum()), float(1 / ws.sum()), tau2


def pmm_donors(pred_obs: np.ndarray, pred_mis: np.ndarray, rng, k: int = 0) -> np.ndarray:
    """Index (into the observed rows) of a random donor among the ``k`` observed rows whose
    predicted means are closest to each missing row's."""
    k = k or PMM_DONORS
    order = np.argsort(pred_obs, kind="stable")
    srt = pred_obs[order]
    n = srt.size
    k = min(k, n)
    pos = np.searchsorted(srt, pred_mis)
    cand = np.clip(pos[:, None] + np.arange(-k, k)[None, :], 0, n - 1)
    dist = np.abs(srt[cand] - pred_mis[:, None])
    dist[:, 1:][cand[:, 1:] == cand[:, :-1]] = np.inf  # clipped duplicates at the ends
    near = np.argsort(dist, axis=1, kind="stable")[:, :k]
    pick = near[np.arange(pred_mis.size), rng.integers(k, size=pred_mis.size)]
    return order[cand[np.arange(pred_mis.size), pick]]


def _logistic(X: np.ndarray, y: np.ndarray, pen: np.ndarray, b0: np.ndarray | None = None,
              iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Penalised logistic regression by Newton from ``b0`` (the previous sweep's fit: the chain
    moves little between sweeps, so a few steps converge): (b_hat, inverse Hessian)."""
    b = np.zeros(X.shape[1]) if b0 is None or b0.size != X.shape[1] else b0.copy()
    P = np.diag(pen)
    for _ in range(iters):
        mu = expit(X @ b)
        W = np.clip(mu * (1 - mu), 1e-9, None)
        H = (X * W[:, None]).T @ X + P
        L = linalg.cho_factor(H, lower=True)
        step = linalg.cho_solve(L, X.T @ (y - mu) - P @ b)
        big = np.max(np.abs(step))
        b += step * min(1.0, 2.0 / big) if big > 0 else step  # damped: no overshoot from a far start
        if big < 1e-6:
            break
    return b, linalg.cho_solve(L, np.eye(b.size))


class MultilevelMICE(BaseEstimator):
    """Multilevel chained-equations imputer (module docstring).

    ``fit_transform(F, trial, types, y, treat)`` returns ``n_imputations`` completed copies of F
    (NaN = missing; categorical columns hold level indices) and keeps a per-covariate account in
    ``report_`` (trials measuring it, systematically missing trials, tau of its trial intercepts).
    """

    def __init__(self, n_imputations: int = 5, n_burn: int = 5, n_between: int = 2, random_state: int = 0):
        self.n_imputations = n_imputations
        self.n_burn = n_burn
        self.n_between = n_between
        self.random_state = random_state

    def fit_transform(self, F: np.ndarray, trial, types: list, y: np.ndarray, treat: np.ndarray,
                      start: np.ndarray | None = None) -> list:
        F = np.asarray(F, float)
        n, p = F.shape
        labels = np.asarray(trial).astype(str)
        _, code = np.unique(labels, return_inverse=True)
        J = int(code.max()) + 1
        obs = ~np.isnan(F)
        if start is None:
            start = GaussianImputer().fit(F, labels, list(types)).transform_train(F, labels)
        X = np.where(obs, F, start)
        y = np.asarray(y, float)
        ys = (y - y.mean()) / (y.std() or 1.0)
        t = np.asarray(treat, float)
        aux = np.column_stack([ys, t, t * ys])  # outcome, arm and their interaction
        loc = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        rng = np.random.default_rng(self.random_state)
        todo = [j for j in np.argsort(obs.mean(axis=0), kind="stable") if 0 < obs[:, j].sum() < n]
        lo = np.array([F[obs[:, j], j].min() if obs[:, j].any() else -np.inf for j in range(p)])
        hi = np.array([F[obs[:, j], j].max() if obs[:, j].any() else np.inf for j in range(p)])
        self.report_ = {}
        self._warm = {}  # covariate -> last logistic fit (Newton warm start)
        out = []
        sweeps = self.n_burn + self.n_between * (self.n_imputations - 1) + 1
        keep_at = {self.n_burn + self.n_between * m for m in range(self.n_imputations)}
        for s in range(sweeps):
            for j in todo:
                Zo = (np.delete(X, j, axis=1) - np.delete(loc, j)) / np.delete(scale, j)
                Z = np.column_stack([Zo, t[:, None] * Zo, aux])
                u = rng.standard_normal(J)  # each trial's own deviation (systematically missing trials)
                r = (F[:, j], obs[:, j], Z, code, J, rng, j, u, t)
                if types[j] == "categorical":
                    X[:, j] = self._hot_deck(F[:, j], obs[:, j], code, J, rng)
                elif types[j] == "binary":
                    X[:, j] = self._binary(*r)
                else:
                    X[:, j] = self._continuous(*r)
            if s in keep_at:
                out.append(X.copy())
        self.n_sweeps_ = sweeps
        return out

    # ---------------------------------------------------------------- conditional models
    def _account(self, j: int, K: int, sys_trials: int, tau2: float) -> None:
        self.report_[j] = {"trials_measured": K, "trials_systematically_missing": sys_trials,
                           "tau_intercept": float(np.sqrt(tau2))}

    def _continuous(self, x, ob, Z, code, J, rng, j, u, arm) -> np.ndarray:
        c = code[ob]
        nk = np.bincount(c, minlength=J).astype(float)
        measured = nk > 0
        xm = np.bincount(c, x[ob], J) / np.maximum(nk, 1)
        Zs = np.stack([np.bincount(c, Z[ob, i], J) for i in range(Z.shape[1])], axis=1) / np.maximum(nk, 1)[:, None]
        Zw = Z[ob] - Zs[c]
        xw = x[ob] - xm[c]
        G = Zw.T @ Zw + 1e-6 * np.eye(Z.shape[1])
        L = linalg.cholesky(G, lower=True)
        beta = linalg.cho_solve((L, True), Zw.T @ xw)
        df = max(int(ob.sum() - measured.sum() - Z.shape[1]), 1)
        s2 = float(np.sum((xw - Zw @ beta) ** 2) / df)
        s2_star = s2 * df / rng.chisquare(df)
        beta_star = beta + np.sqrt(s2_star) * linalg.solve_triangular(L.T, rng.standard_normal(beta.size), lower=False)
        a_hat = xm - Zs @ beta
        a_star = xm - Zs @ beta_star + np.sqrt(s2_star / np.maximum(nk, 1)) * rng.standard_normal(J)
        out = x.copy()
        miss = ~ob
        sys_k = ~measured
        if sys_k.any():
            mu, vmu, tau2 = dersimonian_laird(a_hat[measured], s2 / nk[measured])
            a_star[sys_k] = self._new_trials(mu, vmu, tau2, int(measured.sum()), u[sys_k], rng)
        else:
            tau2 = dersimonian_laird(a_hat[measured], s2 / nk[measured])[2]
        self._account(j, int(measured.sum()), int(sys_k.sum()), tau2)
        # predictive mean matching: each missing value is an observed value of a donor whose
        # predicted mean is among the PMM_DONORS closest to the missing row's (drawn) prediction
        # (donors from the same arm: the spread of x around its prediction may differ by arm)
        pred = a_hat[code] + Z @ beta
        pred_star = a_star[code] + Z @ beta_star
        for v in np.unique(arm):
            don = ob & (arm == v)
            rec = miss & (arm == v)
            if not rec.any():
                continue
            if not don.any():
                don = ob
            out[rec] = x[don][pmm_donors(pred[don], pred_star[rec], rng)]
        return out

    def _binary(self, x, ob, Z, code, J, rng, j, u, arm) -> np.ndarray:
        c = code[ob]
        nk = np.bincount(c, minlength=J)
        measured = np.flatnonzero(nk > 0)
        K = measured.size
        pos = {k: i for i, k in enumerate(measured)}
        D = np.zeros((ob.sum(), K))
        D[np.arange(ob.sum()), [pos[k] for k in c]] = 1.0
        Xd = np.column_stack([np.ones(ob.sum()), D, Z[ob]])
        pen = np.concatenate([[1e-4], np.full(K, 1 / TRIAL_PRIOR_SD ** 2), np.full(Z.shape[1], 1 / PRED_PRIOR_SD ** 2)])
        b, V = _logistic(Xd, x[ob], pen, self._warm.get(j))
        self._warm[j] = b
        Lv = np.linalg.cholesky(V + 1e-12 * np.eye(V.shape[0]))
        b_star = b + Lv @ rng.standard_normal(b.size)
        # trial intercept a_k = b0 + d_k and its variance (for the between-trial moments)
        a_hat = b[0] + b[1:1 + K]
        va = V[0, 0] + np.diag(V)[1:1 + K] + 2 * V[0, 1:1 + K]
        a_star = np.full(J, np.nan)
        a_star[measured] = b_star[0] + b_star[1:1 + K]
        sys_k = np.setdiff1d(np.arange(J), measured)
        mu, vmu, tau2 = dersimonian_laird(a_hat, va)
        if sys_k.size:
            a_star[sys_k] = self._new_trials(mu, vmu, tau2, K, u[sys_k], rng)
        self._account(j, K, int(sys_k.size), tau2)
        miss = ~ob
        out = x.copy()
        pr = expit(a_star[code[miss]] + Z[miss] @ b_star[1 + K:])
        out[miss] = (rng.random(miss.sum()) < pr).astype(float)
        return out

    @staticmethod
    def _new_trials(mu, vmu, tau2, K, u, rng) -> np.ndarray:
        """Intercepts of trials that never measured the covariate: the other trials' distribution
        (``u``: the trials' standard-normal deviations, shared by the arms of a trial)."""
        mu_star = mu + np.sqrt(vmu) * rng.standard_normal()
        tau2_star = tau2 * (K - 1) / rng.chisquare(K - 1) if K > 1 and tau2 > 0 else tau2
        return mu_star + np.sqrt(tau2_star) * u

    def _hot_deck(self, x, ob, code, J, rng) -> np.ndarray:
        out = x.copy()
        measured = np.unique(code[ob])
        for k in np.unique(code[~ob]):
            rows = np.flatnonzero(~ob & (code == k))
            src = k if k in measured else measured[rng.integers(measured.size)]
            donors = x[ob & (code == src)]
            out[rows] = donors[rng.integers(donors.size, size=rows.size)]
        return out
