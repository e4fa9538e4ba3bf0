"""Known-answer tests for benefit metrics (c-for-benefit, calibration for benefit, E-for-benefit,
RATE/TOC, net benefit)."""
from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from predict.errors import LbpError
from training.metrics import (
    c_for_benefit,
    calibration_for_benefit,
    calibration_for_benefit_groups,
    calibration_for_ite,
    e_for_benefit,
    match_pairs,
    net_benefit,
    rank_average_treatment_effect,
)
from training.metrics._stats import concordance_counts
from training.metrics.rate import _toc_unit


def brute_c(pred, obs):
    num = den = 0.0
    for i, j in combinations(range(len(obs)), 2):
        if obs[i] == obs[j]:
            continue
        den += 1
        if pred[i] == pred[j]:
            num += 0.5
        elif (pred[i] - pred[j]) * (obs[i] - obs[j]) > 0:
            num += 1
    return num / den


def noiseless_continuous(n=400, k=1, seed=0, prognostic=False):
    """Pain-type outcome (higher = worse); true benefit tau = comparator - exercise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = np.tile([0, 1], n // 2)
    rng.shuffle(t)
    cl = np.repeat(np.arange(k), n // k) if k > 1 else None
    tau = 5 + 3 * x[:, 0]
    y0 = 50 + (8 * x[:, 1] if prognostic else 0.0) + (0 if cl is None else 10 * cl)
    y1 = y0 - tau
    y = np.where(t == 1, y1, y0)
    return x, t, cl, tau, y0, y1, y


# ----------------------------------------------------------------------------- concordance
def test_concordance_counts_ties_hand():
    # pairs: (0,1): obs 0<1, pred tied -> 1/2; (0,2),(1,2) concordant -> C = 2.5/3
    num, den = concordance_counts(np.array([1.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert (num, den) == (2.5, 3.0)


def test_concordance_counts_obs_ties_not_comparable():
    # (0,1) tied in obs: excluded; (0,2) concordant; (1,2) discordant -> 1/2
    pred, obs = np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    assert brute_c(pred, obs) == 0.5
    num, den = concordance_counts(pred, obs)
    assert (num, den) == (1.0, 2.0)


def test_concordance_direct_count_equals_kendall_route(monkeypatch):
    """Small samples count P - Q directly; the result equals scipy's kendalltau route exactly."""
    from training.metrics import _stats

    rng = np.random.default_rng(5)
    for n in (2, 7, 60, 200):
        pred, obs = np.round(rng.normal(size=n), 1), rng.integers(0, 5, n).astype(float)
        direct = concordance_counts(pred, obs)
        monkeypatch.setattr(_stats, "DIRECT_MAX_N", 0)
        assert concordance_counts(pred, obs) == direct
        monkeypatch.setattr(_stats, "DIRECT_MAX_N", 200)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-2, 2)), min_size=2, max_size=40))
def test_concordance_matches_brute_force(pairs):
    pred = np.array([p for p, _ in pairs], float)
    obs = np.array([o for _, o in pairs], float)
    num, den = concordance_counts(pred, obs)
    if den == 0:
        assert len(set(obs)) == 1
    else:
        assert num / den == pytest.approx(brute_c(pred, obs), abs=1e-12)


# ----------------------------------------------------------------------------- c-for-benefit
def test_c_for_benefit_hand_binary():
    # treated sorted by benefit: .1(y1) .2(y0) .3(y0) .4(y1); control: .05(y0) .15(y1) .25(y0) .35(y0)
    # pairs: obs = [1, -1, 0, 1], pred = [.075, .175, .275, .375]
    # comparable: (1,2) disc, (1,3) disc, (2,3) conc, (2,4) conc, (3,4) conc -> 3/5
    b = [0.1, 0.2, 0.3, 0.4, 0.15, 0.05, 0.35, 0.25]
    y = [1, 0, 0, 1, 1, 0, 0, 0]
    t = [1, 1, 1, 1, 0, 0, 0, 0]
    r = c_for_benefit(b, y, t, outcome_type="binary", higher_is_better=True, min_pairs=2, n_boot=0)
    assert r.c_for_benefit == pytest.approx(0.6)
    assert r.n_pairs == 4 and r.n_comparable == 5


