"""Simulated IPD-meta-analysis-like data for tests and benchmarks of the mixed-model engine.

Not a model of the real trials: a seeded generator with the same structure (trials of
unequal size, 1:1 randomisation, baseline score, a binary effect modifier), so the fitters
are exercised at the size and shape they will meet.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_ipd(seed: int = 0, n_trials: int = 27, n_total: int = 3500, *, outcome: str = "continuous",
                 tau: float = 3.0, slope_sd: float = 0.1, resid_sd=15.0, beta=None) -> pd.DataFrame:
    """One row per participant: trial, treat (0/1), baseline (0-100 scale), modifier (0/1), y.

    Continuous: y = a_trial + (0.5 + u_t) * (baseline - 60) + (beta_treat + b_t) * treat
    + beta_mod * modifier + beta_int * treat * modifier + e,  b_t ~ N(0, tau^2),
    u_t ~ N(0, slope_sd^2), e ~ N(0, resid_sd^2) (``resid_sd`` may be per-trial array).
    Binary: the same linear predictor on the logit scale (with baseline scaled by 1/20) and y ~ Bernoulli.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(28, 265, size=n_trials).astype(float)
    sizes = np.maximum(np.round(sizes / sizes.sum() * n_total), 10).astype(int)
    sizes[-1] += n_total - sizes.sum()
    trial = np.repeat(np.arange(n_trials), sizes)
    n = len(trial)
    treat = np.concatenate([rng.permutation(np.arange(s) % 2) for s in sizes]).astype(float)
    baseline = np.clip(rng.normal(60 + rng.normal(0, 5, n_trials)[trial], 15), 0, 100)
    modifier = (rng.random(n) < 0.4).astype(float)
    intercept = rng.normal(0, 5 if outcome == "continuous" else 0.5, n_trials)
    b = rng.normal(0, tau, n_trials)
    u = rng.normal(0, slope_sd, n_trials)
    if outcome == "continuous":
        bt, bm, bi, bb = beta if beta is not None else (-8.0, 4.0, -3.0, 0.5)
        sd = np.broadcast_to(np.asarray(resid_sd, float), (n_trials,))[trial]
        y = (intercept[trial] + (bb + u[trial]) * (baseline - 60) + (bt + b[trial]) * treat + bm * modifier
             + bi * treat * modifier + rng.normal(0, 1, n) * sd)
    elif outcome == "binary":
        bt, bm, bi, bb = beta if beta is not None else (0.6, -0.3, 0.4, -0.5)
        eta = (intercept[trial] + (bb + u[trial]) * (baseline - 60) / 20 + (bt + b[trial]) * treat
               + bm * modifier + bi * treat * modifier)
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        raise ValueError("outcome must be 'continuous' or 'binary'")
    return pd.DataFrame({"trial": [f"T{t:02d}" for t in trial], "treat": treat, "baseline": baseline,
                         "modifier": modifier, "y": y})


def ipd_design(df: pd.DataFrame, *, binary: bool = False, stratified: bool = False):
    """Design for the one-stage interaction model.

    X: trial intercepts (one dummy per trial, no global intercept), centred baseline (scaled by
    1/20 if ``binary``), treat, modifier, treat x modifier; with ``stratified`` the baseline and
    modifier terms are trial-specific (one column per trial) instead. Z: treat and baseline
    (random treatment effect and random baseline slope). Returns X, Z, fixed_names, random_names.
    """
    trials = sorted(df["trial"].unique())
    D = (df["trial"].to_numpy()[:, None] == np.asarray(trials)[None, :]).astype(float)
    base = (df["baseline"].to_numpy() - 60) / (20 if binary else 1)
    treat, mod = df["treat"].to_numpy(), df["modifier"].to_numpy()
    names = [f"trial[{t}]" for t in trials]
    if stratified:
        X = np.column_stack([D, D * base[:, None], D[:, 1:] * mod[:, None], treat, treat * mod])
        names += [f"baseline:trial[{t}]" for t in trials] + [f"modifier:trial[{t}]" for t in trials[1:]]
        names += ["treat", "treat:modifier"]
        # the pooled modifier main effect is carried by the first trial's column
        X = np.column_stack([X[:, : 2 * len(trials)], mod, X[:, 2 * len(trials):]])
        names = names[: 2 * len(trials)] + ["modifier"] + names[2 * len(trials):]
    else:
        X = np.column_stack([D, base, treat, mod, treat * mod])
        names += ["baseline", "treat", "modifier", "treat:modifier"]
    Z = np.column_stack([treat, base])
    return X, Z, names, ["treat", "baseline"]
