"""Identity-link ML-NMR with the trial intercepts and the random effects integrated out exactly.

For a continuous outcome on the identity link every term of the ML-NMR (training.network.mlnmr)
is Gaussian, so the trial intercepts μ_j ~ N(0, s_μ²) and the random effects δ_jk (variance τ²,
covariance τ²/2 between the contrasts of a multi-arm trial, δ = 0 on the trial's baseline arm)
can be integrated out analytically. Per arm a of trial j with treatment k:

* IPD arm (n_a participants, arm means ȳ_a, x̄_a, within-arm centred cross-products W):
  ∏ N(y_i | α_a + x_i's_k, σ_j²) = N(ȳ_a | α_a + x̄_a's_k, σ_j²/n_a) ·
  (2πσ_j²)^{-(n_a-1)/2} n_a^{-1/2} exp(−(W_yy − 2s'W_xy + s'W_xx s)/(2σ_j²)), with
  α_a = μ_j + d_k − d_b + δ_jk — exact (the same likelihood as the row-wise model);
* aggregate arm: ȳ_a ~ N(α_a + x̄_a's_k, se_a²) with x̄_a the arm's reported covariate means: on
  the identity link the arm mean of the linear predictor is exactly the linear predictor at the
  means, so no integration points are needed (the 64 QMC points' means miss the reported means by
  up to 0.33 months for the gamma-distributed episode duration on the shipped aggregate set, 4.6
  with 16 points).

The residuals r_a = ȳ_a − x̄_a's_k − (d_k − d_b) of one trial are then jointly
N(0, s_μ²·11' + τ²·Σ_δ + diag(v_a)) with v_a = σ_j²/n_a (IPD) or se_a² (aggregate): one small
multivariate normal per trial (at most 4–5 arms). NUTS samples only d, τ, β, γ and σ (about 50
parameters on the default network instead of 250), all well identified, so the sampler needs few
leapfrog steps and no funnel arises when τ is near 0. The intercepts and random effects are drawn
afterwards from their exact Gaussian conditional posterior at every draw (:func:`conditional_draws`),
so the fit carries the same quantities as the unmarginalised model (``mu``, ``delta``).
"""
from __future__ import annotations

import math

import numpy as np


def arm_statistics(data, scale: np.ndarray) -> dict:
    """Per arm (network order) and per trial, the numpy arrays of the marginal likelihood.
    Covariates on the sampler's standardised scale ``(x − centre) / scale``."""
    narm, p = len(data.arm_trt), len(data.covariates)
    m = np.zeros(narm)
    xbar = np.zeros((narm, p))
    n = np.ones(narm)
    agd_var = np.zeros(narm)
    is_ipd = np.zeros(narm, bool)
    wyy, wxy, wxx = np.zeros(narm), np.zeros((narm, p)), np.zeros((narm, p, p))
    ipd_studies = sorted(set(data.arm_study[data.ipd_arm].tolist()))
    sig = np.zeros(narm, int)
    if len(data.ipd_y):
        X = (data.ipd_X - data.centre) / scale
        for a in np.unique(data.ipd_arm):
            sel = data.ipd_arm == a
            y, x = data.ipd_y[sel], X[sel]
            is_ipd[a], n[a] = True, sel.sum()
            m[a], xbar[a] = y.mean(), x.mean(0)
            yc, xc = y - m[a], x - xbar[a]
            wyy[a], wxy[a], wxx[a] = yc @ yc, xc.T @ yc, xc.T @ xc
            sig[a] = ipd_studies.index(int(data.arm_study[a]))
    if len(data.agd_arm):
        m[data.agd_arm] = data.agd_y
        # identity link: the arm mean of the linear predictor is the linear predictor at the arm's
        # reported covariate means (exact; the QMC points' mean misses e.g. a gamma margin's mean)
        xm = data.agd_xmean if data.agd_xmean is not None else data.agd_X.mean(1)
        xbar[data.agd_arm] = (xm - data.centre) / scale
        agd_var[data.agd_arm] = data.agd_se ** 2
    ns = len(data.studies)
    arms_of = [np.flatnonzero(data.arm_study == s) for s in range(ns)]
    K = max(len(a) for a in arms_of)
    idx = np.full((ns, K), narm)  # narm = a padding slot
    valid = np.zeros((ns, K), bool)
    base = np.zeros((ns, K), bool)
    for s, arms in enumerate(arms_of):
        arms = sorted(arms, key=lambda a: a != data.arm_base[arms[0]])  # baseline arm first
        idx[s, :len(arms)] = arms
        valid[s, :len(arms)] = True
        base[s, 0] = True
    nb = valid & ~base
    sig_delta = (0.5 * (nb[:, :, None] & nb[:, None, :]) + 0.5 * np.eye(K)[None] * nb[:, :, None]).astype(float)
    ones = (valid[:, :, None] & valid[:, None, :]).astype(float)
    return {"m": m, "xbar": xbar, "n": n, "agd_var": agd_var, "is_ipd": is_ipd, "sig": sig, "wyy": wyy, "wxy": wxy,
            "wxx": wxx, "idx": idx, "valid": valid, "sig_delta": sig_delta, "ones": ones, "n_valid": valid.sum(),
            "n_sig": len(ipd_studies)}


