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
