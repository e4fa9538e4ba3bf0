"""When the stack fails the heterogeneity gate, train deploys the CV-shrunk effect model (not the
average-effect model), and the verdict still says the data do not show individual differences."""
from training.selection import gate_fallback as _gate_fallback
from training.train_warnings import task_verdict

GATE = {"keep_stack": False, "gain": -0.1, "se": 0.2, "z": 1.645, "gain_pct": -0.5, "tested": "stack",
        "rule": "cross-validated stack vs the average-effect model: not kept"}


def test_the_effect_model_is_deployed_when_the_stack_fails_the_gate():
    fitted = {"constant": "C", "effect_model": "E", "x_learner": "X"}
    model, how = _gate_fallback(fitted, GATE, "x_learner", {"x_learner": 1.0}, {"x_learner": 1.0})
    assert model == "E" and how["model"] == "effect_model" and how["gate"] is GATE
    assert how["rule"].startswith("the effect model, its modification shrunk by trial-grouped cross-validation")
    assert GATE["rule"] in how["rule"]


def test_without_an_effect_model_the_average_effect_model_is_deployed():
    model, how = _gate_fallback({"constant": "C", "t_learner": "T"}, GATE, "t_learner", {}, {"t_learner": 1.0})
    assert model == "C" and how["model"] == "constant" and how["rule"].startswith("the average effect:")


def test_the_verdict_says_use_the_average_effect_whichever_model_was_deployed():
    for name, shrunk in (("effect_model", True), ("constant", False)):
        v, warn = task_verdict("pain__short", None, {"model": name, "gate": GATE}, "continuous")
        assert v["level"] == "not_supported" and warn == []
        assert "Use the average effect for everyone." in v["sentence"]
        assert ("shrunk towards it" in v["sentence"]) is shrunk
