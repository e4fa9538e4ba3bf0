"""Distance from the training support and intervals widened for extrapolation (predict.support)."""
import json

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from predict import support as sp
from predict.clinical_warnings import support_notes
from training.learners.effect_model import ConstantEffect, EffectModel
from training.simulate.small_trials import small_trials as toy_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def test_mahalanobis_matches_an_independent_computation_with_missing_values():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 4))
    S = A @ A.T + 4 * np.eye(4)
    mu = rng.normal(size=4)
    F = rng.normal(size=(50, 4)) * 2
    F[rng.random((50, 4)) < 0.3] = np.nan
    d2, k = sp.mahalanobis(mu, S, F)
    for i in range(50):
        o = ~np.isnan(F[i])
        assert k[i] == o.sum()
        if o.any():
            r = F[i, o] - mu[o]
            ref = r @ np.linalg.inv(S[np.ix_(o, o)]) @ r
            assert d2[i] == pytest.approx(ref, rel=1e-9, abs=1e-12)
        else:
            assert d2[i] == 0.0


def test_scores_of_one_patient_equal_those_of_a_batch_and_of_the_plain_computation():
    """support_scores of one patient (the API's case: Python floats, per-pattern Cholesky factors
    kept per support entry) equals the batch path and a computation from mahalanobis() itself."""
    rng = np.random.default_rng(5)
    p = 7
    A = rng.normal(size=(p, p))
    S = A @ A.T + np.eye(p)
    mu = rng.normal(size=p)
    X = rng.normal(size=(400, p)) @ np.linalg.cholesky(S).T + mu
    X[rng.random(X.shape) < 0.3] = np.nan
    feats = [0, 2, 3, 5, 6]
    sup = sp.fit_support(mu, S, X, features=feats)
    F = np.vstack([X[:200], rng.normal(size=(200, p)) * 4 + mu])  # inside and far beyond the support
    F[rng.random(F.shape) < 0.3] = np.nan
    F[7, feats] = np.nan  # no feature of the distance observed
    batch = sp.support_scores(sup, F)
    d2, k = sp.mahalanobis(sup["mean"], sup["cov"], F[:, feats])  # the plain computation, per call
    kk = np.maximum(k, 1)
    z = np.where(k > 0, (np.cbrt(d2 / kk) - (1 - 2 / (9 * kk))) / np.sqrt(2 / (9 * kk)), -np.inf)  # Wilson-Hilferty
    assert np.allclose(batch["z"], z, rtol=1e-12, atol=1e-12) and np.array_equal(np.isinf(batch["z"]), k == 0)
    assert (batch["factor"] > 1).any() and batch["rare"].any() and k[7] == 0
    for i in range(F.shape[0]):
        one = sp.support_scores(sup, F[i:i + 1])
        assert one["rare"][0] == batch["rare"][i]
        for key, tol in (("z", 1e-12), ("percentile", 1e-10), ("factor", 1e-12)):
            assert one[key][0] == pytest.approx(batch[key][i], rel=1e-12, abs=tol), (i, key)
    again = sp.support_scores(sup, F)  # the cached factors give the same numbers
    assert all(np.array_equal(again[key], batch[key]) for key in batch)


def test_calibrated_on_gaussian_training_data():
    """Wilson-Hilferty scores of chi-square distances are ~N(0, 1); the training cut leaves 5% of
    the training rows widened and 1% rare, whatever the number of observed features."""
    rng = np.random.default_rng(1)
    p = 5
    F = rng.normal(size=(20000, p))
    F[rng.random(F.shape) < 0.3] = np.nan
    sup = sp.fit_support(np.zeros(p), np.eye(p), F)
    assert sup["cut"] == pytest.approx(stats.norm.ppf(0.95), abs=0.08)
    s = sp.support_scores(sup, F)
    assert (s["factor"] > 1).mean() == pytest.approx(0.05, abs=0.01)
    assert s["rare"].mean() == pytest.approx(0.01, abs=0.004)
    for k in (1, 3, 5):  # each number of observed features is widened about equally often
        rows = (~np.isnan(F)).sum(1) == k
        assert (s["factor"][rows] > 1).mean() == pytest.approx(0.05, abs=0.025)
    # the factor grows with the distance: (d / d_cut)^2 beyond the cut
    far = sp.support_scores(sup, np.array([[6.0, 0, 0, 0, 0], [12.0, 0, 0, 0, 0]]))
    assert far["rare"].all() and far["factor"][1] > far["factor"][0] > 1
    r2 = sp._radius2(sup["cut"], np.array([5.0]))[0]
    assert far["factor"][0] == pytest.approx(36.0 / r2, rel=1e-9)


