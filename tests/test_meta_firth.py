"""``replicate``'s logistic fits under separation (s13f): the single-trial and common-effect fits use
Firth's penalised likelihood with profile CIs and penalised likelihood-ratio p (R logistf 1.26.1's
numbers), the two-stage analysis uses a separated trial's Firth estimate, and the one-stage GLMM says
why it reports nothing."""
import math

import numpy as np
import pandas as pd
import pytest

from training.meta.design import ModelSpec, build_design
from training.meta.few_trials import FIRTH_INFERENCE, hksj, two_stage
from training.meta.fit import fit_model


def _trial(name, events_t, n_t, events_c, n_c, x=None):
    y = np.r_[np.ones(events_t), np.zeros(n_t - events_t), np.ones(events_c), np.zeros(n_c - events_c)]
    t = np.r_[np.ones(n_t), np.zeros(n_c)]
    n = y.size
    return pd.DataFrame({"trial": name, "participant": np.arange(n), "treat": t.astype(int),
                         "treatment": np.where(t == 1, "active", "control"), "outcome": "y", "follow_up": "end",
                         "value": y, "baseline": np.nan, "age": 30.0 + (np.arange(n) * 23) % 43 if x is None else x})


def _spec(modifier=None):
    return ModelSpec("y", "end", "any", ("control",), modifier, False, True, adjust_for=(), baseline=False)


def test_single_separated_trial_reports_firth_with_the_profile_interval_of_r_logistf():
    """medicaldata::laryngoscope's success: video 46/50, Macintosh 49/49 (active = video). Before: 'not
    estimable'. R: logistf(y ~ video): -2.25974493, profile CI (-7.15676897, 0.01936645), p 0.05235131."""
    a = _trial("Ranieri2012", 46, 50, 49, 49)
    row = fit_model(build_design(a, _spec(), "active", min_trials=1))
    assert row["status"] == "ok" and row["inference"] == FIRTH_INFERENCE
    assert row["estimate"] == pytest.approx(-2.25974493431755, abs=1e-4)
    assert row["se"] == pytest.approx(1.50463604196109, abs=1e-4)
    assert row["ci_low"] == pytest.approx(-7.15676897190015, abs=1e-3)
    assert row["ci_high"] == pytest.approx(0.0193664450374823, abs=1e-3)
    assert row["p"] == pytest.approx(0.0523513142765624, rel=1e-4)
    assert "separation" in row["message"] and "Firth" in row["message"]


def test_interaction_in_a_separated_trial_matches_r_logistf():
    """The same trial with a continuous modifier: the interaction's Firth estimate and profile interval
    equal logistf(y ~ video * age)'s (centring the modifier changes only the main effects)."""
    a = _trial("Ranieri2012", 46, 50, 49, 49)
    row = fit_model(build_design(a, _spec("age"), "active", min_trials=1))
    # R: logistf(y ~ t * age) on the same 99 rows (age <- 30 + ((0:98) * 23) %% 43)
    ref = {"estimate": 0.0125808492492, "ci_low": -0.469230750373, "ci_high": 0.518730501424, "p": 0.909231042838}
    assert row["inference"] == FIRTH_INFERENCE and row["status"] == "ok"
    for k, v in ref.items():
        assert row[k] == pytest.approx(v, abs=1e-3 if k.startswith("ci") else 1e-4)


def test_two_stage_uses_a_separated_trials_firth_estimate_and_says_so():
    """Three trials; in C1 every control participant had the event. Before, C1 was left out of the
    two-stage analysis ('estimates diverge'); now its Firth estimate (log OR with 1/2 in every cell)
    and logistf's variance (Woolf's with 1/2) enter, said in the message. A trial where everyone had the
    event carries no information and stays out, said."""
    a = pd.concat([_trial("C1", 15, 20, 20, 20), _trial("C2", 14, 20, 9, 20), _trial("C3", 12, 20, 8, 20),
                   _trial("C4", 20, 20, 20, 20)], ignore_index=True)
    hk = two_stage(build_design(a, _spec(), "active"))
    assert hk["k"] == 3
    assert "separation within trial(s) C1" in hk["message"] and "C4 (every participant had the same outcome" in hk["message"]
    lor = [math.log(15.5 / 5.5) - math.log(20.5 / 0.5), math.log(14 / 6) - math.log(9 / 11), math.log(12 / 8) - math.log(8 / 12)]
    v = [1 / 15.5 + 1 / 5.5 + 1 / 20.5 + 1 / 0.5, 1 / 14 + 1 / 6 + 1 / 9 + 1 / 11, 1 / 12 + 1 / 8 + 1 / 8 + 1 / 12]
    ref = hksj(np.array(lor), np.array(v))
    assert hk["estimate"] == pytest.approx(ref["estimate"], abs=1e-6) and hk["ci_low"] == pytest.approx(ref["ci_low"], abs=1e-6)


def _rare_level_separated():
    parts = []
    for j, (et, ec) in enumerate([(14, 9), (13, 8), (15, 10)]):
        d = _trial(f"C{j + 1}", et, 20, ec, 20)
        rare = (np.arange(40) % 10 == 0).astype(float)  # 4 per trial, 2 per arm
        d["rare"] = rare
        d.loc[(rare == 1) & (d.treat == 1), "value"] = 1.0
        d.loc[(rare == 1) & (d.treat == 0), "value"] = 0.0
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def test_subgroup_effect_of_a_separated_level_is_not_drawn_and_says_why():
    """Forest-plot subgroups (one-stage GLMM with one treatment term per level): the level where every
    active participant had the event and no control did runs off; reported as not estimable with the
    LP test's verdict (before: a log odds ratio in the tens with a huge interval, drawn)."""
    from types import SimpleNamespace

    from training.meta.subgroups import subgroup_effects

    cfg = SimpleNamespace(raw={}, covariates={"rare": SimpleNamespace(type="binary")}, active="active")
    spec = ModelSpec("y", "end", "any", ("control",), "rare", False, True, adjust_for=(), baseline=False)
    out = subgroup_effects(_rare_level_separated(), cfg, spec).set_index("level")
    assert out.loc["yes", "status"] == "not estimable" and np.isnan(out.loc["yes", "estimate"])
    assert "Konis's LP test" in out.loc["yes", "message"]
    assert np.isfinite(out.loc["no", "estimate"]) and out.loc["no", "status"] != "not estimable"


def test_one_stage_glmm_divergence_names_separation_by_the_lp_test():
    """A modifier level in which every participant had the event, in every trial: the one-stage GLMM's
    interaction runs off; the row says separation (Konis's LP test) and that the model has no Firth
    correction, instead of reporting the number."""
    spec = ModelSpec("y", "end", "any", ("control",), "rare", False, True, adjust_for=(), baseline=False)
    row = fit_model(build_design(_rare_level_separated(), spec, "active"))
    assert row["status"] == "not estimable" and np.isnan(row["estimate"])
    assert "Konis's LP test" in row["message"] and "no Firth correction" in row["message"]
