"""In-trial benefit (learner + empirical-Bayes trial deviation) against known trial effects."""
from __future__ import annotations

import numpy as np
import pytest

from training.learners import ConstantEffect, EffectModel
from training.simulate.small_trials import small_trials
from training.learners.trial_specific import InTrialBenefit


@pytest.fixture(scope="module")
def heterogeneous():
    return small_trials(n_trials=18, n_per_arm=100, seed=11, noise=10.0, effect_mod=4.0, tau=4.0)


def test_blups_recover_trial_effects_and_lower_pehe(heterogeneous):
    X, y, truth = heterogeneous
    base = EffectModel(n_boot=30, random_state=1).fit(X, y)
    it = InTrialBenefit(base).fit(X, y)
    d = it.summary()
    assert set(d.columns) >= {"trial", "comparator", "raw", "se", "tau", "shrinkage", "blup", "post_sd"}
    assert ((d.shrinkage > 0) & (d.shrinkage < 1)).all()
    # the trial's true deviation (u_t, the same for every class) vs its BLUP
    u = (truth["trial_benefit_vs_usual_care"] - truth["benefit_vs_usual_care"]).groupby(X["trial"]).first()
    est = d.groupby("trial")["blup"].mean()
    true_u = u.loc[est.index]
    assert np.corrcoef(est, true_u)[0, 1] > 0.8
    # tau is recovered roughly (4 points; 16 comparator trials over 3 classes)
    assert 2.0 < it.tau_["__pooled__"] < 7.0

    comps = base.comparators_
    p0, p1 = base.predict_interval(X), it.predict_interval(X)
    err0, err1, hits = [], [], []
    for c in comps:
        tt = truth[f"trial_benefit_vs_{c}"].to_numpy()
        fitted = p1[f"in_trial_{c}"].to_numpy()
        err0.append((p0[f"benefit_vs_{c}"].to_numpy() - tt)[fitted])
        err1.append((p1[f"benefit_vs_{c}"].to_numpy() - tt)[fitted])
        hits.append(((tt >= p1[f"benefit_vs_{c}_ci_low"]) & (tt <= p1[f"benefit_vs_{c}_ci_high"])).to_numpy()[fitted])
    pehe0 = np.sqrt(np.mean(np.concatenate(err0) ** 2))
    pehe1 = np.sqrt(np.mean(np.concatenate(err1) ** 2))
    assert pehe1 < 0.8 * pehe0
    cover = np.concatenate(hits).mean()
    assert 0.85 < cover <= 1.0


def test_no_heterogeneity_leaves_predictions_nearly_unchanged():
    X, y, _ = small_trials(n_trials=14, n_per_arm=80, seed=3, noise=10.0, effect_mod=0.0, tau=0.0)
    base = ConstantEffect(n_boot=20).fit(X, y)
    it = InTrialBenefit(base).fit(X, y)
    p0, p1 = base.predict(X), it.predict(X)
    for c in base.comparators_:
        assert np.max(np.abs(p1[f"benefit_vs_{c}"] - p0[f"benefit_vs_{c}"])) < 1.5
    assert it.summary()["shrinkage"].mean() < 0.3


def test_rows_of_unfitted_trials_get_the_new_setting_interval(heterogeneous):
    X, y, _ = heterogeneous
    base = ConstantEffect(n_boot=20).fit(X, y)
    it = InTrialBenefit(base).fit(X, y)
    new = X.iloc[:50].assign(trial="NEW")
    p0, p1 = base.predict_interval(new), it.predict_interval(new)
    for c in base.comparators_:
        assert not p1[f"in_trial_{c}"].any()
        np.testing.assert_allclose(p1[f"benefit_vs_{c}"], p0[f"benefit_vs_{c}"])
        np.testing.assert_allclose(p1[f"benefit_vs_{c}_ci_low"], p0[f"benefit_vs_{c}_pi_low"])
        np.testing.assert_allclose(p1[f"benefit_vs_{c}_ci_high"], p0[f"benefit_vs_{c}_pi_high"])


def test_unfitted_use_is_an_error():
    X, y, _ = small_trials(n_trials=6, n_per_arm=30, seed=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        InTrialBenefit(ConstantEffect(n_boot=0)).fit(X, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        InTrialBenefit(ConstantEffect(n_boot=0).fit(X, y)).predict(X)