def test_c_for_benefit_hand_continuous_and_sign():
    # same pairing; y_t = [6,2,3,7], control y sorted by benefit = [4,1,2,3]
    # obs (higher better) = [2,1,1,4]: comparable (1,2) d,(1,3) d,(1,4) c,(2,4) c,(3,4) c -> 3/5
    b = [0.1, 0.2, 0.3, 0.4, 0.15, 0.05, 0.35, 0.25]
    y = [6, 2, 3, 7, 1, 4, 3, 2]
    t = [1, 1, 1, 1, 0, 0, 0, 0]
    kw = dict(outcome_type="continuous", min_pairs=2, n_boot=0)
    assert c_for_benefit(b, y, t, higher_is_better=True, **kw).c_for_benefit == pytest.approx(0.6)
    # if higher is worse, observed benefit flips sign: 2/5
    assert c_for_benefit(b, y, t, higher_is_better=False, **kw).c_for_benefit == pytest.approx(0.4)


def test_c_for_benefit_perfect_reversed_random_continuous():
    x, t, cl, tau, *_ , y = noiseless_continuous(n=400)
    kw = dict(outcome_type="continuous", higher_is_better=False, n_boot=0, n_repeats=2)
    assert c_for_benefit(tau, y, t, **kw).c_for_benefit == 1.0
    assert c_for_benefit(-tau, y, t, **kw).c_for_benefit == 0.0
    rnd = np.random.default_rng(5).normal(size=tau.size)
    assert abs(c_for_benefit(rnd, y, t, **kw).c_for_benefit - 0.5) < 0.05


def test_c_for_benefit_perfect_binary_noiseless():
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = np.where(t == 1, (x > 0).astype(float), 0.0)  # exercise recovers iff x > 0
    b = 1 / (1 + np.exp(-3 * x)) * 0.5  # monotone in x
    r = c_for_benefit(b, y, t, outcome_type="binary", higher_is_better=True, n_boot=0)
    assert r.c_for_benefit == 1.0
    r = c_for_benefit(-b, y, t, outcome_type="binary", higher_is_better=True, n_boot=0)
    assert r.c_for_benefit == 0.0


def test_c_for_benefit_covariate_matching_cross_is_exact_with_prognosis():
    # with prognostic variation, matched-pair 'cross' predictions equal observed pair benefit
    x, t, cl, tau, y0, y1, y = noiseless_continuous(n=300, k=3, prognostic=True)
    r = c_for_benefit(tau, y, t, outcome_type="continuous", higher_is_better=False, cluster=cl,
                      match="covariates", X=x, y0_pred=y0, y1_pred=y1, n_boot=0, n_repeats=2)
    assert r.pair_prediction == "cross" and r.c_for_benefit == 1.0
    assert r.n_pairs == sum(min((t[cl == k] == 1).sum(), (t[cl == k] == 0).sum()) for k in range(3))


def test_c_for_benefit_bootstrap_ci_and_json():
    rng = np.random.default_rng(2)
    n = 400
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    cl = rng.integers(0, 4, n)
    y = 50 - t * (5 + 6 * x) + rng.normal(0, 5, n)
    r = c_for_benefit(5 + 6 * x, y, t, outcome_type="continuous", higher_is_better=False,
                      cluster=cl, n_boot=40, random_state=3)
    assert 0.5 < r.ci_low < r.c_for_benefit < r.ci_high < 1
    d = json.loads(json.dumps(r.to_dict()))
    assert d["c_for_benefit"] == r.c_for_benefit and d["n_clusters"] == 4
    r2 = c_for_benefit(5 + 6 * x, y, t, outcome_type="continuous", higher_is_better=False,
                       cluster=cl, n_boot=40, random_state=3)
    assert r2 == r  # deterministic


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["exp", "cubic", "affine"]))
def test_c_for_benefit_invariant_to_monotone_transform(seed, kind):
    rng = np.random.default_rng(seed)
    n = 60
    b = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    t[:2] = [0, 1]
    y = rng.integers(0, 2, n).astype(float)
    f = {"exp": np.exp, "cubic": lambda v: v**3 + v, "affine": lambda v: 3 * v - 7}[kind]
    kw = dict(outcome_type="binary", higher_is_better=True, n_boot=0, min_pairs=2, n_repeats=3,
              random_state=seed)
    try:
        a = c_for_benefit(b, y, t, **kw).c_for_benefit
    except LbpError:
        return
    assert c_for_benefit(f(b), y, t, **kw).c_for_benefit == pytest.approx(a, abs=1e-12)


