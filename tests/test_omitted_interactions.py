"""The risk model's omitted-interaction allowance (training.learners.omitted_interactions) against
known truth: the moment estimate of the patients' mean squared benefit outside the index's
direction recovers the simulated value, is ~0 when the benefit varies along the index only, and
the opt-in RiskModel adds exactly that mean variance to its served SE on the training rows."""
import numpy as np

from predict.features import feature_matrix
from predict.uncertainty import estimation_se
from training.learners.omitted_interactions import omitted_interaction_cov
from training.learners.risk_model import RiskModel
from training.simulate.small_trials import small_trials


def _sim(delta, n_trials=12, n_per=1500, seed=0):
    rng = np.random.default_rng(seed)
    n = n_trials * n_per
    trial = np.repeat(np.arange(n_trials), n_per)
    P = rng.normal(size=(n, 4)) * np.array([1.0, 2.0, 0.5, 1.5]) + rng.normal(size=(n_trials, 4))[trial]
    treat = rng.binomial(1, 0.5, n).astype(float)
    cls = np.where(treat == 1, "exercise", "usual_care")
    beta = np.array([3.0, 1.0, 0.0, 0.0])  # the prognostic index
    Pc_t = P - np.array([P[trial == t].mean(0) for t in range(n_trials)])[trial]
    y = rng.normal(0, 5, n_trials)[trial] + P @ beta + treat * (2.0 + Pc_t @ delta) + rng.normal(0, 6, n)
    Pc = P - P.mean(0)
    S = Pc.T @ Pc / n
    return y, trial, cls, treat, P, beta, S


def test_moment_estimate_recovers_the_omitted_variance():
    delta = np.array([0.5, 0.0, 2.0, -0.8])  # partly along the index, mostly not
    y, trial, cls, treat, P, beta, S = _sim(delta)
    V_add, info = omitted_interaction_cov(y, trial, cls, treat, ["usual_care"], P, beta, 1e-6, 36.0)
    Q = np.eye(4) - np.outer(beta, beta @ S) / (beta @ S @ beta)
    truth = float((Q @ delta) @ S @ (Q @ delta))
    assert truth > 1.0
    assert abs(info["m2"] - truth) < 0.1 * truth
    # the allowance spreads exactly m2 over the training patients, none along the index
    np.testing.assert_allclose(np.trace(S @ V_add), info["m2"], rtol=1e-10)
    np.testing.assert_allclose(V_add @ S @ beta, 0.0, atol=1e-10)


def test_no_allowance_when_the_benefit_varies_along_the_index_only():
    for delta in (np.zeros(4), 0.4 * np.array([3.0, 1.0, 0.0, 0.0])):
        y, trial, cls, treat, P, beta, S = _sim(delta, seed=2)
        V_add, info = omitted_interaction_cov(y, trial, cls, treat, ["usual_care"], P, beta, 1e-6, 36.0)
        # the naive quadratic form is noise only; the correction removes it (its own SE ~ noise)
        assert info["m2"] <= 2.5 * info["noise"] and info["m2"] < 0.05
        assert abs(info["m2_raw"]) < 3 * info["noise"]


def test_risk_model_adds_the_allowance_to_its_served_se():
    X, y, _ = small_trials(n_trials=10, n_per_arm=120, seed=5, bmi_mod=1.5, effect_mod=6.0)
    X = X.reset_index(drop=True)
    kw = dict(n_boot=8, random_state=0, splines=False)
    off = RiskModel(**kw).fit(X, y)
    on = RiskModel(omitted_interactions=True, **kw).fit(X, y)
    info = on.to_export()["interval"]["omitted_interactions"]
    assert "omitted_interactions" not in off.to_export()["interval"]  # default unchanged
    assert info["m2"] > 0
    np.testing.assert_allclose(off.to_export()["linear"]["theta"], on.to_export()["linear"]["theta"])  # same point
    ea, eb = off.to_export(), on.to_export()
    F = feature_matrix(ea["features"], X)
    c = ea["comparators"][0]
    sa, sb = estimation_se(ea, F, comparators=[c])[c], estimation_se(eb, F, comparators=[c])[c]
    extra = sb ** 2 - sa ** 2
    assert (extra >= -1e-9).all() and extra.max() > 2 * info["m2"]  # more for patients far out
    # the mean added variance over the training rows is the estimate itself
    np.testing.assert_allclose(extra.mean(), info["m2"], rtol=1e-6)
    # and the served interval (predict_interval) is wider
    col = f"benefit_vs_{c}_se"
    assert (on.predict_interval(X)[col] >= off.predict_interval(X)[col] - 1e-9).all()
