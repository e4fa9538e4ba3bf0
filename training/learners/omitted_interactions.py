"""The variance a risk-based model leaves out: treatment interactions orthogonal to its index.

The risk model (``training.learners.risk_model``) lets the benefit vary only along its prognostic
index PI(x) = P(x) beta. If the true benefit also varies in other directions of the basis P, its
error at x contains the omitted part, which its bootstrap (the uncertainty of its *own*
projection) does not carry: on the project's scenarios its 95% CI covered 0.39-0.48 of the
average-trial truth with SE 1.78 against RMSE 5.1-6.6 (BENCHMARKS.md, s12i).

Estimand. With delta the within-trial treatment x basis interaction (benefit vs the comparator
moves by -(P(x) - Pbar) delta for a continuous outcome), the index-only model fits its projection
g beta with g = beta' S delta / beta' S beta (S: covariance of P over the training rows), and
leaves out delta_perp = Q delta, Q = I - beta beta' S / (beta' S beta). The patients' mean squared
omitted benefit is

    m2 = E_x[((P(x) - Pbar) delta_perp)^2] = delta_perp' S delta_perp.

Estimator (method of moments, as for a random-coefficient or between-study variance: Swamy 1970,
DerSimonian & Laird 1986): fit the full interaction model by within-trial least squares
(trial intercepts profiled out; near-zero penalty on the interactions, the risk model's own on the
prognostic main effects), delta_hat with covariance V = sigma2 A Z'Z A (A the penalised inverse),
and take

    m2_hat = max(0, delta_hat_perp' S delta_hat_perp - tr(S Q V Q')),

unbiased before truncation for the OLS part (E[x' S x] = mu' S mu + tr(S Var x)).

Allowance. The omitted interaction is given the covariance V_add = c Q D Q' (D = diag of 1 / var(P_j):
exchangeable per SD of each basis column, as the effect model's ridge prior is), with c such that
the training patients' mean added variance E_x[(P(x) - Pbar)' V_add (P(x) - Pbar)] = tr(S V_add)
equals m2_hat. Added to the modifier block of the risk model's coefficient covariance, the
patient's variance grows with their distance from the mean in the omitted directions, 0 at the
mean patient (where the average effect is estimated as before). Continuous outcomes only.
"""
from __future__ import annotations

import numpy as np

from training.learners.linear import trial_centre, within_trial


def omitted_interaction_cov(y: np.ndarray, trial: np.ndarray, cls: np.ndarray, treat: np.ndarray, comps: list,
                            P: np.ndarray, beta: np.ndarray, lam_main: float, sigma2: float,
                            lam_int: float = 1e-6) -> tuple[np.ndarray, dict]:
    """(V_add (k, k) for the modifier block of a basis-P risk model, info) — module docstring.
    ``trial``: integer codes 0..J-1; ``beta``: the index's coefficients on P (any scale);
    ``lam_main``: the penalty of the prognostic main effects; ``sigma2``: the residual variance.
    info: m2 (the estimate, truncated at 0), m2_raw (before truncation), the naive quadratic
    form and its noise correction tr(S Q V Q'), and the number of omitted directions."""
    n, k = P.shape
    J = int(trial.max()) + 1
    nj = np.bincount(trial, minlength=J).astype(float)
    O = np.column_stack([(cls == c).astype(float) for c in comps]) if comps else np.zeros((n, 0))
    Z = np.hstack([O, P, trial_centre(P, trial) * treat[:, None]])
    _, _, Zt, yt = within_trial(y, Z, trial, nj)
    pen = np.concatenate([np.full(O.shape[1], 1e-4), np.full(k, lam_main), np.full(k, lam_int)])
    G = Zt.T @ Zt
    A = np.linalg.inv(G + np.diag(pen) + 1e-10 * np.eye(Z.shape[1]))
    b = A @ (Zt.T @ yt)
    V = sigma2 * A @ G @ A
    mod = slice(O.shape[1] + k, O.shape[1] + 2 * k)
    delta, Vd = b[mod], V[mod, mod]
    Pc = P - P.mean(axis=0)
    S = Pc.T @ Pc / n
    beta = np.asarray(beta, float)
    bSb = float(beta @ S @ beta)
    Q = np.eye(k) - np.outer(beta, beta @ S) / bSb if bSb > 0 else np.eye(k)
    dp = Q @ delta
    naive = float(dp @ S @ dp)
    noise = float(np.trace(S @ Q @ Vd @ Q.T))
    m2 = max(0.0, naive - noise)
    var = np.diag(S).copy()
    D = np.diag(np.where(var > 1e-12, 1.0 / np.where(var > 1e-12, var, 1.0), 0.0))
    shape = Q @ D @ Q.T
    norm = float(np.trace(S @ shape))
    V_add = (m2 / norm) * shape if norm > 0 and m2 > 0 else np.zeros((k, k))
    info = {"m2": m2, "m2_raw": naive - noise, "naive": naive, "noise": noise,
            "directions": int(np.linalg.matrix_rank(Q @ np.diag(np.sqrt(np.diag(S)))) if k else 0)}
    return V_add, info
