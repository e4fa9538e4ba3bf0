"""Study config: the default covers the seed paper's modifiers; bad configs are refused clearly."""
import pytest
import yaml

from predict.errors import LbpError
from training.config import load_config, parse_config, resolve_config

SEED_PAPER_COLUMNS = [
    "age", "female", "education_beyond_high_school", "current_smoker", "physically_active", "bmi", "lbp_history",
    "employed", "sick_leave_12m", "heavy_physical_work", "general_health", "mental_health", "fear_avoidance",
    "social_support", "episode_months", "leg_pain", "lbp_medication",
]


def test_default_config_covers_the_candidate_modifiers():
    cfg = load_config()
    assert cfg.covariates.names == SEED_PAPER_COLUMNS
    assert list(cfg.outcomes) == ["pain", "function"]  # baseline pain and function: the other two modifiers
    assert cfg.active == "exercise"
    assert cfg.window_names == ["short", "moderate", "long"]
    assert cfg.covariates["bmi"].range == (12.0, 70.0)
    assert cfg.outcomes["pain"].recovery_min_points == 20 and cfg.outcomes["function"].recovery_min_points == 10


def _raw():
    return load_config().raw


def test_default_config_has_the_study_level_fields():
    cfg = load_config()
    assert cfg.adjust_for == ("age", "female")  # formerly hard-coded in training.meta.design
    assert cfg.intervention_label == "exercise therapy" and cfg.comparator_label == "non-exercise care"
    assert cfg.outcomes["pain"].smallest_worthwhile == {"relative": 0.2}
    assert cfg.outcome_type("pain") == "continuous" and cfg.outcome_type("global_recovery") == "binary"
    assert cfg.recovery_sources == ["pain", "function"] and cfg.has_baseline("global_recovery")
    assert cfg.min_trial_size == 10 and cfg.plausible == {}


def _set(path, value):
    def mutate(r):
        d = r
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return mutate


def _drop(path):
    def mutate(r):
        d = r
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return mutate


