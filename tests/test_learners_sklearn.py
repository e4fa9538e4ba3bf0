"""The learners are scikit-learn estimators: the applicable checks of sklearn.utils.estimator_checks
(clone, get/set params, repr, nothing but parameters set in __init__, parameter defaults stored
unchanged), unknown parameters refused, ``fit`` returns ``self``, fitted state ends in ``_`` and no
state is shared between instances."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (check_get_params_invariance, check_no_attributes_set_in_init,
                                            check_parameters_default_constructible, check_set_params)

from training.learners import (ConstantEffect, DRLearner, EffectModel, GaussianImputer, RiskModel, StackedLearner,
                               TLearner, XLearner)
from training.learners.trial_specific import InTrialBenefit
from training.simulate.small_trials import small_trials

LEARNERS = [ConstantEffect, EffectModel, RiskModel, TLearner, XLearner, DRLearner]


def _instances():
    return [cls() for cls in LEARNERS] + [GaussianImputer(n_draws=7), InTrialBenefit(EffectModel(n_boot=3)),
                                          StackedLearner([ConstantEffect(n_boot=0), EffectModel(n_boot=0)], [0.5, 0.5])]


@pytest.mark.parametrize("est", _instances(), ids=lambda e: type(e).__name__)
def test_estimator_checks(est):
    name = type(est).__name__
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)
    if type(est) in LEARNERS + [GaussianImputer]:
        check_parameters_default_constructible(name, est)


@pytest.mark.parametrize("est", _instances(), ids=lambda e: type(e).__name__)
def test_clone_repr_and_unknown_params(est):
    c = clone(est)
    assert type(c) is type(est) and c is not est
    assert c.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    assert repr(est).startswith(type(est).__name__ + "(") and " object at 0x" not in repr(est)
    with pytest.raises(ValueError, match="not_a_param"):
        est.set_params(not_a_param=1)


def test_repr_shows_changed_parameters():
    assert repr(EffectModel(n_boot=7)) == "EffectModel(n_boot=7)"
    assert repr(TLearner(tree_missing="impute")) == "TLearner(tree_missing='impute')"


def test_fit_returns_self_and_fitted_state_ends_in_underscore():
    X, y, _ = small_trials(n_trials=6, n_per_arm=30, seed=3)
    for est in (ConstantEffect(n_boot=0), EffectModel(n_boot=0, interaction_sd=0.5),
                TLearner(n_boot=0, outcome_params={"n_estimators": 20})):
        before = set(vars(est))
        assert est.fit(X, y) is est
        added = set(vars(est)) - before
        assert added and all(a.endswith("_") and not a.startswith("__") or a.startswith("_") for a in added), added
        assert "export_" in added
        fresh = clone(est)
        assert not hasattr(fresh, "export_")


def test_stacked_learner_fit_uses_its_data():
    X, y, _ = small_trials(n_trials=6, n_per_arm=30, seed=3)
    members = [ConstantEffect(n_boot=0), EffectModel(n_boot=0, interaction_sd=0.5)]
    st = StackedLearner(members, [0.3, 0.7], ["constant", "effect_model"])
    assert st.fit(X, y) is st
    assert not hasattr(members[0], "export_")  # the members given are not fitted in place: clones are
    pre = StackedLearner.from_fitted([clone(m).fit(X, y) for m in members], [0.3, 0.7], ["constant", "effect_model"])
    a, b = st.predict(X.head(20)), pre.predict(X.head(20))
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=0, atol=1e-12)
    X2, y2, _ = small_trials(n_trials=6, n_per_arm=30, seed=4)
    other = clone(st).fit(X2, y2).predict(X.head(20))
    assert not np.allclose(other.to_numpy(float), a.to_numpy(float))


def test_no_state_shared_between_instances():
    import training.learners.boosted as boosted

    assert not [k for k, v in vars(boosted).items() if isinstance(v, dict) and k.isupper() and "CACHE" in k]
    X, y, _ = small_trials(n_trials=6, n_per_arm=30, seed=3)
    lr = TLearner(n_boot=0, outcome_params={"n_estimators": 20}).fit(X, y)
    assert not hasattr(lr, "_cache")  # the cross-fit cache lives only during fit
