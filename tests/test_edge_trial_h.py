"""The shifted new trial for the hayden2020 / large60 process (scenario ``edge_trial_h``, issue 23)."""
import numpy as np
import pytest

from training.simulate import simulate_dataset
from training.simulate.scenario import COVARIATES, list_scenarios, load_scenario

SHIFTED = ("age", "bmi", "heavy_physical_work")


def test_edge_trial_h_shares_the_training_process():
    assert "edge_trial_h" in list_scenarios()
    e, t = load_scenario("edge_trial_h").raw, load_scenario("large60").raw
    differ = {k for k in set(e) | set(t) if e.get(k) != t.get(k)}
    # only the design (one trial, every covariate measured, its own uncentred random effects) differs
    assert differ == {"name", "description", "trials", "covariate_trials", "heterogeneity", "casemix_model"}
    assert e["heterogeneity"]["centre"] is False


@pytest.mark.parametrize("seed", [1, 2])
def test_edge_trial_h_lies_outside_the_training_trials(seed):
    # the bench's pairing: training data seed s, the new trial seed s + 10000
    new = simulate_dataset("edge_trial_h", seed=seed + 10_000).participants
    assert new["trial"].nunique() == 1 and len(new) == 600
    assert new[list(COVARIATES)].notna().mean().min() > 0.9  # every covariate measured
    assert set(new["treatment"]) == {"exercise", "usual_care", "other_conservative"}
    m = new[list(SHIFTED)].mean()
    for train in ("hayden2020", "large60"):
        p = simulate_dataset(train, seed=seed).participants
        g = p.groupby("trial")[list(SHIFTED)].mean()
        # older, heavier and more often in heavy physical work than every training trial
        assert (m > g.max()).all(), (train, m.to_dict(), g.max().to_dict())
        # and far from the pooled training mean (in pooled SDs)
        z = (m - p[list(SHIFTED)].mean()) / p[list(SHIFTED)].std()
        assert (z > 0.8).all() and np.isfinite(z).all(), z.to_dict()