def test_pairs_never_cross_clusters():
    rng = np.random.default_rng(4)
    n = 200
    cl = rng.integers(0, 5, n)
    t = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3))
    for match in ("benefit", "covariates"):
        mp = match_pairs(x[:, 0], rng.normal(size=n), t, outcome_type="continuous",
                         higher_is_better=False, cluster=cl,
                         match=match, X=x)
        assert (cl[mp.treated_index] == cl[mp.control_index]).all()
        assert (t[mp.treated_index] == 1).all() and (t[mp.control_index] == 0).all()
        assert np.unique(mp.treated_index).size == mp.n_pairs  # without replacement
        expected = sum(min((t[cl == k] == 1).sum(), (t[cl == k] == 0).sum()) for k in range(5))
        assert mp.n_pairs == expected


def test_c_for_benefit_errors():
    b, y, t = [0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], [1, 0, 1, 0]
    kw = dict(outcome_type="binary", higher_is_better=True)
    with pytest.raises(LbpError, match="length mismatch"):
        c_for_benefit(b, y[:3], t, **kw)
    with pytest.raises(LbpError, match="missing"):
        c_for_benefit([0.1, np.nan, 0.3, 0.4], y, t, **kw)
    with pytest.raises(LbpError, match="single arm"):
        c_for_benefit(b, y, t, cluster=["a", "b", "a", "b"], **kw)
    with pytest.raises(LbpError, match="too few matched pairs"):
        c_for_benefit(b, y, t, n_boot=0, **kw)
    with pytest.raises(LbpError, match="needs X"):
        c_for_benefit(b, y, t, match="covariates", min_pairs=1, n_boot=0, **kw)
    with pytest.raises(LbpError, match="0/1"):
        c_for_benefit(b, [2, 0, 1, 0], t, **kw)
    with pytest.raises(LbpError, match="outcome_type"):
        c_for_benefit(b, y, t, outcome_type="ordinal", higher_is_better=True)


# ----------------------------------------------------------------------------- grouped calibration
def test_grouped_calibration_exact_and_stratified():
    # benefit takes 4 values; noiseless outcome; trials with very different baselines and
    # unbalanced allocation: a crude difference in means would be biased, the stratified one is exact
    rng = np.random.default_rng(0)
    n = 800
    cl = rng.integers(0, 3, n)
    alloc = np.array([0.2, 0.5, 0.8])[cl]
    t = (rng.uniform(size=n) < alloc).astype(int)
    b = rng.choice([-1.0, 0.0, 1.0, 2.0], size=n)
    y = 40 + 30 * cl - t * b  # pain: lower better; benefit = y0 - y1 = b
    r = calibration_for_benefit_groups(b, y, t, outcome_type="continuous", higher_is_better=False,
                                       cluster=cl, n_groups=4)
    assert r.n_groups == 4
    np.testing.assert_allclose(r.observed, r.predicted, atol=1e-9)
    np.testing.assert_allclose(r.predicted, [-1, 0, 1, 2])
    assert (r.n_clusters_used == 3).all() and r.n.sum() == n
    crude = [y[(b == v) & (t == 0)].mean() - y[(b == v) & (t == 1)].mean() for v in (-1, 0, 1, 2)]
    assert np.max(np.abs(np.array(crude) - np.array([-1, 0, 1, 2]))) > 1  # confounded by trial
    assert r.to_frame().shape == (4, 10)