def _moments(st, rel, slope, sigma, xp):
    """Residual means r (arms) and variances v (arms) of the arm means given the sampled parameters."""
    fx = xp.sum(st["xbar"] * slope, -1) if st["xbar"].shape[1] else 0.0
    r = st["m"] - fx - rel
    if sigma is None:
        v = st["agd_var"]
    else:
        v = xp.where(st["is_ipd"], sigma[..., st["sig"]] ** 2 / st["n"], st["agd_var"])
    return r, v


def loglik(st: dict, rel, slope, sigma, tau, s_mu: float):
    """The exact marginal log-likelihood (JAX) of the continuous ML-NMR: the IPD within-arm terms
    plus one multivariate normal per trial of the arm-mean residuals. ``st``: :func:`arm_statistics`
    as jax arrays; ``rel`` (arms) the relative effects d_k − d_b; ``slope`` (arms, p); ``sigma``
    (IPD trials) or None; ``tau`` a scalar (0 for fixed effects)."""
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular

    r, v = _moments(st, rel, slope, sigma, jnp)
    ll = 0.0
    if sigma is not None:
        sg = sigma[st["sig"]]
        w = st["wyy"]
        if st["xbar"].shape[1]:
            w = w - 2 * jnp.sum(slope * st["wxy"], -1) + jnp.einsum("ap,apq,aq->a", slope, st["wxx"], slope)
        nm1 = st["n"] - 1.0
        within = -nm1 * (jnp.log(sg) + 0.5 * math.log(2 * math.pi)) - 0.5 * jnp.log(st["n"]) - w / (2 * sg ** 2)
        ll = ll + jnp.sum(jnp.where(st["is_ipd"], within, 0.0))
    rp = jnp.concatenate([r, jnp.zeros(1)])[st["idx"]]
    vp = jnp.concatenate([v, jnp.ones(1)])[st["idx"]]
    C = s_mu ** 2 * st["ones"] + tau ** 2 * st["sig_delta"] + vp[:, :, None] * jnp.eye(rp.shape[1])[None]
    L = jnp.linalg.cholesky(C)
    z = solve_triangular(L, rp[:, :, None], lower=True)[..., 0]
    logdet = jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)))
    return ll - 0.5 * jnp.sum(z ** 2) - logdet - 0.5 * st["n_valid"] * math.log(2 * math.pi)


def conditional_draws(st: dict, rel: np.ndarray, slope: np.ndarray, sigma, tau: np.ndarray, s_mu: float,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draws of μ (S, trials) and δ (S, arms) from their exact Gaussian posterior given each draw of
    the sampled parameters (``rel`` (S, arms), ``slope`` (S, arms, p), ``sigma`` (S, IPD trials) or
    None, ``tau`` (S,)). Per trial the arm intercepts α = μ·1 + δ have prior covariance
    P = s_μ²11' + τ²Σ_δ and the residuals are α + noise(v): α | r ~ N(P C⁻¹ r, P − P C⁻¹ P)."""
    rng = np.random.default_rng(seed)
    r, v = _moments(st, rel, slope, sigma, np)
    S = r.shape[0]
    v = np.broadcast_to(v, r.shape)
    K = st["idx"].shape[1]
    rp = np.concatenate([r, np.zeros((S, 1))], 1)[:, st["idx"]]
    vp = np.concatenate([v, np.ones((S, 1))], 1)[:, st["idx"]]
    P = s_mu ** 2 * st["ones"][None] + (tau ** 2)[:, None, None, None] * st["sig_delta"][None]
    C = P + vp[..., None] * np.eye(K)
    CinvP = np.linalg.solve(C, P)
    mean = np.einsum("snlk,snl->snk", CinvP, rp)  # P C^-1 r = (C^-1 P)' r (P, C symmetric)
    cov = P - P @ CinvP
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    ev, V = np.linalg.eigh(cov)
    root = V * np.sqrt(np.clip(ev, 0.0, None))[..., None, :]
    alpha = mean + np.einsum("snkl,snl->snk", root, rng.standard_normal(mean.shape))
    mu = alpha[:, :, 0]
    narm = r.shape[1]
    delta = np.zeros((S, narm + 1))
    delta[np.arange(S)[:, None, None], st["idx"][None]] = alpha - mu[:, :, None]
    return mu, delta[:, :narm]
