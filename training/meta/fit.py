"""Fit one model of the one-stage IPD meta-analysis and summarise it as a table row.

Continuous outcomes: linear mixed model by REML (optionally trial-specific residual variances).
Binary outcomes: logistic mixed model by maximum likelihood (Laplace approximation).
Inference: for the overall treatment effect, Wald with a t distribution on k−1 degrees of
freedom (k trials): with 7–10 trials z intervals under-covered (0.89–0.91) in the simulation
study while t(k−1) covered 0.94–0.97 (BENCHMARKS.md). Within-trial interactions use z, where
t(k−1) over-covered (1.00 at k = 5). The 95% prediction interval for the treatment effect
in a new trial is θ ± t_{k−2, 0.975}·√(SE² + τ²) with k trials (Higgins et al. 2009; Riley et
al. 2011), reported for overall-effect models. Next to every overall effect the common-effect
(stratified) estimate and the two-stage Hartung–Knapp–Sidik–Jonkman interval are reported
(``ce_*``, ``hksj_*`` columns, :mod:`training.meta.few_trials`), so that with few trials the effect
of the model choice is visible. A dataset of one trial gets the single-trial analysis (ANCOVA or
logistic regression, stratified model with k = 1), labelled in the ``analysis`` column.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from predict.errors import LbpError
from training.meta.design import Design
from training.learners.separation import separated
from training.meta.few_trials import FIRTH_INFERENCE, FIRTH_NOTE, FirthInference, common_effect, fit_label, stratified_fit, two_stage
from training.mixed import fit_glmm_binomial, fit_lmm


def fit_design(design: Design, residual: str = "common"):
    if design.spec.binary_outcome:
        return fit_glmm_binomial(design.y, design.X, design.Z, design.groups, method="laplace", re_cov="diagonal")
    return fit_lmm(design.y, design.X, design.Z, design.groups, method="REML", re_cov="diagonal", residual=residual)


ONE_STAGE = {False: "one-stage random effects (REML)", True: "one-stage random effects (ML, Laplace)"}
FEW_COLUMNS = ["ce_estimate", "ce_ci_low", "ce_ci_high", "ce_p", "ce_label", "hksj_estimate", "hksj_ci_low",
               "hksj_ci_high", "hksj_p", "hksj_tau", "hksj_studies", "hksj_label"]


def diverged(est: float, se: float) -> bool:
    """A logistic estimate that ran off (|log OR| > 15 or SE > 1000, as in
    :func:`training.meta.few_trials.logistic`): separation, not a number to report."""
    return not (math.isfinite(est) and math.isfinite(se)) or abs(est) > 15 or se > 1e3


def separation_note(design: Design, what: str, est: float, se: float) -> str:
    """Why a one-stage logistic (GLMM) estimate that ran off is not reported: separation of its
    fixed-effects design by Konis's LP test, or not. Firth's correction is not defined here for the
    random-effects model; the common-effect (stratified) columns of an overall effect carry it."""
    X = design.X.to_numpy(float)
    if separated(X[:, np.any(X != 0, axis=0)], np.asarray(design.y, float)):
        return (f"{what}: estimate diverges (log odds ratio {est:.3g}, SE {se:.3g}): separation (Konis's LP test: e.g. "
                "no events, or only events, in one arm of a level), so no maximum-likelihood estimate exists; this "
                "one-stage random-effects model has no Firth correction here"
                + ("; the common-effect (stratified) estimate is Firth's" if design.spec.modifier is None else ""))
    return (f"{what}: estimate diverges (log odds ratio {est:.3g}, SE {se:.3g}), although Konis's LP test finds no "
            "separation of the fixed effects: near-separation or a random-effects boundary; not reported")


def _few_trials(design: Design) -> dict:
    """Common-effect (stratified) and two-stage HKSJ columns of an overall-effect row."""
    ce, hk = common_effect(design, "treat"), two_stage(design)
    out = {"ce_estimate": ce["estimate"], "ce_ci_low": ce["ci_low"], "ce_ci_high": ce["ci_high"], "ce_p": ce["p"],
           "ce_label": f"{ce['label']}, {ce['inference']}" if ce["inference"] else ce["label"],
           "hksj_estimate": hk["estimate"], "hksj_ci_low": hk["ci_low"], "hksj_ci_high": hk["ci_high"],
           "hksj_p": hk["p"], "hksj_tau": hk["tau"], "hksj_studies": hk["k"], "hksj_label": hk["label"]}
    return out, [m for m in (ce["message"], hk["message"]) if m]


def _levels(row: dict, spec, names: list[str], beta, cov, dist, levels: tuple, base: dict, absent: tuple = (),
            firth: FirthInference | None = None) -> dict:
    """A categorical modifier: one row per non-reference level (its within-trial interaction vs
    the reference level) and a joint Wald test of all of them (chi-squared on k − 1 df, or F with
    a t reference), returned as the joint row with the level rows under ``per_level``. A separated
    fit replaced by Firth's (``firth``): profile penalised-likelihood CIs and penalised
    likelihood-ratio tests instead."""
    m, ref = spec.modifier, levels[0]
    idx = [names.index(f"treat:{m}[{lv}]_c") if f"treat:{m}[{lv}]_c" in names else None for lv in levels[1:]]
    ppf, sf, df = dist
    z = ppf(0.975)
    per = []
    for lv, j in zip(levels[1:], idx):
        r = {**row, **base, "level": f"{lv} vs {ref}"}
        if j is None:
            per.append({**r, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                        "status": "not estimable",
                        "message": (f"level {lv!r}: no analysed participant has it" if f"{m}[{lv}]" in absent
                                    else f"level {lv!r} does not vary within any trial")})
            continue
        if firth is not None:
            per.append({**r, **firth.row(j)})
            continue
        est, se = float(beta[j]), float(math.sqrt(cov[j, j]))
        if spec.binary_outcome and diverged(est, se):
            per.append({**r, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                        "status": "not estimable", "message": f"level {lv!r}: estimate diverges (log odds ratio "
                        f"{est:.3g}, SE {se:.3g}): separation, e.g. no events (or only events) in one arm of the level"})
            continue
        per.append({**r, "estimate": est, "se": se, "ci_low": est - z * se, "ci_high": est + z * se,
                    "p": float(2 * sf(abs(est / se))) if se > 0 else np.nan})
    use = [j for j in idx if j is not None]
    b = np.asarray(beta)[use]
    V = np.asarray(cov)[np.ix_(use, use)]
    try:
        if firth is not None:
            stat, q, p = firth.test(use)
            test = f"joint penalised likelihood-ratio test of the {q} level interaction(s): chi2 = {stat:.3f} on {q} df"
        else:
            stat = float(b @ np.linalg.solve(V, b))
            q = len(use)
            p = float(stats.f.sf(stat / q, q, df) if df else stats.chi2.sf(stat, q))
            test = (f"joint Wald test of the {q} level interaction(s): {'F' if df else 'chi2'} = "
                    f"{stat / q if df else stat:.3f} on {q}{f', {df}' if df else ''} df")
    except np.linalg.LinAlgError:
        p, test = np.nan, "joint Wald test not estimable (singular covariance)"
    joint = {**row, **base, "level": f"joint test ({len(use)} df)", "estimate": np.nan, "se": np.nan,
             "ci_low": np.nan, "ci_high": np.nan, "p": p,
             "message": "; ".join(x for x in (base.get("message", ""), test) if x), "per_level": per}
    return joint


def _single_trial(design: Design, row: dict, target: str) -> dict:
    lv = dict(design.spec.levels).get(design.spec.modifier) if design.spec.modifier else None
    if lv and len(lv) > 2:
        label = fit_label(design)
        base = {"tau": np.nan, "tau_at_boundary": False, "pi_low": np.nan, "pi_high": np.nan, "status": "ok",
                "analysis": label, "message": "one trial: no between-trial variation to estimate, no pooling"}
        try:
            names, beta, cov, df, fi = stratified_fit(design)
        except (np.linalg.LinAlgError, FloatingPointError) as exc:
            return {**row, **base, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                    "p": np.nan, "inference": "", "status": "not estimable", "message": f"{label} not estimable: {exc}"}
        dist = ((lambda x: stats.t.ppf(x, df)), (lambda x: stats.t.sf(x, df)), df) if df else (
            stats.norm.ppf, stats.norm.sf, None)
        if fi is not None:
            base = {**base, "message": f"{base['message']}; {label}: {FIRTH_NOTE}"}
        inference = FIRTH_INFERENCE if fi is not None else f"t({df})" if df else "z"
        return _levels(row, design.spec, names, beta, cov, dist, lv, {**base, "inference": inference},
                       design.absent, fi)
    ce = common_effect(design, target)
    status = "ok" if np.isfinite(ce["estimate"]) else "not estimable"
    return {**row, "estimate": ce["estimate"], "se": ce["se"], "ci_low": ce["ci_low"], "ci_high": ce["ci_high"],
            "p": ce["p"], "tau": np.nan, "tau_at_boundary": False, "pi_low": np.nan, "pi_high": np.nan,
            "inference": ce["inference"], "status": status, "analysis": ce["label"],
            "message": "; ".join(m for m in ("one trial: no between-trial variation to estimate, no pooling",
                                             ce["message"]) if m)}


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
    levels = dict(spec.levels).get(spec.modifier) if spec.modifier else None
    if levels and len(levels) == 2:  # two levels: one indicator, one row
        target = f"treat:{spec.modifier}[{levels[1]}]_c"
        row["level"] = f"{levels[1]} vs {levels[0]}"
    if design.studies == 1:
        return _single_trial(design, row, target)
    try:
        res = fit_design(design, residual)
    except LbpError as exc:
        return {**row, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                "tau": np.nan, "tau_at_boundary": False, "pi_low": np.nan, "pi_high": np.nan, "inference": "",
                "status": "failed", "message": str(exc), "analysis": ONE_STAGE[spec.binary_outcome]}
    if spec.modifier is None:
        few, few_msgs = _few_trials(design)
        row.update(few)
    tau = float(res.re_sd["treat"]) if "treat" in res.re_sd.index else 0.0
    k = design.studies
    messages = list(res.messages) + (few_msgs if spec.modifier is None else [])
    # Trial-level treatment terms (treat, and treat x the modifier's trial mean) leave k - 2
    # degrees of freedom for tau; with none left the likelihood is flat in tau (any value fits
    # equally; the within-trial estimate and SE do not depend on it), so tau is not reported.
    trial_level = 1 + sum(c.endswith("_trialmean") for c in design.X.columns)
    tau_identified = k > trial_level
    if not tau_identified:
        tau = np.nan
        messages.append(f"tau not identified: {k} trials and {trial_level} trial-level treatment terms")
    use_t = spec.modifier is None and k > 1
    # Unfrozen distribution methods: the same numbers as stats.t(k - 1).ppf etc., without the
    # ~1 ms of building a frozen distribution per model.
    ppf = (lambda x: stats.t.ppf(x, k - 1)) if use_t else stats.norm.ppf
    sf = (lambda x: stats.t.sf(x, k - 1)) if use_t else stats.norm.sf
    z = ppf(0.975)
    if levels and len(levels) > 2:
        base = {"tau": tau, "tau_at_boundary": bool(tau_identified and tau <= 1e-8), "pi_low": np.nan,
                "pi_high": np.nan, "inference": "z", "status": res.status, "message": "; ".join(messages),
                "analysis": ONE_STAGE[spec.binary_outcome]}
        names = list(res.params.index)
        return _levels(row, spec, names, res.params.to_numpy(), res.vcov.to_numpy(), (ppf, sf, None), levels, base,
                       design.absent)
    est = float(res.params[target])
    se = float(res.bse[target])
    if spec.binary_outcome and diverged(est, se):
        return {**row, "estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                "tau": tau, "tau_at_boundary": False, "pi_low": np.nan, "pi_high": np.nan, "inference": "",
                "status": "not estimable", "analysis": ONE_STAGE[spec.binary_outcome],
                "message": "; ".join([separation_note(design, row["variable"], est, se)] + messages)}
    if spec.modifier is None and k > 2 and tau_identified:
        half = stats.t.ppf(0.975, k - 2) * math.sqrt(se**2 + tau**2)
        pi = (est - half, est + half)
    else:
        pi = (np.nan, np.nan)
    return {
        **row, "estimate": est, "se": se, "ci_low": est - z * se, "ci_high": est + z * se,
        "p": float(2 * sf(abs(est / se))) if se > 0 else np.nan,
        "tau": tau, "tau_at_boundary": bool(tau_identified and tau <= 1e-8 * max(1.0, abs(est))),
        "pi_low": pi[0], "pi_high": pi[1], "inference": f"t({k - 1})" if use_t else "z", "status": res.status,
        "message": "; ".join(messages), "analysis": ONE_STAGE[spec.binary_outcome],
    }