def test_grouped_calibration_binary_ci_covers():
    rng = np.random.default_rng(1)
    n = 4000
    b = rng.uniform(0, 0.3, n)
    t = rng.integers(0, 2, n)
    p = 0.3 + t * b
    y = (rng.uniform(size=n) < p).astype(float)
    r = calibration_for_benefit_groups(b, y, t, outcome_type="binary", higher_is_better=True,
                                       n_groups=3)
    assert (r.ci_low < r.predicted + 0.01).all() and (r.ci_high > r.predicted - 0.01).all()
    assert np.all(np.diff(r.predicted) > 0)
    assert np.all(r.ci_high - r.ci_low > 0)


# ----------------------------------------------------------------------------- regression calibration
def test_calibration_for_benefit_exact():
    x, t, cl, tau, y0, y1, y = noiseless_continuous(n=400, k=4, prognostic=True)
    kw = dict(outcome_type="continuous", higher_is_better=False, cluster=cl, prognosis=y0)
    r = calibration_for_benefit(tau, y, t, **kw)
    assert r.slope == pytest.approx(1, abs=1e-9) and r.intercept == pytest.approx(0, abs=1e-8)
    assert r.citl == pytest.approx(0, abs=1e-8) and r.se_method == "cluster"
    r = calibration_for_benefit(2 * tau, y, t, **kw)  # over-dispersed predictions
    assert r.slope == pytest.approx(0.5, abs=1e-9)
    r = calibration_for_benefit(tau + 1, y, t, **kw)  # predictions 1 point too optimistic
    assert r.slope == pytest.approx(1, abs=1e-9)
    assert r.intercept == pytest.approx(-1, abs=1e-8) and r.citl == pytest.approx(-1, abs=1e-8)


def test_calibration_for_benefit_noisy_ci_covers_truth():
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    tau = 5 + 4 * x
    y = 50 + 6 * x - t * tau + rng.normal(0, 10, n)
    r = calibration_for_benefit(tau, y, t, outcome_type="continuous", higher_is_better=False)
    assert r.se_method == "hc3"
    assert r.slope_ci_low < 1 < r.slope_ci_high and r.citl_ci_low < 0 < r.citl_ci_high
    r = calibration_for_benefit(3 * tau, y, t, outcome_type="continuous", higher_is_better=False)
    assert r.slope_ci_high < 1


def test_calibration_for_benefit_constant_benefit_error():
    t = np.array([0, 1] * 10)
    with pytest.raises(LbpError, match="constant"):
        calibration_for_benefit(np.ones(20), np.arange(20.0), t, outcome_type="continuous",
                                higher_is_better=False)


def test_calibration_for_ite_binary_and_continuous():
    rng = np.random.default_rng(7)
    n = 6000
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    l0 = -0.5 + 0.8 * x
    l1 = l0 + 0.6 - 0.7 * x
    p0, p1 = 1 / (1 + np.exp(-l0)), 1 / (1 + np.exp(-l1))
    y = (rng.uniform(size=n) < np.where(t == 1, p1, p0)).astype(float)
    r = calibration_for_ite(y, t, p0, p1, outcome_type="binary", higher_is_better=False)
    # (coverage of these CIs was 97.5% over 40 simulated data sets; here check closeness)
    assert abs(r.slope - 1) < 0.15 and abs(r.intercept) < 0.15
    assert r.slope_ci_low < r.slope < r.slope_ci_high and r.scale == "log_odds"
    # effect doubled symmetrically around the midpoint m: l0' = m - d, l1' = m + d with true
    # l0 = m - d/2, l1 = m + d/2. Treated: m - d + s*2d = m + d/2 and comparator:
    # m + d - s*2d = m - d/2 both give s = 3/4 (in general (1 + k)/(2k) for inflation k)
    m, dd = (l0 + l1) / 2, l1 - l0
    q0, q1 = 1 / (1 + np.exp(-(m - dd))), 1 / (1 + np.exp(-(m + dd)))
    r2 = calibration_for_ite(y, t, q0, q1, outcome_type="binary", higher_is_better=False)
    assert r2.slope_ci_low < 0.75 < r2.slope_ci_high and r2.slope_ci_high < 0.95
    # continuous, noiseless, with per-trial miscalibration in the large: exact
    x2, tt, cl, tau, y0, y1, yy = noiseless_continuous(n=300, k=3, prognostic=True)
    r3 = calibration_for_ite(yy, tt, y0 + 5, y1 + 5, outcome_type="continuous",
                             higher_is_better=False, cluster=cl)
    assert r3.slope == pytest.approx(1, abs=1e-9) and r3.intercept == pytest.approx(0, abs=1e-8)


