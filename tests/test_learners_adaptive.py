"""Feature-wise (adaptive) shrinkage of the effect model's modifiers (training.learners.adaptive):
the weights group a feature's columns, the real modifier gets the largest prior SD, the honest CV
falls back to the common penalty when adaptivity does not pay, and the weights folded into the
basis scale export exactly (the runtime sees an ordinary effect model)."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from tests._runtime import rt
from training.learners.adaptive import feature_weights
from training.learners.effect_model import EffectModel
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    return small_trials(n_trials=14, n_per_arm=120, seed=3, noise=6.0, effect_mod=6.0)


def test_feature_weights_group_columns_and_normalise():
    gamma = np.array([3.0, 4.0, 0.0, 0.5, -0.5])
    feat = np.array([0, 0, 1, 2, 2])
    w = feature_weights(gamma, feat, 1.0)
    g = np.array([np.sqrt(12.5), 0.0, 0.5])
    assert np.allclose(w, (g / np.sqrt(np.mean(g ** 2)))[feat])
    assert w[2] == 0.0 and w[0] == w[1]  # a silent feature drops out; a feature's columns share one SD
    assert np.allclose(feature_weights(gamma, feat, 0.5)[[0, 3]], np.sqrt(w[[0, 3]]))


def test_adaptive_always_weights_the_real_modifier_and_exports_exactly(data):
    X, y, truth = data
    Xm = X.copy()
    Xm.loc[::4, "bmi"] = np.nan
    m = EffectModel(n_boot=10, adaptive="always").fit(Xm, y)
    w = m.adaptive_weights_
    assert w is not None and max(w, key=w.get) == "fear_avoidance"  # the simulator's modifier
    assert m.to_export()["meta"]["adaptive"]["used"] is True
    p = m.predict(Xm)
    err = p["benefit_vs_usual_care"] - truth["benefit_vs_usual_care"]
    assert np.sqrt(np.mean(err ** 2)) < 1.5
    exp = json.loads(json.dumps(m.to_export()))
    pd.testing.assert_frame_equal(m.predict_interval(Xm.head(150)), rt.predict_from_export(exp, Xm.head(150)),
                                  check_exact=True)
    c = clone(m)
    assert c.get_params()["adaptive"] == "always" and not hasattr(c, "adaptive_weights_")


def test_adaptive_true_is_chosen_by_cv_against_the_common_penalty(data):
    X, y, _ = data
    m = EffectModel(n_boot=0, adaptive=True).fit(X, y)
    t = m.adaptive_
    assert set(t["power"]) >= {0.0, 0.5, 1.0} and np.isfinite(t["r_loss"]).all()
    used = m.adaptive_weights_ is not None
    assert used == (t.loc[t["r_loss"].idxmin(), "power"] > 0)
    if not used:  # the common-penalty fit is the plain effect model's
        base = EffectModel(n_boot=0).fit(X, y)
        assert np.allclose(m.theta_, base.theta_)


def test_stack_with_the_adaptive_member_exports_exactly(data):
    from training.learners.effect_model import ConstantEffect
    from training.learners.stacking import StackedLearner

    X, y, _ = data
    names = ["constant", "effect_model", "effect_adaptive"]
    st = StackedLearner([ConstantEffect(n_boot=5), EffectModel(n_boot=5), EffectModel(n_boot=5, adaptive="always")],
                        [0.2, 0.3, 0.5], names).fit(X, y)
    exp = json.loads(json.dumps(st.to_export()))
    assert exp["members"]["names"] == names and [e["kind"] for e in exp["members"]["exports"]][2] == "effect_model"
    pd.testing.assert_frame_equal(st.predict_interval(X.head(120)), rt.predict_from_export(exp, X.head(120)),
                                  check_exact=True)


def test_default_learners_include_the_adaptive_member():
    from training.config import load_config
    from training.train import LEARNERS, _groups, make_learner

    cfg = load_config(None)
    assert "effect_adaptive" in LEARNERS and ["constant", "effect_model", "effect_adaptive", "effect_pairs", "risk_model"] in _groups(LEARNERS)
    m = make_learner("effect_adaptive", "continuous", cfg, 1, n_boot=0)
    assert isinstance(m, EffectModel) and m.adaptive == "always"
    assert make_learner("effect_model", "continuous", cfg, 1, n_boot=0).adaptive is False
