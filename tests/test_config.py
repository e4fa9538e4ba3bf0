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


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.update(colour="red"), "unknown keys colour"),
    (lambda r: r["covariates"].update(x={"type": "ordinal"}), "type 'ordinal'"),
    (lambda r: r["covariates"].update(x={"type": "continuous", "range": [5, 1]}), "low < high"),
    (lambda r: r["covariates"].update(x={"type": "categorical"}), "needs its categories"),
    (lambda r: r["outcomes"]["pain"].update(instruments=["vas_0_10", "foo"]), "unknown instruments foo"),
    (lambda r: r["treatments"].update(active="yoga"), "active treatment 'yoga'"),
    (lambda r: r["comparisons"].update(bad=["exercise"]), "not comparator classes"),
    (lambda r: r["follow_up"]["short"].update(up_to=30), "overlap"),
    (lambda r: r["covariates"].update(trial={"type": "binary"}), "reserved"),
])
def test_bad_config_is_refused_with_reason(mutate, needle):
    raw = _raw()
    import copy

    raw = copy.deepcopy(raw)
    mutate(raw)
    with pytest.raises(LbpError, match=needle):
        parse_config(raw, source="x.yaml")


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