# Every mistake class: (mutation, the key path the message names, what it says).
MISTAKES = [
    # unknown / misspelt keys, at every level, with the nearest valid key
    (_set(["colour"], "red"), "colour", "unknown key"),
    (_set(["outcomes", "pain", "recovery_min_pts"], 20), "outcomes.pain.recovery_min_pts", "did you mean 'recovery_min_points'"),
    (_set(["global_recovery", "relatve"], 0.3), "global_recovery.relatve", "did you mean 'relative'"),
    (_set(["covariates", "age", "rnage"], [0, 1]), "covariates.age.rnage", "did you mean 'range'"),
    (_set(["treatments", "activ"], "exercise"), "treatments.activ", "did you mean 'active'"),
    (_set(["follow_up", "short", "target"], 13), "follow_up.short.target", "did you mean 'target_week'"),
    # wrong types
    (_set(["covariates", "x"], {"type": "ordinal"}), "covariates.x.type", "'ordinal'"),
    (_set(["covariates", "age", "range"], "18-100"), "covariates.age.range", "valid"),
    (_set(["follow_up", "short", "target_week"], "thirteen"), "follow_up.short.target_week", "number"),
    (_set(["outcomes", "pain", "instruments"], "vas_0_10"), "outcomes.pain.instruments", "list"),
    (_set(["min_trial_size"], 0), "min_trial_size", "greater than or equal to 1"),
    (_set(["adjust_for"], "age"), "adjust_for", "list"),
    # inconsistent values
    (_set(["covariates", "x"], {"type": "continuous", "range": [5, 1]}), "covariates.x", "low < high"),
    (_set(["covariates", "x"], {"type": "categorical"}), "covariates.x", "needs 'categories'"),
    (_set(["covariates", "x"], {"type": "categorical", "categories": ["a", "b"], "reference": "c"}), "covariates.x", "reference 'c'"),
    (_set(["covariates", "x"], {"type": "continuous", "range": [0, 10], "plausible": [0, 20]}), "covariates.x", "within range"),
    (_set(["treatments", "active"], "yoga"), "treatments", "active treatment 'yoga'"),
    (_set(["comparisons", "bad"], ["exercise"]), "comparisons.bad", "not a comparator class"),
    (_set(["follow_up", "short", "up_to"], 30), "follow_up.moderate", "overlaps"),
    (_set(["covariates", "trial"], {"type": "binary"}), "covariates.trial", "reserved"),
    (_set(["adjust_for"], ["age", "sex"]), "adjust_for", "'sex' is not a declared covariate"),
    (_set(["subgroups", "bmii"], [25]), "subgroups.bmii", "did you mean 'bmi'"),
    # missing instrument / unknown instrument
    (_drop(["outcomes", "pain", "instruments"]), "outcomes.pain", "needs 'instruments'"),
    (_set(["outcomes", "pain", "instruments"], ["vas_0_10", "vas_10"]), "outcomes.pain.instruments", "unknown instrument 'vas_10'"),
    (_drop(["treatments"]), "treatments", "is required"),
    (_drop(["follow_up"]), "follow_up", "is required"),
    # outcome kind mismatches
    (_set(["outcomes", "death"], {"kind": "binary", "direction": "higher_is_worse", "baseline": True}), "outcomes.death", "no baseline"),
    (_set(["outcomes", "death"], {"kind": "binary"}), "outcomes.death", "needs 'direction'"),
    (_set(["outcomes", "death"], {"kind": "binary", "direction": "higher_is_worse", "instruments": ["vas_0_10"]}),
     "outcomes.death.instruments", "needs a 0/1 instrument"),
    (_set(["outcomes", "pain", "direction"], "higher_is_better"), "outcomes.pain", "'direction' is for binary outcomes"),
    (_set(["outcomes", "pain", "kind"], "ordinal"), "outcomes.pain.kind", "'ordinal'"),
    (_set(["outcomes", "pain", "baseline"], False), "outcomes.pain", "recovery_min_points needs a baseline"),
    (_set(["global_recovery", "adjust_for"], "pian"), "global_recovery.adjust_for", "did you mean 'pain'"),
    (_set(["outcomes", "pain", "smallest_worthwhile"], {"absolute": 10, "relative": 0.2}), "outcomes.pain.smallest_worthwhile",
     "exactly one"),
    (_set(["outcomes", "pain", "follow_up"], ["shrot"]), "outcomes.pain.follow_up", "did you mean 'short'"),
]


