"""What the choice of model does when there are few trials (or one).

With few trials the between-trial SD tau is poorly estimated and the one-stage random-effects
interval on t(k−1) can be very wide (or, with tau at 0, too narrow). Next to it the replication
reports, each labelled:

* the **common-effect (stratified) estimate**: the same design with no random effects, trial-
  specific intercepts and trial-specific slopes for the baseline and the adjustment covariates
  (stratified), one common treatment effect; least squares (t on n − p df) for continuous
  outcomes, logistic regression by maximum likelihood (Wald z) for binary ones. With one trial
  this *is* the single-trial analysis (ANCOVA / logistic regression).
* the **two-stage random-effects estimate with the Hartung–Knapp–Sidik–Jonkman interval**: per
  trial the same regression gives the treatment effect and its variance v_i; tau² by Paule–Mandel;
  μ = Σ w_i y_i / Σ w_i with w_i = 1 / (v_i + tau²); the HKSJ variance
  q / Σ w_i, q = Σ w_i (y_i − μ)² / (k − 1), with a t(k − 1) interval (Hartung & Knapp 2001;
  Sidik & Jonkman 2002; IntHout et al. 2014). Trials whose own estimate is not finite (a logistic
  regression without events in an arm) are left out and counted.

For a binary outcome a trial whose participants all have the same outcome carries no information on
a common treatment effect: its own intercept runs off to ±infinity and the maximum likelihood of the
other parameters equals the fit without it. The stratified fit therefore leaves such trials out and
says which (otherwise many small centres would make the common effect "not estimable"); so does the
two-stage analysis.

Separation otherwise (an arm, or a level of a modifier, in which every participant had the event or
none did - medicaldata::laryngoscope: 49 of 49 Macintosh intubations succeeded): the maximum-
likelihood estimate does not exist. Where the fit runs off and Konis's LP test
(:func:`training.learners.separation.separated`) confirms separation, the logistic fits here use
Firth's penalised likelihood instead, with the 95% CI from the profile penalised likelihood and p
from the penalised likelihood-ratio test (:mod:`training.learners.firth_profile`; Heinze & Schemper
2002; the same numbers as R logistf) and say so (:data:`FIRTH_NOTE`); the two-stage analysis uses
the Firth estimate and logistf's variance of a separated trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from training.learners.firth_profile import FirthFit, firth, plr_test, profile_ci
from training.learners.separation import separated
from training.meta.design import Design
from training.mixed.glm import logistic_glm

COMMON_LABEL = "common effect (stratified)"
SINGLE_LINEAR = "single trial: ANCOVA (least squares)"
SINGLE_MEANS = "single trial: difference in means (least squares, no baseline or covariates)"
SINGLE_BINARY = "single trial: logistic regression"
HKSJ_LABEL = "two-stage random effects (Paule–Mandel tau), Hartung–Knapp–Sidik–Jonkman CI"
FIRTH_INFERENCE = "Firth, profile penalised likelihood"
FIRTH_NOTE = ("separation (an arm or level where every participant had the event, or none did; Konis's LP test): "
              "no maximum-likelihood estimate exists, so Firth's penalised-likelihood estimate is reported, its 95% CI "
              "from the profile penalised likelihood and p from the penalised likelihood-ratio test (as R logistf)")


@dataclass(frozen=True)
class FirthInference:
    """A separated logistic fit replaced by Firth's (module docstring): its data and fit, for the
    profile CI and the penalised likelihood-ratio test of any coefficient(s)."""
    X: np.ndarray
    y: np.ndarray
    fit: FirthFit

    def ci(self, j: int) -> tuple[float, float]:
        lo, hi, _ = profile_ci(self.X, self.y, self.fit, j)
        return lo, hi

    def test(self, idx) -> tuple[float, int, float]:
        """(chi-squared, df, p) of the penalised likelihood-ratio test that the coefficients ``idx`` are 0."""
        return plr_test(self.X, self.y, self.fit, idx)

    def row(self, j: int) -> dict:
        """A table row like :func:`_wald`'s for coefficient ``j``."""
        lo, hi = self.ci(j)
        return {"estimate": float(self.fit.beta[j]), "se": float(math.sqrt(self.fit.cov[j, j])), "ci_low": lo,
                "ci_high": hi, "p": self.test([j])[2], "inference": FIRTH_INFERENCE}


