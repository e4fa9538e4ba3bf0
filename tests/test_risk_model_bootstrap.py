"""The risk model's trial-cluster bootstrap refits both stages (the prognostic index too): its
exported covariance equals the spread of independent refits of the whole learner on the same
bootstrap replicates (an independent computation through the public API)."""
import numpy as np
import pandas as pd

from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.linear import linear_parts
from training.learners.intervals import cluster_bootstrap
from training.learners.risk_model import RiskModel, to_basis
from training.simulate.small_trials import small_trials


def _data():
    X, y, _ = small_trials(n_trials=8, n_per_arm=70, seed=11, outcome="binary", effect_mod=8.0, exercise_only=0)
    return X.reset_index(drop=True), np.asarray(y, float)


def test_to_basis_gives_the_two_stage_predictions():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(50, 4))
    Pbar = P.mean(0) + 0.3  # a centre other than these rows' mean
    beta, th2 = rng.normal(size=4), rng.normal(size=5)  # [alpha, 2 offsets, b, gamma]
    pibar = 0.7
    th = to_basis(th2, beta, pibar, Pbar, 2)
    pi = P @ beta
    act_two = th2[0] + th2[3] * pi + th2[4] * (pi - pibar)
    act_basis = th[0] + P @ th[3:7] + (P - Pbar) @ th[7:11]
    np.testing.assert_allclose(act_basis, act_two, atol=1e-12)
    for i in range(2):
        np.testing.assert_allclose(th[0] + th[1 + i] + P @ th[3:7], th2[0] + th2[1 + i] + th2[3] * pi, atol=1e-12)


def test_bootstrap_covariance_is_the_spread_of_refits_of_both_stages():
    X, y = _data()
    # (stage-1 penalty ~0: a refit standardises the basis on its own rows, which rescales a ridge penalty)
    kw = dict(outcome_type="binary", splines=False, shrinkage_bias=False, n_draws=2, prognostic_sd=1e3)
    B = 6
    m = RiskModel(n_boot=B, random_state=3, **kw).fit(X, y)
    exp = m.to_export()
    probe = X.iloc[::37]
    F = impute_mean(exp["imputer"], feature_matrix(exp["features"], probe))
    eta, grad = linear_parts(exp["linear"], list(exp["comparators"]), F)
    V = np.asarray(exp["interval"]["theta_cov"], float)
    sd_export = np.sqrt(np.einsum("ij,jk,ik->i", grad["__active__"], V, grad["__active__"]))
    # the same replicates, each a fresh fit of the whole learner (index included) on its rows
    labels, trial = np.unique(X["trial"].astype(str), return_inverse=True)
    cls = X["treatment"].astype(str).to_numpy()
    has = np.array([(cls[trial == t] != "exercise").any() for t in range(labels.size)])
    refits = []
    comps = set(exp["comparators"])
    for idx, codes in cluster_bootstrap(trial, has, B, 3, strata=cls):
        if not comps <= set(cls[idx]):
            continue  # as the learner: a replicate without some class is skipped
        Xb = X.iloc[idx].assign(trial=[f"r{k:02d}" for k in codes])
        fb = RiskModel(n_boot=0, **kw).fit(Xb, y[idx])
        p = fb.predict(probe)["expected_exercise"].to_numpy()
        refits.append(np.log(p / (1 - p)))
    assert len(refits) == exp["interval"]["n_boot"] >= 4
    sd_refit = np.std(np.array(refits), axis=0, ddof=1)
    # equal up to the tiny ridge on the logistic trial intercepts (1e-3), which a refit applies to
    # intercepts shifted by its own basis centring
    np.testing.assert_allclose(sd_export, sd_refit, rtol=5e-3)


def test_summary_reports_the_two_stage_parameters():
    X, y = _data()
    m = RiskModel(outcome_type="binary", n_boot=5, random_state=1).fit(X, y)
    s = m.summary().set_index("term")
    assert list(s.index[-2:]) == ["prog[prognostic_index]", "active x [prognostic_index]"]
    assert (s["se"] > 0).all()
    pi = m.prognostic_index(X)
    assert abs(pi.std() - 1) < 0.05  # SD units on the training rows
