"""LightGBM meta-learners (T, X, DR) and stacking: recovery on noiseless data, export,
TreeSHAP explanations, no leakage of trial effects."""
import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from tests._runtime import rt
from training.learners.effect_model import ConstantEffect, EffectModel
from training.learners.boosted import DRLearner, TLearner, XLearner
from training.learners.stacking import StackedLearner, r_loss, stack_weights
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def noiseless():
    return small_trials(n_trials=12, n_per_arm=150, seed=7, noise=0.0, effect_mod=6.0, bmi_mod=3.0)


@pytest.fixture(scope="module")
def noisy():
    X, y, t = small_trials(n_trials=10, n_per_arm=50, seed=8, noise=10.0, effect_mod=5.0, missing=0.15)
    return X, y, t


def test_t_learner_recovers_truth_on_noiseless_data(noiseless):
    X, y, truth = noiseless
    m = TLearner(n_boot=0, outcome_params={"num_rounds": 400, "learning_rate": 0.1, "lambda_l2": 0.0,
                                           "min_data_in_leaf": 10, "num_leaves": 15}).fit(X, y)
    p = m.predict(X)
    for c in m.comparators_:
        t = truth[f"benefit_vs_{c}"]
        err = p[f"benefit_vs_{c}"] - t
        assert np.sqrt(np.mean(err ** 2)) < 0.25 * t.std()
        assert np.corrcoef(p[f"benefit_vs_{c}"], t)[0, 1] > 0.95


@pytest.mark.parametrize("cls", [TLearner, XLearner, DRLearner])
def test_meta_learner_export_roundtrip_and_shap(noisy, cls):
    X, y, truth = noisy
    m = cls(n_boot=3, n_folds=3, boot_folds=2).fit(X, y) if cls is not TLearner else cls(n_boot=3).fit(X, y)
    exp = json.loads(json.dumps(m.to_export()))
    assert all(isinstance(v, str) for v in exp["boosters"].values())
    a = m.predict_interval(X.head(150))
    b = rt.predict_from_export(exp, X.head(150))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # explanations add up to the predicted benefit exactly (continuous: no residual)
    e = m.explain(X.head(40), "usual_care")
    np.testing.assert_allclose(e.drop(columns="residual").sum(axis=1), a["benefit_vs_usual_care"].head(40), atol=1e-8)
    assert np.abs(e["residual"]).max() < 1e-8
    # the benefit correlates with the truth (modifier: fear-avoidance)
    assert np.corrcoef(a["benefit_vs_usual_care"], truth["benefit_vs_usual_care"].head(150))[0, 1] > 0.3


def test_lightgbm_contributions_match_shap_treeexplainer(noisy):
    shap = pytest.importorskip("shap")
    X, y, _ = noisy
    m = DRLearner(n_boot=0, n_folds=2).fit(X, y)
    exp = m.to_export()
    F = rt.feature_matrix(exp["features"], X.head(30))
    bst = rt.booster(exp["boosters"]["tau"])
    ours = rt.booster_contrib(exp["boosters"]["tau"], F)[:, :-1]
    sv = shap.TreeExplainer(bst, feature_perturbation="tree_path_dependent").shap_values(F)
    np.testing.assert_allclose(ours, sv, atol=1e-6)


def test_trial_offsets_do_not_leak_into_benefit():
    """Trials differ hugely in outcome level but effects are constant: benefits stay flat."""
    X, y, truth = small_trials(n_trials=12, n_per_arm=80, seed=9, noise=8.0, effect_mod=0.0)
    shift = X["trial"].map({t: 25.0 * (i % 2) for i, t in enumerate(sorted(X["trial"].unique()))}).to_numpy()
    m = TLearner(n_boot=0).fit(X, y + shift)
    p = m.predict(X)
    err = p["benefit_vs_usual_care"] - truth["benefit_vs_usual_care"]
    assert np.sqrt(np.mean(err ** 2)) < 3.0


