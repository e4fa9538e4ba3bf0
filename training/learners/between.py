"""Within- and between-trial treatment-covariate interactions for the effect-model family (opt-in).

In an IPD meta-analysis a treatment x covariate interaction pooled over trials mixes two kinds of
information: how the benefit changes with the covariate *within* trials (individual, randomisation-
protected) and how trials' average benefits change with their *mean* covariate (ecological, prone to
confounding by trial-level factors). The recommended model separates them by centring the covariate
at its trial mean and, if wanted, adding the trial mean as its own term (Riley et al. 2020 BMJ
368:m5055 "Individual participant data meta-analysis to examine interactions between treatment effect
and participant-level covariates"; Hua et al. 2017 Stat Med 36:772; Fisher et al. 2017 BMJ 356:j573).

The effect model (:mod:`training.learners.effect_model`) always uses the within-trial part only
(modifier basis centred at trial means). With ``between_sd`` set it adds, per modifier column k,
the column's trial mean (centred at the pooled mean) x treatment as a second interaction whose
coefficient has a N(0, (between_sd x sd)^2) prior (sd: the within-trial interactions' prior SD):
for a trial t the fitted benefit is ``a_c - (M_i - Mbar_t) g_w - (Mbar_t - Mbar) g_b``.

Scoring a single patient there is no trial (setting) mean. The export keeps the runtime's form
``a_c - (M(x) - Mbar) g`` with ``g = g_w + rho g_b``, i.e. the setting mean replaced by
``Mbar + rho (M(x) - Mbar)``:
- ``"average"`` (rho = 0): the average-trial benefit at the pooled mean case mix (the between term
  only adjusts the estimation of the class effects and the within-trial slopes);
- ``"reliability"`` (rho_k = the share of column k's variance that lies between trials = the least-
  squares slope of a participant's trial mean on their own value: E[Mbar_t | M_i] under a linear
  model): the expected case-mix effect of a setting given only this patient;
- ``"own"`` (rho = 1): the patient's own covariate stands in for the setting's mean case mix.
The exported covariance is the fitted one mapped by the same linear map (delta method is exact).
"""
from __future__ import annotations

import numpy as np

from training.learners.linear import trial_centre

SCORING = ("average", "reliability", "own")


def trial_means(M: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """Each row's trial mean of every column of ``M`` (trial: any labels)."""
    return M - trial_centre(M, trial)


def augmented(M: np.ndarray, trial: np.ndarray, ratio: float) -> np.ndarray:
    """[within-trial part, ratio x (trial mean - pooled mean)]: the interaction columns of the
    within/between model, the within part already centred (``StructuredFit`` takes them as
    given). ``ratio`` scales the between columns so that one common ridge penalty is a prior SD
    ``ratio x sd`` on their coefficients (a coefficient on ``ratio x v`` with prior SD sd is a
    coefficient on ``v`` with prior SD ratio x sd)."""
    Mw = trial_centre(M, trial)
    Mt = M - Mw
    return np.hstack([Mw, ratio * (Mt - M.mean(axis=0))])


def reliability(M: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """Per column: Var(trial mean) / Var(value) over rows (0 for a constant column) - the OLS slope
    of a row's trial mean on its own value, in [0, 1]."""
    Mt = trial_means(M, trial)
    vt = ((Mt - M.mean(axis=0)) ** 2).mean(axis=0)
    v = ((M - M.mean(axis=0)) ** 2).mean(axis=0)
    return np.where(v > 0, np.clip(vt / np.where(v > 0, v, 1.0), 0.0, 1.0), 0.0)


def scoring_weights(M: np.ndarray, trial: np.ndarray, scoring: str) -> np.ndarray:
    """rho per column for ``scoring`` (module docstring)."""
    if scoring not in SCORING:
        raise ValueError(f"between_scoring must be one of {SCORING}, got {scoring!r}")
    k = M.shape[1]
    if scoring == "average":
        return np.zeros(k)
    if scoring == "own":
        return np.ones(k)
    return reliability(M, trial)


def fold_matrix(n_base: int, k: int, rho: np.ndarray, ratio: float) -> np.ndarray:
    """The linear map from theta of the augmented fit ([..., g_w (k), g_b' (k)], the last 2k
    entries) to the exported theta ([..., g], n_base entries, the last k the modifiers):
    g = g_w + rho x ratio x g_b' (g_b' is the coefficient on the ratio-scaled column)."""
    A = np.zeros((n_base, n_base + k))
    A[:, :n_base] = np.eye(n_base)
    A[n_base - k:, n_base:] = np.diag(np.asarray(rho, float) * ratio)
    return A


def served_eta(eta: np.ndarray, treat: np.ndarray, Maug: np.ndarray, g_aug: np.ndarray, Mc: np.ndarray,
               g: np.ndarray) -> np.ndarray:
    """The fitted linear predictor with the interaction part replaced by the served one
    (``Mc`` = M - pooled mean, exported ``g``): what the exported model predicts for the training
    rows given their trial intercepts, so that the between-trial SD left over for a new setting
    (``residual_tau``) includes the case-mix effect the served prediction does not carry."""
    return eta + treat * (Mc @ g - Maug @ g_aug)


def fold(trial, treat, fits: list, Ms: list, Mbar, theta, cov, ratio: float, scoring: str) -> tuple:
    """(theta, cov, eta, report) of the served model from the within/between fit (``fits``: (theta,
    eta) per imputed set, ``Ms`` their modifier bases, ``theta``/``cov`` the pooled augmented fit):
    the between slopes folded into the within ones with the scoring weights rho, the covariance mapped
    by the same linear map, eta the served linear predictor on the training rows (for tau), and a
    report (rho, within and between slopes on the standardised basis, the between slopes' SE)."""
    k = Ms[0].shape[1]
    rho = np.mean([scoring_weights(Mm, trial, scoring) for Mm in Ms], axis=0)
    A = fold_matrix(theta.size - k, k, rho, ratio)
    g_aug = theta[theta.size - 2 * k:]
    theta_s, cov_s = A @ theta, A @ cov @ A.T
    g = theta_s[theta_s.size - k:]
    eta = np.mean([served_eta(e, treat, augmented(Mm, trial, ratio), th[th.size - 2 * k:], Mm - Mbar, g)
                   for (th, e), Mm in zip(fits, Ms)], axis=0)
    se_b = np.sqrt(np.clip(np.diag(cov)[theta.size - k:], 0, None)) * ratio
    report = {"prior_sd_ratio": float(ratio), "scoring": scoring, "rho": rho.tolist(),
              "within": g_aug[:k].tolist(), "between": (ratio * g_aug[k:]).tolist(), "between_se": se_b.tolist()}
    return theta_s, cov_s, eta, report