def test_widen_scales_half_widths_and_respects_limits():
    b = np.array([0.0, 90.0])
    lo, hi = sp.widen(b, np.array([-2.0, 85.0]), np.array([2.0, 95.0]), np.array([2.0, 3.0]), 100.0)
    assert lo.tolist() == [-4.0, 75.0] and hi.tolist() == [4.0, 100.0]


@pytest.fixture(scope="module")
def fitted():
    X, y, truth = toy_trials(n_trials=14, n_per_arm=80, seed=11, noise=10.0, effect_mod=5.0, missing=0.1,
                             systematic=True, tau=2.0)
    return X, y, EffectModel(n_boot=20).fit(X, y)


def test_learner_widens_only_beyond_the_support_and_says_so(fitted):
    X, y, m = fitted
    exp = json.loads(json.dumps(m.to_export()))  # survives JSON
    sup = exp["support"]
    names = exp["features"]["names"]
    assert "fear_avoidance" in [names[j] for j in sup["features"]]  # the toy's modifier drives it
    centre = X.head(1).copy()
    for c in ("age", "bmi", "fear_avoidance", "baseline_pain"):
        centre[c] = float(X[c].median())
    far = centre.copy()
    far["fear_avoidance"] = float(X["fear_avoidance"].max()) + 15.0
    s = m.support_scores(pd_concat(centre, far))
    assert s["factor"][0] == 1.0 and not s["rare"][0]
    assert s["factor"][1] > 1.2 and s["rare"][1]
    # the interval of the far patient equals the unwidened one scaled by the factor
    p = m.predict_interval(far)
    plain = dict(exp, support={"method": "none", "features": []})
    from predict.runtime import predict_from_export

    q = predict_from_export(plain, far)
    for c in exp["comparators"]:
        w = p[f"benefit_vs_{c}_ci_high"] - p[f"benefit_vs_{c}_ci_low"]
        w0 = q[f"benefit_vs_{c}_ci_high"] - q[f"benefit_vs_{c}_ci_low"]
        assert float(w.iloc[0]) == pytest.approx(s["factor"][1] * float(w0.iloc[0]), rel=1e-9)
        wp = p[f"benefit_vs_{c}_pi_high"] - p[f"benefit_vs_{c}_pi_low"]
        wp0 = q[f"benefit_vs_{c}_pi_high"] - q[f"benefit_vs_{c}_pi_low"]
        assert float(wp.iloc[0]) == pytest.approx(s["factor"][1] * float(wp0.iloc[0]), rel=1e-9)
    note = support_notes([exp], m_features(exp, far))[0]
    assert note and note[0].startswith("patients like this were rare in the trials")


def test_constant_model_has_nothing_to_extrapolate(fitted):
    X, y, _ = fitted
    c = ConstantEffect(n_boot=5).fit(X, y)
    assert c.to_export()["support"]["features"] == []
    far = X.head(1).assign(fear_avoidance=500.0)
    assert c.support_scores(far)["factor"][0] == 1.0


def pd_concat(a, b):
    import pandas as pd

    return pd.concat([a, b], ignore_index=True)


def m_features(exp, X):
    from predict.features import feature_matrix

    return feature_matrix(exp["features"], X)
