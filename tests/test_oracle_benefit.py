"""The benchmark's oracle bounds (benchmarks/oracle_benefit.py): the in-trial empirical-Bayes oracle
recovers each trial's own effect when the outcomes carry no noise, returns the prediction unchanged
when the trials do not differ, and the margin table reports the bound against the best peer."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.oracle_benefit import in_trial_oracle, margin_table  # noqa: E402


def _trials(noise_sd, dev_sd, seed=0):
    rng = np.random.default_rng(seed)
    trial = np.repeat([f"T{i}" for i in range(12)], 60)
    cls = np.tile(np.repeat(["exercise", "usual_care"], 30), 12)
    dev = dict(zip(np.unique(trial), rng.normal(0, dev_sd, 12)))
    t_avg = rng.normal(5, 3, trial.size)
    t_mix = t_avg + pd.Series(trial).map(dev).to_numpy()
    noise = rng.normal(0, noise_sd, trial.size)
    W = np.ones((trial.size, 1))
    return t_avg, t_mix, noise, cls, trial, W


def test_in_trial_oracle_noise_free_recovers_the_trial_effect():
    t_avg, t_mix, noise, cls, trial, W = _trials(0.0, 2.0)
    ok = np.ones(trial.size, bool)
    out = in_trial_oracle(t_avg, t_mix, noise, cls, trial, ok, W, ["usual_care"], "exercise")
    # per trial the deviation is recovered exactly; the within-trial part of t_avg stays
    assert np.allclose(out, t_mix)


def test_in_trial_oracle_shrinks_to_the_prediction_without_trial_effects():
    t_avg, t_mix, noise, cls, trial, W = _trials(10.0, 0.0)
    ok = np.ones(trial.size, bool)
    out = in_trial_oracle(t_avg, t_mix, noise, cls, trial, ok, W, ["usual_care"], "exercise")
    assert np.allclose(out, t_avg)
    # with noise and real deviations it is closer to the truth than the prediction without them
    t_avg, t_mix, noise, cls, trial, W = _trials(10.0, 3.0, seed=1)
    out = in_trial_oracle(t_avg, t_mix, noise, cls, trial, ok, W, ["usual_care"], "exercise")
    assert np.sqrt(np.mean((out - t_mix) ** 2)) < 0.8 * np.sqrt(np.mean((t_avg - t_mix) ** 2))


def test_margin_table_reports_bound_and_achieved_ratio():
    rows = []
    for seed in (1, 2):
        for name, pehe, new in (("selected", 4.0, 5.0), ("selected_in_trial", 3.5, 5.0), ("econml_cf", 6.0, 6.0),
                                ("causalml_x", 5.0, 7.0), ("oracle_avg", 2.0, 3.0), ("oracle_avg_in_trial", 1.0, 3.0),
                                ("oracle_observed", 3.0, 4.5), ("oracle_observed_in_trial", 2.5, 4.5)):
            rows.append({"scenario": "s", "seed": seed, "learner": name, "pehe": pehe, "pehe_new": new})
    t = margin_table(pd.DataFrame(rows)).set_index("target")
    assert t.loc["new", "best_peer"] == "econml_cf" and t.loc["fitted plain", "best_peer"] == "causalml_x"
    assert np.isclose(t.loc["new", "achieved"], 5.0 / 6.0 - 1) and np.isclose(t.loc["new", "reachable"], 4.5 / 6.0 - 1)
    assert np.isclose(t.loc["fitted in-trial", "reachable"], 2.5 / 5.0 - 1)
    assert np.isclose(t.loc["new", "ours_learnable"], 4.0)  # sqrt(5^2 - 3^2)
