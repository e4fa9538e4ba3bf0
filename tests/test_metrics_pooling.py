"""Random-effects pooling: known answers (BCG vaccine data as in metafor), an independent
implementation (statsmodels combine_effects for DL / HKSJ), a brute-force REML likelihood."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from predict.errors import LbpError
from training.metrics import c_for_benefit, pool_metric, pool_random_effects

# BCG vaccine trials (Colditz et al. 1994; metafor dat.bcg): tpos, tneg, cpos, cneg
BCG = np.array([
    [4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
    [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
    [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
    [27, 16886, 29, 17825]], float)


def bcg():
    tp, tn, cp, cn = BCG.T
    yi = np.log((tp / (tp + tn)) / (cp / (cp + cn)))
    vi = 1 / tp - 1 / (tp + tn) + 1 / cp - 1 / (cp + cn)
    return yi, vi


def test_bcg_reml_matches_published_metafor_output():
    # metafor::rma(yi, vi, data = escalc("RR", ...dat.bcg), method = "REML"):
    # estimate -0.7145, se 0.1798, tau^2 0.3132, I^2 92.22%, Q 152.2330
    yi, vi = bcg()
    r = pool_random_effects(yi, np.sqrt(vi), method="REML")
    assert r.estimate == pytest.approx(-0.7145, abs=5e-4)
    assert r.se == pytest.approx(0.1798, abs=5e-4)
    assert r.tau2 == pytest.approx(0.3132, abs=5e-4)
    assert r.i2 == pytest.approx(0.9222, abs=5e-4)
    assert r.q == pytest.approx(152.2330, abs=1e-3)
    assert r.k == 13 and r.n_excluded == 0
    # Hartung-Knapp (metafor test = "knha"): CI -1.1084 to -0.3206
    hk = pool_random_effects(yi, np.sqrt(vi), method="REML", hartung_knapp=True)
    assert (hk.ci_low, hk.ci_high) == pytest.approx((-1.1084, -0.3206), abs=5e-4)


def test_dl_matches_statsmodels():
    yi, vi = bcg()
    ref = combine_effects(yi, vi, method_re="dl", use_t=False)
    r = pool_random_effects(yi, np.sqrt(vi), method="DL")
    assert r.estimate == pytest.approx(ref.mean_effect_re, rel=1e-10)
    assert r.tau2 == pytest.approx(ref.tau2, rel=1e-10)
    assert r.se == pytest.approx(ref.sd_eff_w_re, rel=1e-10)
    assert r.i2 == pytest.approx(ref.i2, rel=1e-10)
    ci = ref.conf_int(alpha=0.05)[1]
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(ci), rel=1e-10)
    hk = pool_random_effects(yi, np.sqrt(vi), method="DL", hartung_knapp=True)
    ci_hk = combine_effects(yi, vi, method_re="dl", use_t=True).conf_int(alpha=0.05)[3]
    assert (hk.ci_low, hk.ci_high) == pytest.approx(tuple(ci_hk), rel=1e-10)


def reml_loglik_matrix(tau2, y, v):
    """Restricted log-likelihood written in matrix form (independent of the package code)."""
    V = np.diag(v + tau2)
    Vi = np.linalg.inv(V)
    X = np.ones((y.size, 1))
    XtViX = X.T @ Vi @ X
    P = Vi - Vi @ X @ np.linalg.inv(XtViX) @ X.T @ Vi
    return -0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + y @ P @ y)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_reml_maximises_restricted_likelihood(seed):
    rng = np.random.default_rng(seed)
    k = 6
    v = rng.uniform(0.01, 0.1, k)
    y = rng.normal(0.2, np.sqrt(v + [0.0, 0.05, 0.02, 0.0][seed]))
    r = pool_random_effects(y, np.sqrt(v), method="REML")
    grid = np.linspace(0, 1.0, 1001)
    ll = np.array([reml_loglik_matrix(t, y, v) for t in grid])
    best = grid[np.argmax(ll)]
    grid = np.linspace(max(best - 1e-3, 0), best + 1e-3, 1001)  # refine
    ll = np.array([reml_loglik_matrix(t, y, v) for t in grid])
    best = grid[np.argmax(ll)]
    assert r.tau2 == pytest.approx(best, abs=1e-5)
    assert reml_loglik_matrix(r.tau2, y, v) >= ll.max() - 1e-9


@settings(max_examples=40, deadline=None)
@given(st.floats(-5, 5), st.lists(st.floats(0.01, 2.0), min_size=1, max_size=12),
       st.sampled_from(["REML", "DL", "FE"]))
def test_identical_estimates_pool_to_themselves(value, ses, method):
    r = pool_random_effects([value] * len(ses), ses, method=method)
    assert r.estimate == pytest.approx(value, abs=1e-9)
    assert r.tau2 == 0 and r.i2 == 0
    w = 1 / np.asarray(ses) ** 2
    assert r.se == pytest.approx(np.sqrt(1 / w.sum()), rel=1e-9)


def test_prediction_interval_and_small_k():
    yi, vi = bcg()
    r = pool_random_effects(yi, np.sqrt(vi))
    half = stats.t.ppf(0.975, 11) * np.sqrt(r.tau2 + r.se**2)
    assert (r.pi_low, r.pi_high) == pytest.approx((r.estimate - half, r.estimate + half), rel=1e-12)
    assert r.pi_low < r.ci_low and r.pi_high > r.ci_high
    two = pool_random_effects(yi[:2], np.sqrt(vi[:2]))
    assert two.pi_low is None and two.pi_high is None
    one = pool_random_effects([0.3], [0.1])
    assert one.estimate == 0.3 and one.tau2 == 0 and one.ci_low == pytest.approx(0.3 - 1.959964 * 0.1)


def test_logit_scale_pooling_of_c_statistics():
    # one trial: the logit-symmetric CI comes back unchanged
    c, lo, hi = 0.7, 0.6, 0.78
    lg = lambda p: np.log(p / (1 - p))  # noqa: E731
    lo_sym = 1 / (1 + np.exp(-(2 * lg(c) - lg(hi))))
    r = pool_random_effects([c], ci_low=[lo_sym], ci_high=[hi], scale="logit")
    assert (r.estimate, r.ci_low, r.ci_high) == pytest.approx((c, lo_sym, hi), rel=1e-10)
    # several trials: pooled on logit scale = back-transformed REML of the logits
    cs = np.array([0.62, 0.7, 0.58, 0.75])
    ses = np.array([0.03, 0.05, 0.04, 0.06])
    r = pool_random_effects(cs, ses, scale="logit")
    ref = pool_random_effects(lg(cs), ses / (cs * (1 - cs)))
    assert r.estimate == pytest.approx(1 / (1 + np.exp(-ref.estimate)), rel=1e-8)
    assert r.tau2 == pytest.approx(ref.tau2, rel=1e-7)
    assert 0 < r.ci_low < r.estimate < r.ci_high < 1 and 0 < r.pi_low and r.pi_high < 1
    with pytest.raises(LbpError, match="strictly in"):
        pool_random_effects([1.2, 0.5], [0.1, 0.1], scale="logit")


def test_pool_metric_over_trials_and_json():
    rng = np.random.default_rng(0)
    results = []
    for trial in range(4):
        n = 160
        x = rng.normal(size=n)
        t = rng.integers(0, 2, n)
        y = 50 - t * (4 + 5 * x) + rng.normal(0, 6, n)
        results.append(c_for_benefit(4 + 5 * x, y, t, outcome_type="continuous",
                                     higher_is_better=False, n_boot=30, random_state=trial))
    r = pool_metric(results, "c_for_benefit", labels=["a", "b", "c", "d"])
    assert r.scale == "logit" and r.k == 4 and r.labels == ["a", "b", "c", "d"]
    assert min(x.c_for_benefit for x in results) <= r.estimate <= max(x.c_for_benefit for x in results)
    json.dumps(r.to_dict())
    # dicts work too; a failed trial (None) is excluded and counted
    dicts = [x.to_dict() for x in results] + [{"c_for_benefit": None, "ci_low": None, "ci_high": None}]
    r2 = pool_metric(dicts, "c_for_benefit")
    assert r2.k == 4 and r2.n_excluded == 1 and r2.estimate == pytest.approx(r.estimate)


def test_pooling_errors():
    with pytest.raises(LbpError, match="positive"):
        pool_random_effects([0.1, 0.2], [0.1, 0.0])
    with pytest.raises(LbpError, match="length mismatch"):
        pool_random_effects([0.1, 0.2], [0.1])
    with pytest.raises(LbpError, match="method"):
        pool_random_effects([0.1, 0.2], [0.1, 0.1], method="ML")
    with pytest.raises(LbpError, match="give se"):
        pool_random_effects([0.1, 0.2])
    with pytest.raises(LbpError, match="no trial"):
        pool_random_effects([np.nan], [0.1])


def test_i2_with_a_dominant_trial_has_no_cancellation_and_no_warning():
    """A trial with a tiny variance makes (sum w)^2 - sum w^2 cancel to 0 in floating point (the
    divide-by-zero warning `make demo` printed); the cross-product form stays exact."""
    import warnings

    from training.metrics.pooling import pool_random_effects, typical_within_variance

    y, se = np.array([0.1, 0.3, -0.2]), np.array([1e-10, 0.2, 0.3])
    w = 1 / se**2
    exact = 2 * (w[0] * w[1] + w[0] * w[2] + w[1] * w[2])
    assert typical_within_variance(w) == pytest.approx(2 * w.sum() / exact, rel=1e-12)
    assert np.sum(w) ** 2 - np.sum(w**2) != pytest.approx(exact, rel=1e-3)  # the old form's cancellation
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = pool_random_effects(y, se=se)
    assert np.isfinite(r.i2) and 0 <= r.i2 <= 1
    # ordinary weights: the same value as the textbook formula
    w2 = 1 / np.array([0.2, 0.3, 0.25, 0.4]) ** 2
    naive = 3 * w2.sum() / (w2.sum() ** 2 - np.sum(w2**2))
    assert typical_within_variance(w2) == pytest.approx(naive, rel=1e-13)
