"""One-stage IPD meta-analysis: design, estimates against known truth, within-trial interactions,
exclusions counted, long-form outputs."""
import numpy as np
import pandas as pd
import pytest

from training.config import load_config
from training.meta.design import ModelSpec, build_design
from training.meta.fit import fit_model

CFG = load_config()
ANY = CFG.comparisons["any_non_exercise"]


def _ipd(seed=3, k=20, n=120, effect=-10.0, gamma_w=-0.5, ecological=0.0, tau=2.0, missing_z=0.0):
    """Pain-like IPD: y = a_j + 0.6·y0 + (θ + u_j)·t + γ_W·t·(z − z̄_j) + ecological·t·(z̄_j − 50) + ε."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(k):
        zbar = rng.uniform(30, 70)
        u = rng.normal(0, tau)
        a = rng.normal(20, 5)
        for i in range(n):
            t = i % 2
            z = rng.normal(zbar, 10)
            y0 = rng.uniform(30, 80)
            y = a + 0.6 * y0 + (effect + u) * t + gamma_w * t * (z - zbar) + ecological * t * (zbar - 50) + rng.normal(0, 12)
            rows.append(dict(trial=f"T{j:02d}", participant=str(i), treatment="exercise" if t else "usual_care", treat=t,
                             outcome="pain", follow_up="short", value=y, baseline=y0, baseline_pain=y0,
                             fear_avoidance=np.nan if rng.random() < missing_z else z, age=rng.uniform(20, 70),
                             female=float(rng.random() < 0.5)))
    return pd.DataFrame(rows)


def test_overall_effect_recovered_with_tau_and_prediction_interval():
    d = _ipd(effect=-10.0, tau=3.0)
    row = fit_model(build_design(d, ModelSpec("pain", "short", "any", ANY)))
    assert row["status"] in ("ok", "singular")
    assert row["ci_low"] < -10.0 < row["ci_high"]
    assert row["pi_low"] < row["ci_low"] and row["pi_high"] > row["ci_high"]
    assert row["studies"] == 20 and row["participants"] == 2400 and 0 < row["tau"] < 8


def test_within_trial_interaction_is_free_of_ecological_bias():
    # Across trials the effect grows with the trial mean of z (ecological), within trials it does not.
    d = _ipd(gamma_w=0.0, ecological=-0.4, seed=5)
    row = fit_model(build_design(d, ModelSpec("pain", "short", "any", ANY, "fear_avoidance")))
    assert row["ci_low"] < 0.0 < row["ci_high"]
    assert abs(row["estimate"]) < 0.15


def test_interaction_recovered_unadjusted_and_adjusted():
    d = _ipd(gamma_w=-0.5, seed=7)
    for adjusted in (False, True):
        design = build_design(d, ModelSpec("pain", "short", "any", ANY, "fear_avoidance", adjusted))
        row = fit_model(design)
        assert row["ci_low"] < -0.5 < row["ci_high"], row
        assert row["model"] == ("adjusted" if adjusted else "unadjusted")
    assert "treat:age_c" in design.X.columns and "age_c" in design.Z.columns


def test_tau_not_identified_with_two_trials_and_a_trial_mean_term():
    """Two trials: treat and treat x trial-mean of the modifier fix both trials' effects, so the
    likelihood is flat in tau; tau is reported as NaN (not an arbitrary value) and the
    within-trial estimate is unaffected (same as with tau's component dropped)."""
    d = _ipd(k=2, n=200, gamma_w=-0.5, seed=9, tau=3.0)
    design = build_design(d, ModelSpec("pain", "short", "any", ANY, "fear_avoidance"))
    assert "treat:fear_avoidance_trialmean" in design.X.columns
    row = fit_model(design)
    assert np.isnan(row["tau"]) and not row["tau_at_boundary"]
    assert "tau not identified" in row["message"]
    assert row["ci_low"] < -0.5 < row["ci_high"]
    # three trials leave one degree of freedom: tau is estimated again
    row3 = fit_model(build_design(_ipd(k=3, n=200, gamma_w=-0.5, seed=9, tau=3.0),
                                  ModelSpec("pain", "short", "any", ANY, "fear_avoidance")))
    assert np.isfinite(row3["tau"])
    # an overall-effect model on two trials has one trial-level term: tau identified
    assert np.isfinite(fit_model(build_design(d, ModelSpec("pain", "short", "any", ANY)))["tau"])


def test_participants_missing_a_model_variable_are_excluded_and_counted():
    d = _ipd(missing_z=0.3, seed=11)
    design = build_design(d, ModelSpec("pain", "short", "any", ANY, "fear_avoidance"))
    n_missing = int(d["fear_avoidance"].isna().sum())
    assert design.n_missing == n_missing and design.participants == len(d) - n_missing
    assert design.missing_by_variable["fear_avoidance"] == n_missing
    # The overall model of the same data keeps them.
    assert build_design(d, ModelSpec("pain", "short", "any", ANY)).participants == len(d)


def test_trials_without_a_comparator_do_not_enter():
    d = _ipd(k=6, seed=2)
    ex_only = d[d.trial == "T00"].assign(treatment="exercise", treat=1)
    d = pd.concat([d[d.trial != "T00"], ex_only])
    design = build_design(d, ModelSpec("pain", "short", "any", ANY))
    assert "T00" not in set(design.groups) and design.studies == 5


def test_binary_outcome_gives_log_odds_ratio():
    rng = np.random.default_rng(4)
    d = _ipd(seed=4)
    lin = -0.5 + 0.9 * d["treat"] - 0.02 * (d["baseline"] - 55)
    d = d.assign(outcome="global_recovery", value=(rng.random(len(d)) < 1 / (1 + np.exp(-lin))).astype(float))
    row = fit_model(build_design(d, ModelSpec("global_recovery", "short", "any", ANY, binary_outcome=True)))
    assert row["scale"] == "log_or" and row["ci_low"] < 0.9 < row["ci_high"]


def test_modifier_constant_within_trials_is_not_estimable():
    d = _ipd(seed=9)
    d["fear_avoidance"] = d.groupby("trial")["fear_avoidance"].transform("mean")
    from predict.errors import LbpError

    with pytest.raises(LbpError, match="does not vary within any trial"):
        build_design(d, ModelSpec("pain", "short", "any", ANY, "fear_avoidance"))


def test_one_stage_fits_on_the_default_scenario_land_in_published_cis():
    """Issue 4: on hayden2020, fitted overall effects and adjusted interactions vs the published values."""
    from training.meta.calibration import one_stage_rows
    from training.simulate import simulate_dataset

    rows = pd.DataFrame(one_stage_rows(simulate_dataset("hayden2020", seed=1)))
    overall = rows[rows.section.str.startswith("effects")]
    inter = rows[rows.section.str.startswith("interactions") & rows.published.notna()]
    assert len(overall) == 6 and overall.within.all(), overall[["quantity", "published", "simulated"]]
    assert len(inter) >= 50 and inter.within.mean() >= 0.85
