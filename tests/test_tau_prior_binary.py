"""The pooled between-trial tau of a binary outcome's new-setting PI under a half-normal prior fixed on the
log-odds scale (training.learners.intervals: TAU_PRIOR_LOGIT, tau_prior, posterior_tau2_classes; train's
default since session 13, BENCHMARKS.md session 13 s13b): checked against an independent integration of the full likelihood, against
known truth (a new trial's deviation covered 90-97%, where the REML plug-in covers < 85%), and where it acts."""
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from predict.numeric import expit
from training.learners import intervals
from training.learners.intervals import posterior_tau2, posterior_tau2_classes, tau_from_deviations, tau_prior


def _by_quadrature(groups, scale):
    """E[tau^2 | data]: every class's mean integrated out numerically from the full normal likelihood
    (no restricted-likelihood algebra), times a half-normal prior on tau."""
    tt = np.linspace(0.0, 8 * scale, 401)
    logm = stats.halfnorm.logpdf(tt, scale=scale)
    for e, s in groups:
        e, s = np.asarray(e, float), np.asarray(s, float)
        mu = np.linspace(e.mean() - 0.6, e.mean() + 0.6, 1201)
        ll = stats.norm.logpdf(e[None, None, :], mu[None, :, None],
                               np.sqrt(s ** 2 + tt[:, None, None] ** 2)).sum(-1)
        top = ll.max(1, keepdims=True)
        logm = logm + np.log(integrate.trapezoid(np.exp(ll - top), mu, axis=1)) + top[:, 0]
    w = np.exp(logm - logm.max())
    return integrate.trapezoid(tt ** 2 * w, tt) / integrate.trapezoid(w, tt)


def test_class_means_posterior_matches_independent_quadrature():
    g = [([0.05, -0.02, 0.01, 0.04], [0.03, 0.04, 0.03, 0.05]), ([0.20, 0.12, 0.15], [0.04, 0.03, 0.05]),
         ([0.3], [0.05])]  # the one-trial class carries no information on tau
    assert posterior_tau2_classes(g, 0.1) == pytest.approx(_by_quadrature(g[:2], 0.1), rel=3e-3)
    # one class: the single-mean posterior of posterior_tau2
    assert posterior_tau2_classes(g[:1], 0.1) == pytest.approx(posterior_tau2(*g[0], 0.1), rel=1e-12)
    assert posterior_tau2_classes(g, 0.0) == 0.0 and posterior_tau2_classes(g[2:], 0.1) == 0.0


def test_known_truth_a_new_trial_is_covered():
    """3 classes x 4 trials, true tau 0.04 (risk scale), trial SE 0.03: a new trial's deviation lies within
    +-1.96 tau_hat. The REML plug-in pooled over deviations centred at their class means is 0 in ~7% of
    the meta-analyses and biased low (each class's centring removes a degree of freedom)."""
    rng = np.random.default_rng(11)
    hit_reml = hit_prior = 0
    R = 200
    for _ in range(R):
        devs = []
        for c in "abc":
            u = rng.normal(0, 0.04, 4)
            devs += [{"trial": f"{c}{i}", "comparator": c, "raw": float(u[i] + rng.normal(0, 0.03)), "se": 0.03}
                     for i in range(4)]
        new = abs(rng.normal(0, 0.04))
        hit_reml += new <= 1.96 * tau_from_deviations(devs, list("abc"), method="posterior")["__pooled__"]
        hit_prior += new <= 1.96 * tau_from_deviations(devs, list("abc"), method="posterior",
                                                       pooled_prior=0.5 * 0.2)["__pooled__"]
    assert hit_reml / R < 0.85
    assert 0.90 <= hit_prior / R <= 0.97


def test_prior_scale_is_on_the_risk_scale_and_binary_only(monkeypatch):
    p = np.array([0.2, 0.5, 0.7])
    assert tau_prior("binomial", p, 0.5) == pytest.approx(0.5 * np.mean(p * (1 - p)))
    assert tau_prior("gaussian", p, 0.5) is None
    monkeypatch.setattr(intervals, "TAU_PRIOR_LOGIT", None)
    assert tau_prior("binomial", p) is None  # train's default: the REML plug-in


def _trials(seed, binary):
    rng = np.random.default_rng(seed)
    rows = []
    for k, c in enumerate(["no_treatment"] * 4 + ["usual_care"] * 3 + ["other"] * 3):
        x = rng.normal(size=300)
        t = np.repeat([1, 0], 150)
        eta = -0.3 + 0.5 * x + t * (0.6 + rng.normal(0, 0.3))
        y = (rng.random(300) < expit(eta)).astype(int) if binary else 20 + 3 * x - 5 * eta + rng.normal(0, 8, 300)
        rows.append(pd.DataFrame({"trial": f"T{k}", "treatment": np.where(t == 1, "exercise", c), "x": x, "y": y}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("binary", [True, False])
def test_the_option_reaches_the_binary_export_only(monkeypatch, binary):
    from training.learners import ConstantEffect

    d = _trials(3, binary)
    kw = dict(features=["x"], n_boot=4, outcome_type="binary" if binary else "continuous")
    monkeypatch.setattr(intervals, "TAU_PRIOR_LOGIT", None)
    off = ConstantEffect(**kw).fit(d[["trial", "treatment", "x"]], d["y"]).export_["interval"]["tau"]
    monkeypatch.setattr(intervals, "TAU_PRIOR_LOGIT", 0.5)
    on = ConstantEffect(**kw).fit(d[["trial", "treatment", "x"]], d["y"]).export_["interval"]["tau"]
    if binary:
        assert on["__pooled__"] != off["__pooled__"] and on["__pooled__"] > 0
    else:
        assert on == off
