"""The simulator's truth recomputed with other trial effects (``training.simulate.generator``):
the average-trial truth that the learners' confidence intervals estimate (benchmarks)."""
import numpy as np
import pandas as pd
import pytest

from training.simulate import simulate_dataset
from training.simulate.generator import average_trial_truth, trial_effects_of, truth_with_trial_effects
from training.simulate.model import attenuation
from training.simulate.truth import rounded_clipped_mean


@pytest.fixture(scope="module")
def sim():
    return simulate_dataset("hayden2020", seed=3, n_participants=600)


def _num(df):
    return df[[c for c in df.columns if c.startswith(("expected_", "benefit_vs_"))]].to_numpy(float)


def test_own_effects_reproduce_the_truth_table(sim):
    tt = truth_with_trial_effects(sim, trial_effects_of(sim))
    assert list(tt.columns) == list(sim.truth.columns)
    np.testing.assert_array_equal(_num(tt), _num(sim.truth))
    for c in ("trial", "participant", "treatment", "follow_up", "outcome", "measured"):
        assert (tt[c].astype(str).to_numpy() == sim.truth[c].astype(str).to_numpy()).all()


def test_average_trial_truth_removes_the_trial_effects(sim):
    """Pain: where the clipping at 0/100 does not bite, the benefit in the average trial is the
    trial-specific benefit minus the trial's class deviation (A u), independently of the trial's
    intercept and slope; recovery: the trial effects move the risk difference."""
    av = average_trial_truth(sim)
    m = ((av["outcome"].astype(str) == "pain") & (av["follow_up"].astype(str) == "short")).to_numpy()
    te = sim.trial_effects[sim.trial_effects["outcome"].astype(str) == "pain"]
    re = te.set_index(te["trial"].astype(str))["re_usual_care"]
    u = re.loc[av.loc[m, "trial"].astype(str)].to_numpy()
    A = attenuation(sim.scenario)["short"]
    own = sim.truth.loc[m, "benefit_vs_usual_care"].to_numpy() - A * u
    mean_ok = np.all((_num(av.loc[m, [c for c in av.columns if c.startswith("expected_")]]) > 30)
                     & (_num(av.loc[m, [c for c in av.columns if c.startswith("expected_")]]) < 70), axis=1) \
        & np.all((_num(sim.truth.loc[m, [c for c in av.columns if c.startswith("expected_")]]) > 30)
                 & (_num(sim.truth.loc[m, [c for c in av.columns if c.startswith("expected_")]]) < 70), axis=1)
    assert mean_ok.sum() > 30
    np.testing.assert_allclose(av.loc[m, "benefit_vs_usual_care"].to_numpy()[mean_ok], own[mean_ok], atol=0.25)
    assert np.max(np.abs(u)) > 0.5  # the check is not vacuous: trials do deviate
    r = ((av["outcome"].astype(str) == "global_recovery") & (av["follow_up"].astype(str) == "short")).to_numpy()
    d = av.loc[r, "benefit_vs_usual_care"].to_numpy() - sim.truth.loc[r, "benefit_vs_usual_care"].to_numpy()
    assert np.nanstd(d) > 0.01 and np.all(np.abs(d[np.isfinite(d)]) < 1)


def test_rounded_mean_is_linear_away_from_the_bounds():
    """The premise of the check above: the rounded, clipped mean shifts one-for-one with mu there."""
    mu = np.array([45.0, 55.0])
    assert np.allclose(rounded_clipped_mean(mu + 1.0, 15.0, 10.0) - rounded_clipped_mean(mu, 15.0, 10.0), 1.0, atol=0.02)


def test_design_average_is_the_logit_mean_of_single_design_truths(sim):
    """One design with all the weight = the average-trial truth of that trial's own participants;
    two designs = the weighted mean of the single-design logits (recovery)."""
    from training.simulate.generator import design_averaged_truth

    av = average_trial_truth(sim)
    r = ((av["outcome"].astype(str) == "global_recovery") & (av["follow_up"].astype(str) == "short")).to_numpy()
    av = av.loc[r].reset_index(drop=True)
    trials = sim.complete["trial"].astype(str).to_numpy()
    measured = av.groupby(av["trial"].astype(str))["measured"].all()
    design = {str(t.id): (t.instruments["pain"], t.instruments["function"]) for t in sim.scenario.trials}
    ok = [t for t in pd.unique(trials) if measured[t]]
    t1 = ok[0]
    t2 = next(t for t in ok if design[t] != design[t1])  # another design
    one = design_averaged_truth(sim, "global_recovery", "short", {t1: 5.0})
    own = (trials == t1)
    cols = [c for c in one.columns if c.startswith("expected_")]
    np.testing.assert_allclose(one.loc[own, cols].to_numpy(), av.loc[own, cols].to_numpy(), atol=1e-9)
    two = design_averaged_truth(sim, "global_recovery", "short", {t1: 1.0, t2: 3.0})
    other = design_averaged_truth(sim, "global_recovery", "short", {t2: 1.0})
    lg = lambda p: np.log(p / (1 - p))  # noqa: E731
    mix = 1 / (1 + np.exp(-(0.25 * lg(one[cols].to_numpy()) + 0.75 * lg(other[cols].to_numpy()))))
    np.testing.assert_allclose(two[cols].to_numpy(), mix, atol=1e-9)
    assert np.allclose(two["benefit_vs_usual_care"], two["expected_exercise"] - two["expected_usual_care"])
    assert np.std(one["benefit_vs_usual_care"] - other["benefit_vs_usual_care"]) > 0.005  # designs matter


def test_design_average_with_the_trials_own_effects(sim):
    """With the trials' own intercepts and slopes (no class deviation), one design with all the
    weight is that trial's truth minus its class deviations: the truth table recomputed with u = 0."""
    from training.simulate.generator import design_averaged_truth
    from training.simulate.model import TrialEffects

    te = trial_effects_of(sim)
    no_u = truth_with_trial_effects(sim, TrialEffects(te.intercept, te.slope, np.zeros_like(te.class_re)))
    r = ((no_u["outcome"].astype(str) == "global_recovery") & (no_u["follow_up"].astype(str) == "short")).to_numpy()
    no_u = no_u.loc[r].reset_index(drop=True)
    trials = sim.complete["trial"].astype(str).to_numpy()
    t1 = next(t for t in pd.unique(trials) if no_u.loc[trials == t, "measured"].all())
    one = design_averaged_truth(sim, "global_recovery", "short", {t1: 1.0}, trial_effects=te)
    own = trials == t1
    cols = [c for c in one.columns if c.startswith("expected_")]
    np.testing.assert_allclose(one.loc[own, cols].to_numpy(), no_u.loc[own, cols].to_numpy(), atol=1e-9)
    at_mean = design_averaged_truth(sim, "global_recovery", "short", {t1: 1.0})
    assert np.max(np.abs(at_mean.loc[own, cols].to_numpy() - one.loc[own, cols].to_numpy())) > 1e-3  # its intercept matters