def test_stacking_never_loses_to_constant_in_sample(noisy):
    X, y, _ = noisy
    const = ConstantEffect(n_boot=0).fit(X, y)
    eff = EffectModel(n_boot=0).fit(X, y)
    trial = X["trial"].to_numpy()
    treat = (X["treatment"] == "exercise").to_numpy(float)
    from training.learners.base import allocation_share

    e = allocation_share(trial, treat == 1, treat == 0)
    from training.iecv import _benefit_mix

    cls = X["treatment"].to_numpy()
    comps = sorted(set(cls) - {"exercise"})
    B = np.column_stack([_benefit_mix(m.predict(X), trial, cls, "exercise", comps) for m in (const, eff)])
    w = stack_weights(B, -y, treat, trial, e)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    loss = lambda b: r_loss(b, -y, treat, trial, e)  # noqa: E731
    assert loss(B @ w) <= min(loss(B[:, 0]), loss(B[:, 1])) + 1e-9
    # the convex optimum: no other point of the simplex does better
    grid = [loss(B @ np.array([a, 1 - a])) for a in np.linspace(0, 1, 201)]
    assert loss(B @ w) <= min(grid) + 1e-9
    st = StackedLearner.from_fitted([const, eff], w, ["constant", "effect_model"])
    exp = json.loads(json.dumps(st.to_export()))
    pd.testing.assert_frame_equal(st.predict_interval(X.head(50)), rt.predict_from_export(exp, X.head(50)))
    ex = st.explain(X.head(10), "usual_care")
    np.testing.assert_allclose(ex.sum(axis=1), st.predict(X.head(10))["benefit_vs_usual_care"], atol=1e-8)


def test_stack_weights_are_the_constrained_least_squares_solution():
    """Against an independent computation: with K = 3 candidates the simplex optimum equals a
    dense grid search, and free NNLS weights that sum below one are not what is returned."""
    rng = np.random.default_rng(4)
    n = 600
    trial = np.repeat(np.arange(6), n // 6)
    treat = rng.binomial(1, 0.5, n).astype(float)
    e = np.full(n, 0.5)
    tau = 5 + 2 * rng.normal(size=n)
    g = 10 * rng.normal(size=n) + treat * tau
    B = np.column_stack([np.full(n, 5.0), tau + rng.normal(0, 3, n), 0.5 * tau])
    w = stack_weights(B, g, treat, trial, e)
    assert w.sum() == pytest.approx(1.0) and (w >= -1e-12).all()
    loss = lambda b: r_loss(b, g, treat, trial, e)  # noqa: E731
    best = min(loss(B @ np.array([a, b, 1 - a - b])) for a in np.linspace(0, 1, 101)
               for b in np.linspace(0, 1, 101) if a + b <= 1 + 1e-12)
    assert loss(B @ w) <= best + 1e-9


def test_fits_are_deterministic(noisy):
    X, y, _ = noisy
    a = TLearner(n_boot=2, random_state=3).fit(X, y).to_export()
    b = TLearner(n_boot=2, random_state=3).fit(X, y).to_export()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_crossfit_cache_key_covers_the_imputation():
    """Same rows, different imputations (inner folds of two IECV folds holding out the same two
    trials in the other order) must not share a cached cross-fit: the key includes Fi and P."""
    from types import SimpleNamespace

    from training.learners.boosted import XLearner

    rng = np.random.default_rng(0)
    F = rng.normal(size=(20, 3))
    F[::4, 1] = np.nan
    base = dict(y=rng.normal(size=20), trial=np.repeat(np.arange(4), 5), F=F,
                cls=np.array(["exercise", "usual_care"] * 10), comps=["usual_care"], P=np.ones((20, 2)))
    a = SimpleNamespace(**base, Fi=np.nan_to_num(F, nan=0.1))
    b = SimpleNamespace(**base, Fi=np.nan_to_num(F, nan=0.2))
    lr = XLearner()
    assert lr._key(a, "crossfit", 3, 1) != lr._key(b, "crossfit", 3, 1)
    assert lr._key(a, "crossfit", 3, 1) == lr._key(SimpleNamespace(**base, Fi=a.Fi.copy()), "crossfit", 3, 1)