def stratified_matrix(design: Design) -> tuple[np.ndarray, list[str]]:
    """Fixed columns of the stratified model: the design's X without its covariate main effects,
    each replaced by one slope per trial (the random slopes of the one-stage model made fixed)."""
    X = design.X
    groups = pd.Series(design.groups, index=X.index)
    slopes = [c for c in design.Z.columns if c != "treat"]
    keep = [c for c in X.columns if c not in slopes]
    cols = [X[c].to_numpy(float) for c in keep]
    names = list(keep)
    for c in slopes:
        v = design.Z[c].to_numpy(float)
        for g in sorted(groups.unique(), key=str):
            col = v * (groups == g).to_numpy(float)
            if np.any(col != 0):
                cols.append(col)
                names.append(f"{c}|trial[{g}]")
    return np.column_stack(cols), names


def ols(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Least squares: (beta, covariance sigma² (X'X)⁻¹, residual df); columns must be of full rank."""
    n, p = X.shape
    Q, R = np.linalg.qr(X)
    if np.min(np.abs(np.diag(R))) < 1e-10 * max(1.0, np.abs(np.diag(R)).max()):
        raise np.linalg.LinAlgError("design not of full column rank")
    beta = np.linalg.solve(R, Q.T @ y)
    df = n - p
    if df <= 0:
        raise np.linalg.LinAlgError("no residual degrees of freedom")
    s2 = float(((y - X @ beta) ** 2).sum() / df)
    Rinv = np.linalg.inv(R)
    return beta, s2 * Rinv @ Rinv.T, df


def logistic(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, FirthInference | None]:
    """Logistic regression (:func:`training.mixed.glm.logistic_glm`): (beta, inverse information, None);
    where the estimates run off and the data are separated, Firth's fit: (beta, logistf's covariance,
    its :class:`FirthInference`). Raises FloatingPointError when an estimate diverges otherwise or
    Firth's fit does not converge."""
    y = np.asarray(y, float)
    beta, info = logistic_glm(X, y, np.ones(len(y)))
    try:
        cov = np.linalg.inv(info)
        runs_off = (np.abs(beta).max() > 15 or not np.all(np.isfinite(cov))
                    or np.sqrt(np.abs(np.diag(cov))).max() > 1e3)
    except np.linalg.LinAlgError:
        runs_off = True
    if not runs_off:
        return beta, cov, None
    if not separated(X, y):
        raise FloatingPointError("estimates diverge (no separation found by Konis's LP test)")
    f = firth(X, y)
    if not f.converged:
        raise FloatingPointError("separation, and Firth's penalised-likelihood fit did not converge")
    return f.beta, f.cov, FirthInference(X, y, f)


def _wald(est: float, se: float, df: int | None) -> dict:
    q = stats.t.ppf(0.975, df) if df else stats.norm.ppf(0.975)
    p = 2 * (stats.t.sf(abs(est / se), df) if df else stats.norm.sf(abs(est / se)))
    return {"estimate": est, "se": se, "ci_low": est - q * se, "ci_high": est + q * se, "p": float(p),
            "inference": f"t({df})" if df else "z"}


def uninformative_trials(design: Design) -> list[str]:
    """Trials (of a binary outcome, with other trials beside them) in which every participant has
    the same outcome: no information on a common effect in the stratified model."""
    if not design.spec.binary_outcome or design.studies < 2:
        return []
    y = pd.Series(np.asarray(design.y, float)).groupby(np.asarray(design.groups).astype(str)).nunique()
    const = sorted(y.index[y == 1])
    return const if len(const) < len(y) else []


def stratified_fit(design: Design) -> tuple[list[str], np.ndarray, np.ndarray, int | None, FirthInference | None]:
    """The stratified common-effect model: (column names, estimates, covariance, residual df for
    a t reference or None for z, the :class:`FirthInference` of a separated binary fit or None).
    Raises LinAlgError / FloatingPointError when not estimable. Binary outcomes: trials of
    :func:`uninformative_trials` are left out (an exact simplification of the maximum likelihood,
    see the module docstring)."""
    X, names = stratified_matrix(design)
    y = np.asarray(design.y, float)
    if design.spec.binary_outcome:
        drop = uninformative_trials(design)
        if drop:
            rows = ~np.isin(np.asarray(design.groups).astype(str), drop)
            X, y = X[rows], y[rows]
            used = np.any(X != 0, axis=0)
            used[names.index("treat")] = True
            X, names = X[:, used], [n for n, u in zip(names, used) if u]
        beta, cov, fi = logistic(y, X)
        return names, beta, cov, None, fi
    beta, cov, df = ols(y, X)
    return names, beta, cov, df, None


def fit_label(design: Design) -> str:
    """The analysis in words. A single trial's linear fit is an ANCOVA only if it adjusts for something
    (the baseline or a covariate); with neither it is a plain difference in means, named so."""
    if design.studies != 1:
        return COMMON_LABEL
    if design.spec.binary_outcome:
        return SINGLE_BINARY
    adjusts = any(c != "treat" and not c.startswith("trial[") for c in design.X.columns)
    return SINGLE_LINEAR if adjusts else SINGLE_MEANS


def common_effect(design: Design, target: str) -> dict:
    """The stratified common-effect (or, with one trial, the single-trial) fit of ``target``."""
    label = fit_label(design)
    try:
        names, beta, cov, df, fi = stratified_fit(design)
        if target not in names:
            raise np.linalg.LinAlgError(f"'{target}' does not vary in the trials with an estimable fit")
        j = names.index(target)
        out = _wald(float(beta[j]), float(math.sqrt(cov[j, j])), df) if fi is None else fi.row(j)
    except (np.linalg.LinAlgError, FloatingPointError) as exc:
        return {"label": label, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p": np.nan, "inference": "", "message": f"{label} not estimable: {exc}"}
    drop = uninformative_trials(design)
    notes = [f"{label}: {len(drop)} trial(s) where every participant had the same outcome left out (no "
             f"information on the effect): {', '.join(drop)}"] if drop else []
    if fi is not None:
        notes.append(f"{label}: {FIRTH_NOTE}")
    return {"label": label, **out, "message": "; ".join(notes)}


def per_trial_effects(design: Design, target: str = "treat") -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Per-trial estimate and variance of ``target`` from the same regression within each trial;
    returns (estimates, variances, trials left out with the reason, separated trials whose Firth
    estimate and logistf variance were used)."""
    X, names = stratified_matrix(design)
    y = np.asarray(design.y, float)
    groups = np.asarray(design.groups).astype(str)
    est, var, skipped, firth_used = [], [], [], []
    for g in sorted(set(groups)):
        rows = groups == g
        if design.spec.binary_outcome and np.unique(y[rows]).size < 2:
            skipped.append(f"{g} (every participant had the same outcome: no information on the effect)")
            continue
        Xg = X[rows]
        used = [i for i, n in enumerate(names) if np.any(Xg[:, i] != 0)]
        Xg = Xg[:, used]
        j = [names[i] for i in used].index(target)
        try:
            if design.spec.binary_outcome:
                beta, cov, fi = logistic(y[rows], Xg)
                if fi is not None:
                    firth_used.append(g)
            else:
                beta, cov, _ = ols(y[rows], Xg)
        except (np.linalg.LinAlgError, FloatingPointError) as exc:
            skipped.append(f"{g} ({exc})")
            continue
        est.append(float(beta[j]))
        var.append(float(cov[j, j]))
    return np.array(est), np.array(var), skipped, firth_used


def paule_mandel(y: np.ndarray, v: np.ndarray) -> float:
    """Paule–Mandel tau²: the root of Σ (y_i − μ(tau²))² / (v_i + tau²) = k − 1 (0 if none)."""
    k = len(y)

    def gen_q(t2):
        w = 1 / (v + t2)
        mu = (w * y).sum() / w.sum()
        return float((w * (y - mu) ** 2).sum()) - (k - 1)

    if k < 2 or gen_q(0.0) <= 0:
        return 0.0
    hi = max(float(np.var(y, ddof=1)), 1e-8)
    while gen_q(hi) > 0:
        hi *= 2
    return float(optimize.brentq(gen_q, 0.0, hi, xtol=1e-12 * max(1.0, hi)))


def hksj(y: np.ndarray, v: np.ndarray) -> dict:
    """Random-effects estimate with the Hartung–Knapp–Sidik–Jonkman interval (Paule–Mandel tau²)."""
    k = len(y)
    t2 = paule_mandel(y, v)
    w = 1 / (v + t2)
    mu = float((w * y).sum() / w.sum())
    q = float((w * (y - mu) ** 2).sum() / (k - 1))
    se = math.sqrt(q / w.sum())
    return {**_wald(mu, se, k - 1), "tau": math.sqrt(t2), "k": k}


def two_stage(design: Design) -> dict:
    """Two-stage random-effects estimate of the treatment effect with the HKSJ interval."""
    y, v, skipped, firth_used = per_trial_effects(design)
    notes = [f"trials left out of the two-stage analysis: {', '.join(skipped)}"] if skipped else []
    if firth_used:
        notes.append(f"separation within trial(s) {', '.join(firth_used)} (an arm where every participant had the "
                     "event, or none did): their Firth penalised-likelihood estimate and its variance (as R logistf) "
                     "enter the two-stage analysis")
    note = "; ".join(notes)
    if len(y) < 2:
        return {"label": HKSJ_LABEL, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p": np.nan, "tau": np.nan, "k": len(y), "inference": "",
                "message": "; ".join(m for m in (note, "two-stage random effects need at least 2 trials with an estimate") if m)}
    return {"label": HKSJ_LABEL, **hksj(y, v), "message": note}
