"""Binary outcomes: the new-setting PI's between-trial SD on the logit scale, mapped per patient.

- ``training.learners.intervals.binary_tau_logit`` recovers a known logit-scale SD of trial
  treatment effects (simulated trials, the model's probabilities known), the same whether the
  trials' risks sit near 10% or near 50%, where the risk-difference tau of ``residual_tau`` differs
  by the factor p(1 - p) predicts;
- ``predict.uncertainty.pi_tau`` maps it through each patient's arm probabilities, and keeps the
  one tau (a float: the same arithmetic as before) for continuous outcomes and for binary exports
  without ``tau_logit``;
- the PI of a fitted binary learner is wider where P(recovery) is near 50% than near 0 or 1, and
  equals the old one-tau form when ``tau_logit`` is removed from the export.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from predict.learner_model import as_learner
from predict.runtime import predict_from_export
from predict.uncertainty import pi_tau
from training.learners.intervals import binary_tau_logit, residual_tau


def _trials(tau_logit: float, base: float, k: int = 60, n: int = 600, seed: int = 0):
    """k two-arm trials (exercise vs 'usual_care'); log-odds = trial intercept + x/2 + 0.5 treat +
    (treat - 1/2) u_t, u_t ~ N(0, tau_logit^2); p_own = the probabilities without u_t (the model's
    own-arm fit, trial intercepts included)."""
    rng = np.random.default_rng(seed)
    trial, cls, y, p_own = [], [], [], []
    for t in range(k):
        a = base + rng.normal(0, 0.3)
        u = rng.normal(0, tau_logit)
        x = rng.normal(size=n)
        treat = (np.arange(n) % 2 == 0).astype(float)
        eta0 = a + x / 2 + 0.5 * treat
        eta = eta0 + (treat - 0.5) * u
        p_true = 1 / (1 + np.exp(-eta))
        y.append((rng.random(n) < p_true).astype(float))
        p_own.append(1 / (1 + np.exp(-eta0)))
        trial.append(np.full(n, t))
        cls.append(np.where(treat == 1, "exercise", "usual_care"))
    return (np.concatenate(y), np.concatenate(p_own), np.concatenate(trial), np.concatenate(cls))


@pytest.mark.parametrize("base", [-2.2, 0.0])  # risks near 10% and near 50%
def test_binary_tau_logit_recovers_the_logit_scale_sd(base):
    y, p, trial, cls = _trials(0.5, base)
    tau = binary_tau_logit(y, p, trial, cls, "exercise", ["usual_care"])
    assert 0.38 < tau["usual_care"] < 0.62, tau
    assert tau["__pooled__"] == pytest.approx(tau["usual_care"], rel=1e-9)  # one class: pooled = its own


def test_binary_tau_logit_is_near_zero_without_trial_deviations():
    y, p, trial, cls = _trials(0.0, 0.0, seed=1)
    assert binary_tau_logit(y, p, trial, cls, "exercise", ["usual_care"])["usual_care"] < 0.12


def test_the_risk_difference_tau_depends_on_the_risk_but_the_logit_tau_does_not():
    low = _trials(0.5, -2.2, seed=2)
    mid = _trials(0.5, 0.0, seed=2)
    rd = [residual_tau(yy, pp, tt, cc, "exercise", ["usual_care"])["usual_care"] for yy, pp, tt, cc in (low, mid)]
    lg = [binary_tau_logit(yy, pp, tt, cc, "exercise", ["usual_care"])["usual_care"] for yy, pp, tt, cc in (low, mid)]
    assert rd[0] < 0.6 * rd[1]  # p(1-p) ~ 0.1 vs ~ 0.24: the risk-scale SD is much smaller at low risk
    assert abs(lg[0] - lg[1]) < 0.15  # the same logit-scale SD


@pytest.fixture(scope="module")
def binary_fit():
    from training.learners.effect_model import EffectModel
    from training.simulate.small_trials import small_trials

    X, y, _ = small_trials(outcome="binary", seed=3, n_trials=16, tau=1.0)
    kw = dict(outcome_type="binary", active="exercise", random_state=0)
    return X, EffectModel(n_boot=20, **kw).fit(X, y)


def test_pi_tau_maps_the_logit_tau_through_each_patients_probabilities(binary_fit):
    _, m = binary_fit
    L = as_learner(m.to_export())
    c = L.comparators[0]
    tl = L.interval.tau_logit_of(c)
    assert tl is not None and tl >= 0
    pa, pc = np.array([0.5, 0.9, 0.02]), np.array([0.5, 0.8, 0.01])
    got = pi_tau(L, c, pa, pc)
    np.testing.assert_allclose(got, tl * (pa * (1 - pa) + pc * (1 - pc)) / 2, rtol=1e-12)
    assert got[0] > got[1] > got[2]
    old = copy.deepcopy(m.to_export())
    del old["interval"]["tau_logit"]
    assert pi_tau(as_learner(old), c, pa, pc) == L.interval.tau_of(c)  # older exports: the one tau


def test_continuous_learners_keep_the_one_tau():
    from training.learners.effect_model import EffectModel
    from training.simulate.small_trials import small_trials

    X, y, _ = small_trials(outcome="continuous", seed=3)
    m = EffectModel(n_boot=10, outcome_type="continuous", active="exercise", random_state=0).fit(X, y)
    exp = m.to_export()
    assert "tau_logit" not in exp["interval"]
    L = as_learner(exp)
    c = L.comparators[0]
    t = pi_tau(L, c, np.zeros(3), np.zeros(3))
    assert isinstance(t, float) and t == L.interval.tau_of(c)


def test_binary_pi_is_per_patient_and_the_old_form_without_tau_logit(binary_fit):
    X, m = binary_fit
    exp = m.to_export()
    c = exp["comparators"][0]
    z = 1.959963984540054
    p = predict_from_export(exp, X)
    pa, pc = p["expected_exercise"].to_numpy(), p[f"expected_{c}"].to_numpy()
    b, se = p[f"benefit_vs_{c}"].to_numpy(), p[f"benefit_vs_{c}_se"].to_numpy()
    half = (p[f"benefit_vs_{c}_pi_high"] - p[f"benefit_vs_{c}_pi_low"]).to_numpy() / 2
    tl = exp["interval"]["tau_logit"][c]
    inside = (b - z * np.sqrt(se ** 2) > -1) & (b + z * np.sqrt(se ** 2 + tl ** 2) < 1)  # not clipped
    want = z * np.sqrt(se ** 2 + (tl * (pa * (1 - pa) + pc * (1 - pc)) / 2) ** 2)
    f = as_learner(exp)
    from predict.support import support_scores
    from predict.features import feature_matrix

    fac = support_scores(f.support, feature_matrix(f.features, X))["factor"]
    ok = inside & (fac == 1.0)
    assert ok.sum() > 20
    np.testing.assert_allclose(half[ok], want[ok], rtol=1e-9)
    old = copy.deepcopy(exp)
    del old["interval"]["tau_logit"]
    po = predict_from_export(old, X)
    tau = exp["interval"]["tau"][c]
    half_old = (po[f"benefit_vs_{c}_pi_high"] - po[f"benefit_vs_{c}_pi_low"]).to_numpy() / 2
    np.testing.assert_allclose(half_old[ok], z * np.sqrt(se[ok] ** 2 + tau ** 2), rtol=1e-9)
    np.testing.assert_array_equal(po[f"benefit_vs_{c}_ci_low"], p[f"benefit_vs_{c}_ci_low"])  # the CI is unchanged
