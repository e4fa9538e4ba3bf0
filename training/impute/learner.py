"""Multiple imputation for the linear benefit learners (``EffectModel(missing="mi")``).

The learner is fitted on each of M completed data sets from :class:`MultilevelMICE` (imputation
model: the other features, the task's oriented outcome, the treatment, by arm, with trial
intercepts; systematically missing features from the other trials' distribution) and the M fits
are pooled by Rubin's rules: the exported coefficients are the mean of the M fits and their
covariance is the mean within-imputation covariance plus (1 + 1/M) times the between-imputation
covariance. The within-imputation covariance is the trial-cluster bootstrap one, with the
learner's ``n_boot`` replicates spread over the imputations (replicate b uses set b mod M; each
set's replicates give that set's bootstrap covariance), so MI adds M point fits, not M bootstraps.

Why fit-and-pool rather than stacking the M sets into one data set: pooling keeps Rubin's
variance (the between-imputation part is the price of the missing information, and the intervals
must carry it), while a stacked fit needs an ad hoc variance correction; the linear learners'
point fits cost milliseconds, so M of them are cheap. The spline knots and standardisation of the
basis are fixed once (from the conditional-mean completed matrix) so the M coefficient vectors
live on the same basis and can be averaged.

At scoring time nothing changes: a new patient has no outcome, and the runtime completes missing
inputs from the exported conditional-mean model (``GaussianImputer``) without sampling.
"""
from __future__ import annotations

import numpy as np

from training.impute.mice import MultilevelMICE
from training.impute.rubin import pool

METHODS = ("conditional_mean", "mi")


def completed_sets(learner, d) -> list:
    """The completed feature matrices a linear learner is fitted on: ``[d.Fi]`` (conditional
    means within trial) or, with ``learner.missing == "mi"`` and something missing, M multiple
    imputations. Sets ``d.mi_report`` (None without MI)."""
    method = getattr(learner, "missing", "conditional_mean")
    if method not in METHODS:
        raise ValueError(f"missing={method!r}: choose from {', '.join(METHODS)}")
    d.mi_report = None
    if method != "mi" or not np.isnan(d.F).any():
        return [d.Fi]
    m = int(getattr(learner, "n_imputations", 5))
    if m < 2:
        raise ValueError("n_imputations must be >= 2 for multiple imputation")
    mice = MultilevelMICE(n_imputations=m, random_state=learner.random_state)
    sets = mice.fit_transform(d.F, d.trial_labels, d.spec["types"], d.g, d.treat, start=d.Fi)
    names = d.spec["names"]
    d.mi_report = {"method": "multilevel chained equations (outcome, treatment by arm, trial intercepts)",
                   "imputations": m, "sweeps": mice.n_sweeps_,
                   "features": {names[j]: v for j, v in mice.report_.items()}}
    return sets


def rubin_cov(theta_by_set: np.ndarray, boot_by_set: list) -> tuple[np.ndarray, dict]:
    """Total covariance of the pooled coefficients: Rubin's rules with each set's bootstrap
    covariance as its within-imputation covariance. Returns (T, summary) where summary has the
    largest and median fraction of missing information (lambda) over the coefficients."""
    k = theta_by_set.shape[1]
    covs = [np.cov(b, rowvar=False) if len(b) > 2 else np.zeros((k, k)) for b in boot_by_set]
    p = pool(theta_by_set, np.stack([np.atleast_2d(c) for c in covs]))
    lam = p.lam[np.isfinite(p.lam)]
    return p.T, {"imputations": int(theta_by_set.shape[0]),
                 "lambda_max": float(lam.max()) if lam.size else 0.0,
                 "lambda_median": float(np.median(lam)) if lam.size else 0.0}
