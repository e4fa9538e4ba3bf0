"""Fit one model of the one-stage IPD meta-analysis and summarise it as a table row.

Continuous outcomes: linear mixed model by REML (optionally trial-specific residual variances).
Global recovery: logistic mixed model by maximum likelihood (Laplace approximation).
Inference on fixed effects is Wald (z); the 95% prediction interval for the treatment effect
in a new trial is θ ± t_{k−2, 0.975}·√(SE² + τ²) with k trials (Higgins et al. 2009; Riley et
al. 2011), reported for overall-effect models.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from predict.errors import LbpError
from training.meta.design import Design
from training.mixed import fit_glmm_binomial, fit_lmm


def fit_design(design: Design, residual: str = "common"):
    if design.spec.binary_outcome:
        return fit_glmm_binomial(design.y, design.X, design.Z, design.groups, method="laplace", re_cov="diagonal")
    return fit_lmm(design.y, design.X, design.Z, design.groups, method="REML", re_cov="diagonal", residual=residual)


def fit_model(design: Design, residual: str = "common") -> dict:
    """Fit and return the long-form row: estimate, CI, p, tau, prediction interval, status."""
    spec = design.spec
    target = "treat" if spec.modifier is None else f"treat:{spec.modifier}_c"
    row = {
        "outcome": spec.outcome, "follow_up": spec.follow_up, "comparison": spec.comparison,
        "variable": spec.modifier or "treatment", "model": "adjusted" if spec.adjusted else "unadjusted",
        "studies": design.studies, "participants": design.participants,
        "excluded_missing": design.n_missing, "scale": "log_or" if spec.binary_outcome else "md",
    }
    try:
        res = fit_design(design, residual)
    except LbpError as exc:
        return {**row, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                "tau": np.nan, "pi_low": np.nan, "pi_high": np.nan, "status": "failed", "message": str(exc)}
    est = float(res.params[target])
    se = float(res.bse[target])
    z = stats.norm.ppf(0.975)
    tau = float(res.re_sd["treat"]) if "treat" in res.re_sd.index else 0.0
    k = design.studies
    if spec.modifier is None and k > 2:
        half = stats.t.ppf(0.975, k - 2) * math.sqrt(se**2 + tau**2)
        pi = (est - half, est + half)
    else:
        pi = (np.nan, np.nan)
    return {
        **row, "estimate": est, "se": se, "ci_low": est - z * se, "ci_high": est + z * se,
        "p": float(2 * stats.norm.sf(abs(est / se))) if se > 0 else np.nan,
        "tau": tau, "pi_low": pi[0], "pi_high": pi[1], "status": res.status, "message": "; ".join(res.messages),
    }
