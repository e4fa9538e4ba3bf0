"""Which learners a task fits: tree learners only where IECV selects among the learners."""
from training.selection import selectable as _selectable
from training.train import LEARNERS


def test_tree_learners_are_fitted_only_where_they_can_be_selected():
    assert _selectable(LEARNERS, True) == list(LEARNERS)
    assert _selectable(LEARNERS, False) == ["constant", "effect_model", "risk_model"]


def test_every_learner_is_fitted_when_the_effect_model_is_not_there_to_deploy():
    # without the effect model the first fitted learner is deployed: nothing may be dropped
    assert _selectable(["t_learner", "x_learner"], False) == ["t_learner", "x_learner"]
    assert _selectable(["risk_model", "dr_learner"], False) == ["risk_model", "dr_learner"]


def test_effect_pairs_is_a_default_learner_for_continuous_outcomes_only():
    from training.selection import CONTINUOUS_ONLY, learners_for

    assert "effect_pairs" in LEARNERS and "effect_pairs" in CONTINUOUS_ONLY
    assert learners_for(LEARNERS, "continuous") == list(LEARNERS)
    binary = learners_for(LEARNERS, "binary")
    assert "effect_pairs" not in binary and binary == [n for n in LEARNERS if n != "effect_pairs"]


def test_risk_model_is_a_default_learner_for_binary_outcomes_only_but_fitted_when_named():
    """Session 12: train's default list fits the risk model for binary outcomes only (it extrapolated the
    wrong way on shifted continuous-outcome trials); a user who names it gets it for any outcome."""
    from training.selection import DEFAULT_BINARY_ONLY, learners_for

    assert DEFAULT_BINARY_ONLY == ("risk_model",)
    cont = learners_for(LEARNERS, "continuous", default=True)
    assert "risk_model" not in cont and cont == [n for n in LEARNERS if n != "risk_model"]
    assert "risk_model" in learners_for(LEARNERS, "binary", default=True)
    assert learners_for(["constant", "effect_model", "risk_model"], "continuous") == ["constant", "effect_model",
                                                                                      "risk_model"]


def test_train_fits_the_default_list_by_outcome_type(tmp_path):
    """run_training with the default learners (no IECV, so the tree learners are not fitted): no risk model for
    a continuous outcome, one for a binary outcome (the run's exported models)."""
    import pandas as pd

    from training.config import load_config
    from training.simulate.small_trials import small_trials
    from training.train import TrainSettings, run_training

    parts = []
    for outcome, kind in (("pain", "continuous"), ("global_recovery", "binary")):
        X, y, _ = small_trials(n_trials=5, n_per_arm=40, seed=7, noise=8.0, effect_mod=5.0, outcome=kind)
        parts.append(X.assign(outcome=outcome, follow_up="short", value=y))
    analysis = pd.concat(parts, ignore_index=True)
    s = TrainSettings(seed=2, iecv_follow_ups=[], n_boot_linear=3, n_boot_trees=0, iecv_metrics_boot=3, workers=1,
                      subgroup_boot=3)
    run_training(analysis, load_config(None), tmp_path / "run", s)
    models = tmp_path / "run" / "models"
    assert (models / "pain__short" / "effect_model.json").exists()
    assert not (models / "pain__short" / "risk_model.json").exists()
    assert (models / "global_recovery__short" / "risk_model.json").exists()


def test_fitted_labels_name_the_outcome_type_of_a_one_type_learner():
    from training.selection import fitted_labels

    labels = fitted_labels(LEARNERS)
    assert "risk_model (binary outcomes)" in labels and "effect_pairs (continuous outcomes)" in labels
    assert "effect_model" in labels and len(labels) == len(LEARNERS)
    assert fitted_labels(["constant", "risk_model"]) == ["constant", "risk_model"]  # named: fitted for both