# ----------------------------------------------------------------------------- E-for-benefit
def test_e_for_benefit_known_answers():
    x, t, cl, tau, y0, y1, y = noiseless_continuous(n=300, k=3, prognostic=True)
    kw = dict(outcome_type="continuous", higher_is_better=False, cluster=cl, X=x, n_boot=0,
              n_repeats=1)
    r = e_for_benefit(tau, y, t, y0_pred=y0, y1_pred=y1, **kw)
    assert r.e_avg == pytest.approx(0, abs=1e-8) and r.e90 == pytest.approx(0, abs=1e-8)
    # predictions 2 points too optimistic for every patient (exercise arm 2 points better)
    r = e_for_benefit(tau + 2, y, t, y0_pred=y0, y1_pred=y1 - 2, **kw)
    assert r.e_avg == pytest.approx(2, abs=1e-7) and r.e50 == pytest.approx(2, abs=1e-7)


def test_e_for_benefit_bootstrap_and_ordering():
    rng = np.random.default_rng(8)
    n = 400
    x = rng.normal(size=(n, 2))
    t = rng.integers(0, 2, n)
    tau = 5 + 4 * x[:, 0]
    y = 50 + 5 * x[:, 1] - t * tau + rng.normal(0, 3, n)
    kw = dict(outcome_type="continuous", higher_is_better=False, X=x, n_boot=30, n_repeats=2)
    good = e_for_benefit(tau, y, t, **kw)
    bad = e_for_benefit(3 * tau, y, t, **kw)
    assert bad.e_avg > 2 * good.e_avg
    assert good.e_avg_ci_low <= good.e_avg <= good.e_avg_ci_high
    assert good.e50 <= good.e90


# ----------------------------------------------------------------------------- RATE / TOC
def test_toc_hand():
    toc = _toc_unit(np.array([3.0, 2.0, 1.0]), np.array([3.0, 0.0, 0.0]))
    np.testing.assert_allclose(toc, [2.0, 0.5, 0.0])
    # tied priorities share the block mean: result independent of order
    a = _toc_unit(np.array([1.0, 1.0, 0.0]), np.array([4.0, 0.0, 2.0]))
    b = _toc_unit(np.array([1.0, 1.0, 0.0]), np.array([0.0, 4.0, 2.0]))
    np.testing.assert_allclose(a, b)


def test_rate_perfect_vs_random():
    rng = np.random.default_rng(11)
    n = 2000
    x = rng.normal(size=n)
    cl = rng.integers(0, 4, n)
    t = (rng.uniform(size=n) < 0.6).astype(int)
    tau = 3 + 8 * x
    y = 50 + 5 * x - t * tau + rng.normal(0, 10, n)
    kw = dict(outcome_type="continuous", higher_is_better=False, cluster=cl, n_boot=60)
    perfect = rank_average_treatment_effect(tau, y, t, **kw)
    rnd = rank_average_treatment_effect(rng.normal(size=n), y, t, **kw)
    assert perfect.autoc > 5 and perfect.autoc_ci_low > 0
    assert rnd.autoc_ci_low < 0 < rnd.autoc_ci_high and abs(rnd.autoc) < 2
    assert perfect.qini > rnd.qini
    assert perfect.toc[-1] == pytest.approx(0, abs=1e-9)  # TOC(1) = 0
    assert perfect.ate_ci_low < 3 < perfect.ate_ci_high
    # with the true outcome models the DR scores are sharper but unbiased
    dr = rank_average_treatment_effect(tau, y, t, y0_pred=50 + 5 * x, y1_pred=50 + 5 * x - tau, **kw)
    assert dr.scores == "dr_model" and dr.autoc_ci_high - dr.autoc_ci_low < perfect.autoc_ci_high - perfect.autoc_ci_low