@pytest.mark.parametrize("mutate,path,needle", MISTAKES, ids=[f"{m[1]}:{m[2]}" for m in MISTAKES])
def test_every_config_mistake_is_one_line_naming_file_and_key(mutate, path, needle):
    import copy

    raw = copy.deepcopy(_raw())
    mutate(raw)
    with pytest.raises(LbpError) as info:
        parse_config(raw, source="x.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"study config x.yaml: {path}: "), lines[0]
    assert needle in lines[0], lines[0]


def test_several_mistakes_give_one_line_each():
    import copy

    raw = copy.deepcopy(_raw())
    raw["colour"] = "red"
    raw["outcomes"]["pain"]["recovery_min_pts"] = 20
    with pytest.raises(LbpError) as info:
        parse_config(raw, source="x.yaml")
    assert len(str(info.value).splitlines()) == 2


def test_misspelt_recovery_key_is_not_silently_ignored(tmp_path):
    """The issue's example: 'recovery_min_pts' used to switch recovery off without a word."""
    p = tmp_path / "study.yaml"
    raw = _raw()
    raw["outcomes"]["pain"] = {k: v for k, v in raw["outcomes"]["pain"].items() if k != "recovery_min_points"}
    raw["outcomes"]["pain"]["recovery_min_pts"] = 20
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(LbpError, match=r"study.yaml: outcomes.pain.recovery_min_pts: unknown key \(did you mean"):
        load_config(p)


def test_json_schema_forbids_unknown_keys():
    from training.config_schema import json_schema

    s = json_schema()
    assert s["additionalProperties"] is False
    assert {"treatments", "outcomes", "adjust_for", "min_trial_size"} <= set(s["properties"])
    assert s["$defs"]["Outcome"]["additionalProperties"] is False


def test_config_file_errors_name_the_file(tmp_path):
    p = tmp_path / "study.yaml"
    p.write_text("covariates: [unclosed\n")
    with pytest.raises(LbpError, match="study.yaml: invalid YAML"):
        load_config(p)
    with pytest.raises(LbpError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_config_precedence(tmp_path):
    raw = _raw()
    raw = dict(raw, name="folder_config")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    assert resolve_config(tmp_path, None).name == "folder_config"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(dict(raw, name="explicit")))
    assert resolve_config(tmp_path, other).name == "explicit"
    assert resolve_config(tmp_path / "nofolder", None).name == "lbp_default"


def test_another_study_with_its_own_covariates_and_instrument(tmp_path):
    """A user with another condition writes their own config and the package works unchanged."""
    import pandas as pd

    from training.dataset import load_dataset
    from training.harmonise import harmonise

    cfg = {
        "name": "neck_pain", "treatments": {"active": "exercise", "classes": ["exercise", "usual_care"]},
        "covariates": {"grip_kg": {"type": "continuous", "unit": "kg", "range": [0, 100]},
                       "side": {"type": "categorical", "categories": ["left", "right"]}},
        "outcomes": {"ndi": {"instruments": ["ndi_0_50"], "recovery_min_points": 10}},
        "instruments": {"ndi_0_50": {"min": 0, "max": 50, "direction": "higher_is_worse"}},
        "follow_up": {"short": {"target_week": 6, "after": 0, "up_to": 12}},
        "global_recovery": {"relative": 0.3, "combine": "any", "adjust_for": "ndi"},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    pd.DataFrame({"trial": ["N1"] * 4, "participant": list("1234"), "arm": ["ex", "uc", "ex", "uc"],
                  "treatment": ["exercise", "usual_care"] * 2, "grip_kg": [30, "", 41.5, 22],
                  "side": ["left", "right", "", "left"]}).to_csv(tmp_path / "participants.csv", index=False)
    pd.DataFrame({"trial": ["N1"] * 8, "participant": list("12341234"), "outcome": ["ndi"] * 8,
                  "instrument": ["ndi_0_50"] * 8, "week": [0] * 4 + [6] * 4,
                  "value": [30, 25, 20, 40, 10, 24, 19, 38]}).to_csv(tmp_path / "outcomes.csv", index=False)
    h = harmonise(load_dataset(tmp_path))
    ndi = h.analysis[h.analysis.outcome == "ndi"].set_index("participant")
    assert ndi.loc["1", "value"] == pytest.approx(20.0) and ndi.loc["1", "baseline"] == pytest.approx(60.0)
    rec = h.analysis[h.analysis.outcome == "global_recovery"].set_index("participant")["value"]
    assert rec.to_dict() == {"1": 1.0, "2": 0.0, "3": 0.0, "4": 0.0}


def test_a_flow_style_label_with_a_comma_says_to_quote_it():
    """s12r: ``{label: Pain, 0-10}`` parses as keys label and '0-10' (no value); the message said only
    "unknown key" - it now names the likely cause and the fix (quote the value)."""
    raw = _raw()
    text = yaml.safe_dump(raw["outcomes"]["pain"], default_flow_style=True).strip()
    pain = yaml.safe_load(text[:-1] + ", label: Pain intensity, 0-10 NRS}")
    assert pain["0-10 NRS"] is None
    raw["outcomes"]["pain"] = pain
    with pytest.raises(LbpError, match=r"outcomes\.pain\.0-10 NRS: unknown key.*comma.*quote that value"):
        parse_config(raw)
    raw["outcomes"]["pain"] = yaml.safe_load(text[:-1] + ', label: "Pain intensity, 0-10 NRS"}')
    assert parse_config(raw).outcomes["pain"].label == "Pain intensity, 0-10 NRS"
