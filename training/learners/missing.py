"""Missing covariates: a two-level Gaussian imputation model that respects trial clustering.

Model: feature vector x_ij of participant i in trial j ~ N(mu_j, S_w) with trial means
mu_j ~ N(mu, S_b). Estimated by moments: mu_j = trial means of observed values (shrunk towards
the pooled mean by n_obs / (n_obs + k)), S_w = pairwise within-trial covariance of
trial-centred values, S_b = covariance of the trial means (diagonal + pairwise), both made
positive definite.

- Training rows (``transform_train``): a sporadically missing value is imputed by its
  conditional mean given the participant's observed features within its own trial
  (trial mean + S_w regression); a *systematically* missing value (the trial never measured it)
  gets the pooled mean adjusted by the observed features (no trial information exists).
- Scoring (``export``): a new patient belongs to no training trial, so the conditional normal
  uses the pooled mean and the *total* covariance S_w + S_b. Deterministic conditional draws
  (stored standard-normal matrix ``z``, moment-matched: ``moment_matched_normal``) let the
  interval widen with the information lost.
  A draw is the conditional mean + ``z @ L.T`` with ``L`` the Cholesky factor of the conditional
  covariance (``predict.runtime.cond_factor``, used by training and scoring alike): unique for a
  positive-definite matrix, so the draws do not depend on the machine's BLAS/LAPACK (an
  eigenvector basis would: its signs can flip under a 1e-16 change). ``_psd`` below may use an
  eigendecomposition because ``V diag(w) V'`` does not depend on the eigenvectors' signs.

Binary features are treated as Gaussian for the regression (draws are rounded to 0/1);
categorical features by their level index (crude; the default config has none). The
imputation model does not include the outcome or treatment; for the linear learners it acts as
regression calibration, with the imputed values treated as known. Multiple imputation that
includes outcome and treatment is ``training.impute`` (``EffectModel(missing="mi")``).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from predict.expected_basis import Spread, cond_spread, merge
from predict.impute import impute_mean


def _psd(S: np.ndarray, floor: np.ndarray) -> np.ndarray:
    if S.size == 0:  # a study without covariates or baselines: nothing to impute
        return S
    S = (S + S.T) / 2
    w, V = np.linalg.eigh(S)
    w = np.clip(w, 1e-6 * max(w.max(), 1e-12), None)
    S = (V * w) @ V.T
    d = np.sqrt(np.clip(np.diag(S), 1e-12, None))
    D = np.maximum(d, floor) / d
    return S * np.outer(D, D)


def _pairwise_cov(R: np.ndarray) -> np.ndarray:
    obs = ~np.isnan(R)
    Z = np.where(obs, R, 0.0)
    cnt = obs.T.astype(float) @ obs.astype(float)
    S = (Z.T @ Z) / np.maximum(cnt - 1, 1)
    S[cnt < 5] = 0.0
    return S


def moment_matched_normal(rng: np.random.Generator, M: int, p: int) -> np.ndarray:
    """M x p standard-normal draws moment-matched so that every column has mean exactly 0 and
    any set of columns has sample covariance (ddof = 1) exactly I: centred Gaussian columns
    orthonormalised (QR with a positive R diagonal: unique) and scaled by sqrt(M - 1).

    Why: the missing-data variance is the spread of a prediction over these draws. For a
    prediction linear in the missing features it is then exact (b' S_cond b) instead of a
    20-draw Monte-Carlo estimate (which moved CI bounds by up to ~2 points between two valid
    draw sets); non-linear learners (trees, splines, rounding of binary features) keep a smaller
    Monte-Carlo error. Needs p <= M - 1; otherwise plain standard-normal draws are returned."""
    G = rng.standard_normal((M, p))
    if M < 2 or p > M - 1 or p == 0:
        return G
    G -= G.mean(axis=0)
    Q, R = np.linalg.qr(G)
    Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)
    return Q * np.sqrt(M - 1)


class GaussianImputer(BaseEstimator):
    """Two-level Gaussian imputer (see module docstring). ``shrink`` = k in n/(n+k)."""

    def __init__(self, n_draws: int = 20, shrink: float = 5.0, random_state: int = 0):
        self.n_draws = n_draws
        self.shrink = shrink
        self.random_state = random_state

    def fit(self, F: np.ndarray, trial: np.ndarray, types: list) -> "GaussianImputer":
        with warnings.catch_warnings():  # features never observed give empty-slice warnings
            warnings.simplefilter("ignore", RuntimeWarning)
            return self._fit(F, trial, types)

    def _fit(self, F: np.ndarray, trial: np.ndarray, types: list) -> "GaussianImputer":
        n, p = F.shape
        obs = ~np.isnan(F)
        if not obs.any(axis=0).all():
            # a feature never observed: mean 0, unit variance placeholder (never informative)
            F = F.copy()
        mu = np.array([np.nanmean(F[:, j]) if obs[:, j].any() else 0.0 for j in range(p)])
        trials = np.unique(trial)
        tm = np.full((trials.size, p), np.nan)
        nobs = np.zeros((trials.size, p))
        for k, t in enumerate(trials):
            m = trial == t
            nobs[k] = obs[m].sum(0)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                tm[k] = np.where(nobs[k] > 0, np.nanmean(np.where(obs[m], F[m], np.nan), axis=0), np.nan)
        R = F - tm[np.searchsorted(trials, trial)]
        Sw = _pairwise_cov(R)
        for j in range(p):
            if Sw[j, j] <= 0:
                Sw[j, j] = np.nanvar(F[:, j]) if obs[:, j].sum() > 1 else 1.0
        Sb = _pairwise_cov(tm - np.nanmean(tm, axis=0)) if trials.size > 2 else np.zeros((p, p))
        sd_floor = np.sqrt(np.clip(np.diag(Sw), 1e-8, None)) * 1e-3
        self.mean_ = mu
        self.cov_within_ = _psd(Sw, sd_floor)
        self.cov_total_ = _psd(Sw + Sb, sd_floor)
        w = nobs / (nobs + self.shrink)
        self.trial_labels_ = trials
        self.trial_mean_ = np.where(nobs > 0, w * np.nan_to_num(tm) + (1 - w) * mu, mu)
        lo = np.array([np.nanmin(F[:, j]) if obs[:, j].any() else -1e9 for j in range(p)])
        hi = np.array([np.nanmax(F[:, j]) if obs[:, j].any() else 1e9 for j in range(p)])
        self.binary_ = np.array([t == "binary" for t in types])
        self.lower_, self.upper_ = lo, hi
        self.z_ = moment_matched_normal(np.random.default_rng(self.random_state), self.n_draws, p)
        return self

    def transform_train(self, F: np.ndarray, trial_labels: np.ndarray) -> np.ndarray:
        """Conditional-mean imputation of training rows within their trial (module docstring)."""
        out = F.copy()
        idx = np.searchsorted(self.trial_labels_, trial_labels)
        known = (idx < self.trial_labels_.size) & (self.trial_labels_[np.minimum(idx, self.trial_labels_.size - 1)] == trial_labels)
        for k in np.unique(idx[known]):
            rows = known & (idx == k)
            imp = {"mean": self.trial_mean_[k], "cov": self.cov_within_, "lower": self.lower_, "upper": self.upper_}
            out[rows] = impute_mean(imp, F[rows])
        if (~known).any():
            out[~known] = impute_mean(self.export(), F[~known])
        return out

    def spread_train(self, F: np.ndarray, trial_labels: np.ndarray) -> Spread | None:
        """The conditional distribution of the missing values of training rows, as
        :meth:`transform_train` imputes them (within their trial: trial mean and within-trial
        covariance; rows of unknown trials: the scoring imputer), for the expected basis
        (:mod:`predict.expected_basis`); None when nothing is missing."""
        if not np.isnan(F).any():
            return None
        idx = np.searchsorted(self.trial_labels_, trial_labels)
        known = (idx < self.trial_labels_.size) & (self.trial_labels_[np.minimum(idx, self.trial_labels_.size - 1)] == trial_labels)
        parts = []
        for k in np.unique(idx[known]):
            rows = np.flatnonzero(known & (idx == k))
            imp = {"mean": self.trial_mean_[k], "cov": self.cov_within_, "lower": self.lower_, "upper": self.upper_}
            parts.append(_at(cond_spread(imp, F[rows]), rows))
        if (~known).any():
            rows = np.flatnonzero(~known)
            parts.append(_at(cond_spread(self.export(), F[rows]), rows))
        return merge(parts, F.shape[0])

    def export(self) -> dict:
        return {"mean": self.mean_.tolist(), "cov": self.cov_total_.tolist(), "z": self.z_.tolist(),
                "lower": self.lower_.tolist(), "upper": self.upper_.tolist(), "binary": self.binary_.tolist()}


def _at(s: Spread | None, rows: np.ndarray) -> Spread | None:
    """``s`` (over the sub-matrix of ``rows``) with its rows mapped to the full matrix."""
    if s is None:
        return None
    return Spread(rows[s.rows], s.mean, s.sd, s.pat, s.cov, s.lower, s.upper)