# ----------------------------------------------------------------------------- net benefit
def test_net_benefit_hand():
    # balanced arms within each benefit level; benefit = true effect
    levels = np.array([-2.0, 0.0, 1.0, 3.0])
    b = np.repeat(levels, 10)
    t = np.tile([0, 1], 20)
    y = 30 - t * b  # pain
    thr = np.array([-5.0, 0.0, 0.5, 2.0, 10.0])
    r = net_benefit(b, y, t, outcome_type="continuous", higher_is_better=False, thresholds=thr, n_boot=0)
    expected = [np.mean((b >= c) * (b - c)) for c in thr]
    np.testing.assert_allclose(r.net_benefit_model, expected, atol=1e-12)
    np.testing.assert_allclose(r.net_benefit_all, b.mean() - thr, atol=1e-12)
    assert r.net_benefit_model[0] == pytest.approx(r.net_benefit_all[0])  # everyone treated
    assert r.net_benefit_model[-1] == 0 and r.treated_share[-1] == 0
    np.testing.assert_allclose(r.difference_vs_all, r.net_benefit_model - r.net_benefit_all)


def test_net_benefit_ci_and_useless_model():
    rng = np.random.default_rng(12)
    n = 1500
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.uniform(size=n) < 0.4 + t * (0.1 + 0.15 * np.sign(x))).astype(float)
    truth = 0.1 + 0.15 * np.sign(x)
    good = net_benefit(truth, y, t, outcome_type="binary", higher_is_better=True,
                       thresholds=[0.1], n_boot=60)
    assert good.net_benefit_model_ci_low[0] <= good.net_benefit_model[0] <= good.net_benefit_model_ci_high[0]
    # at threshold 0.1 treat-all nets ~0, model ~ 0.5 * (0.25 - 0.1) = 0.075
    assert good.difference_vs_all_ci_low[0] > 0


# ----------------------------------------------------------------------------- plots
def test_plots_return_figures(tmp_path):
    from matplotlib.figure import Figure

    from training.metrics import calibration_curve
    from training.metrics.plots import (
        plot_calibration_for_benefit,
        plot_decision_curve,
        plot_outcome_calibration,
        plot_toc,
    )

    rng = np.random.default_rng(13)
    n = 300
    x = rng.normal(size=(n, 2))
    t = rng.integers(0, 2, n)
    tau = 5 + 4 * x[:, 0]
    y = 50 + 5 * x[:, 1] - t * tau + rng.normal(0, 8, n)
    kw = dict(outcome_type="continuous", higher_is_better=False)
    grouped = calibration_for_benefit_groups(tau, y, t, **kw)
    pairs = match_pairs(tau, y, t, match="covariates", X=x, **kw)
    figs = [
        plot_calibration_for_benefit(grouped, pairs, units="points"),
        plot_outcome_calibration(calibration_curve(y, 50 + 5 * x[:, 1] - t * tau,
                                                   outcome_type="continuous", n_boot=10),
                                 pred=50 + 5 * x[:, 1] - t * tau),
        plot_decision_curve(net_benefit(tau, y, t, n_boot=10, **kw)),
        plot_toc(rank_average_treatment_effect(tau, y, t, n_boot=10, **kw)),
    ]
    for i, f in enumerate(figs):
        assert isinstance(f, Figure) and len(f.axes) == 1
        f.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 1000
