"""Every kind of bad input gets an error that names the culprit (file, trial, participant, column)."""
from pathlib import Path

import numpy as np
import pytest

from predict.errors import ValidationFailed
from tests.conftest import read, write
from training.dataset import load_dataset


def _p(folder, fn):
    df = read(folder, "participants")
    df = fn(df)
    write(folder, "participants", df)


def _o(folder, fn):
    df = read(folder, "outcomes")
    df = fn(df)
    write(folder, "outcomes", df)


def _set(df, row, col, value):
    df.loc[row, col] = value
    return df


def _append_copy(df, row, **changes):
    import pandas as pd

    new = df.iloc[[row]].copy()
    for k, v in changes.items():
        new[k] = v
    return pd.concat([df, new], ignore_index=True)


def _raw(folder: Path, name: str, data: bytes):
    (folder / name).write_bytes(data)


# (id, mutate(folder), expected code, strings the message must contain)
CASES = [
    ("missing_participants_file", lambda f: (f / "participants.csv").unlink(), "missing_file", ["participants.csv"]),
    ("missing_outcomes_file", lambda f: (f / "outcomes.csv").unlink(), "missing_file", ["outcomes.csv"]),
    ("empty_file", lambda f: _raw(f, "participants.csv", b""), "empty_file", ["participants.csv"]),
    ("header_only", lambda f: _raw(f, "outcomes.csv", b"trial,participant,outcome,instrument,week,value\n"), "empty_file", ["outcomes.csv"]),
    ("bad_encoding", lambda f: _raw(f, "participants.csv", (f / "participants.csv").read_bytes().replace(b"exercise", b"exerc\xe9se", 1)),
     "bad_encoding", ["participants.csv line 2", "UTF-8"]),
    ("ragged_row", lambda f: _raw(f, "outcomes.csv", (f / "outcomes.csv").read_bytes() + b"T01,1,pain\n"), "ragged_row", ["outcomes.csv line"]),
    ("duplicate_column", lambda f: _raw(f, "outcomes.csv", (f / "outcomes.csv").read_bytes().replace(b"value\n", b"week\n", 1)),
     "duplicate_column", ["outcomes.csv", "week"]),
    ("missing_column", lambda f: _p(f, lambda d: d.drop(columns="arm")), "missing_column", ["participants.csv", "arm"]),
    ("missing_outcome_column", lambda f: _o(f, lambda d: d.drop(columns="instrument")), "missing_column", ["outcomes.csv", "instrument"]),
    ("unknown_treatment", lambda f: _p(f, lambda d: _set(d, 0, "treatment", "yoga_class")), "unknown_treatment",
     ["participants.csv line 2", "trial 'T01'", "participant '1'", "column 'treatment'", "yoga_class"]),
    ("empty_treatment", lambda f: _p(f, lambda d: _set(d, 3, "treatment", "")), "missing_treatment", ["line 5", "participant '4'"]),
    ("unknown_subtype", lambda f: _p(f, lambda d: _set(d, 26, "subtype", "acupuncture")), "unknown_subtype", ["trial 'T02'", "acupuncture"]),
    ("subtype_on_exercise", lambda f: _p(f, lambda d: _set(d, 0, "subtype", "education")), "subtype_not_allowed", ["participant '1'", "'exercise'"]),
    ("duplicate_participant", lambda f: _p(f, lambda d: _set(d, 1, "participant", "1")), "duplicate_participant", ["trial 'T01'", "participant '1'"]),
    ("empty_participant_id", lambda f: _p(f, lambda d: _set(d, 5, "participant", "")), "missing_id", ["line 7", "column 'participant'"]),
    ("arm_two_classes", lambda f: _p(f, lambda d: _set(d, 2, "treatment", "usual_care")), "arm_two_classes", ["trial 'T01'", "arm 'exercise'"]),
    ("single_arm_trial", lambda f: _p(f, lambda d: d.assign(arm=d["arm"].where(d["trial"] != "T03", "exercise"),
                                                           treatment=d["treatment"].where(d["trial"] != "T03", "exercise"))),
     "single_arm_trial", ["trial 'T03'"]),
    ("covariate_not_number", lambda f: _p(f, lambda d: _set(d, 4, "age", "forty")), "not_a_number", ["participant '5'", "column 'age'", "forty"]),
    ("covariate_out_of_range", lambda f: _p(f, lambda d: _set(d, 7, "bmi", "270")), "out_of_range", ["participant '8'", "column 'bmi'", "12–70"]),
    ("binary_not_01", lambda f: _p(f, lambda d: _set(d, 9, "female", "2")), "not_binary", ["participant '10'", "column 'female'"]),
    ("binary_text", lambda f: _p(f, lambda d: _set(d, 9, "current_smoker", "yes")), "not_a_number", ["column 'current_smoker'", "'yes'"]),
    ("unknown_instrument", lambda f: _o(f, lambda d: _set(d, 0, "instrument", "sf36")), "unknown_instrument", ["outcomes.csv line 2", "sf36"]),
    ("instrument_wrong_outcome", lambda f: _o(f, lambda d: d.assign(instrument=d["instrument"].where(
        ~((d["trial"] == "T01") & (d["outcome"] == "pain")), "rmdq_0_24"))), "instrument_not_for_outcome", ["trial 'T01'", "rmdq_0_24", "'pain'"]),
    ("value_out_of_range", lambda f: _o(f, lambda d: _set(d, 1, "value", "30")), "value_out_of_range", ["line 3", "participant '1'", "rmdq_0_24", "0–24"]),
    ("value_not_number", lambda f: _o(f, lambda d: _set(d, 0, "value", "n/a")), "not_a_number", ["column 'value'", "'n/a'"]),
    ("week_negative", lambda f: _o(f, lambda d: _set(d, 2, "week", "-4")), "negative_week", ["line 4", "column 'week'"]),
    ("week_not_number", lambda f: _o(f, lambda d: _set(d, 2, "week", "baseline")), "not_a_number", ["column 'week'", "baseline"]),
    ("unknown_participant", lambda f: _o(f, lambda d: _set(d, 0, "participant", "999")), "unknown_participant", ["participant '999'", "line 2"]),
    ("mixed_instruments", lambda f: _o(f, lambda d: _set(d, 0, "instrument", "nrs_0_10").pipe(_set, 0, "value", "6")),
     "mixed_instruments", ["trial 'T01'", "'pain'", "nrs_0_10", "vas_0_100"]),
    ("conflicting_duplicate", lambda f: _o(f, lambda d: _append_copy(d, 0, value="12")), "conflicting_duplicate",
     ["trial 'T01'", "participant '1'", "week 0"]),
    ("both_csv_and_parquet", lambda f: read(f, "participants").to_parquet(f / "participants.parquet"), "ambiguous_file", ["participants"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_culprit(example_copy, case):
    _, mutate, code, needles = case
    mutate(example_copy)
    with pytest.raises(ValidationFailed) as info:
        load_dataset(example_copy)
    matching = [p for p in info.value.errors if p.code == code]
    assert matching, f"expected a {code} problem, got {[p.code for p in info.value.errors]}"
    text = "\n".join(str(p) for p in matching)
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_at_least_twenty_distinct_codes():
    assert len({c[2] for c in CASES}) >= 20


def test_all_problems_are_collected_not_only_the_first(example_copy):
    _p(example_copy, lambda d: _set(_set(d, 0, "treatment", "yoga"), 4, "age", "x"))
    _o(example_copy, lambda d: _set(d, 2, "week", "-1"))
    with pytest.raises(ValidationFailed) as info:
        load_dataset(example_copy)
    codes = {p.code for p in info.value.errors}
    assert {"unknown_treatment", "not_a_number", "negative_week"} <= codes


def test_drop_invalid_excludes_and_counts(example_copy):
    from training.harmonise import harmonise

    _p(example_copy, lambda d: _set(_set(d, 0, "treatment", "yoga"), 4, "age", "x"))
    ds = load_dataset(example_copy, drop_invalid=True)
    assert set(map(tuple, ds.excluded[["trial", "participant"]].to_numpy())) == {("T01", "1"), ("T01", "5")}
    att = harmonise(ds).attrition
    t01 = att[(att.trial == "T01") & (att.outcome == "pain")].iloc[0]
    assert t01.received == 24 and t01.excluded_invalid == 2 and t01.valid == 22


def test_drop_invalid_excludes_whole_trial_for_trial_problems(example_copy):
    _o(example_copy, lambda d: _set(d, 0, "instrument", "nrs_0_10").pipe(_set, 0, "value", "6"))
    ds = load_dataset(example_copy, drop_invalid=True)
    assert "T01" not in set(ds.participants.trial)
    assert (ds.excluded.trial == "T01").sum() == 24


def test_file_problems_stop_even_with_drop_invalid(example_copy):
    _p(example_copy, lambda d: d.drop(columns="treatment"))
    with pytest.raises(ValidationFailed):
        load_dataset(example_copy, drop_invalid=True)


def test_legitimately_incomplete_data_is_not_an_error(example_copy):
    # A missing covariate, a missing baseline and a missed follow-up are counted, not errors.
    _p(example_copy, lambda d: _set(d, 0, "age", ""))
    _o(example_copy, lambda d: d.drop(index=[0, 2]).reset_index(drop=True))
    ds = load_dataset(example_copy)
    assert ds.n_participants == 92


def test_warnings_for_unknown_columns_and_empty_values(example_copy):
    _p(example_copy, lambda d: d.assign(shoe_size="42"))
    _o(example_copy, lambda d: _set(d, 5, "value", ""))
    ds = load_dataset(example_copy)
    codes = {w.code for w in ds.warnings}
    assert {"unknown_column", "empty_value"} <= codes
    assert any("shoe_size" in str(w) for w in ds.warnings)


def test_rows_of_outcomes_not_in_the_config_are_ignored_and_counted(example_copy):
    """Issue 18, item 5: an outcome the config does not name is not an error (it used to make
    --drop-invalid drop almost every participant); --strict makes it one."""
    n_rows = len(read(example_copy, "outcomes"))
    _o(example_copy, lambda d: _set(_set(d, 0, "outcome", "sleep"), 1, "outcome", "sleep"))
    ds = load_dataset(example_copy)
    warn = [w for w in ds.warnings if w.code == "unknown_outcome"]
    assert len(warn) == 1 and "2 rows" in warn[0].message and "'sleep' (2)" in warn[0].message
    assert len(ds.outcomes) == n_rows - 2 and not len(ds.excluded)
    with pytest.raises(ValidationFailed, match="unknown_outcome"):
        load_dataset(example_copy, strict=True)


def test_implausible_covariate_is_a_warning_set_to_missing_and_counted(example_copy):
    """Issue 18, item 6: outside the plausible range = warning, value missing, participant kept;
    outside the hard range = error; --strict turns the warning into an error."""
    import yaml

    from training.config import load_config
    from training.harmonise import harmonise

    raw = load_config().raw
    raw["covariates"]["episode_months"] = {"type": "continuous", "unit": "months", "range": [0, 1200], "plausible": [0, 720]}
    (example_copy / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    parts = read(example_copy, "participants")
    _p(example_copy, lambda d: _set(d, 0, "episode_months", "780"))
    ds = load_dataset(example_copy)
    w = [p for p in ds.warnings if p.code == "implausible_value"]
    assert len(w) == 1 and "780" in w[0].message and "plausible range 0–720" in w[0].message and w[0].row == 2
    first = ds.participants.iloc[0]
    assert len(ds.participants) == len(parts) and np.isnan(first["episode_months"])
    assert ds.implausible[["covariate", "value"]].values.tolist() == [["episode_months", 780.0]]
    ca = harmonise(ds).covariate_availability.set_index(["trial", "covariate"])
    assert ca.loc[(first["trial"], "episode_months"), "implausible_set_missing"] == 1
    with pytest.raises(ValidationFailed, match="implausible_value"):
        load_dataset(example_copy, strict=True)
    _p(example_copy, lambda d: _set(d, 0, "episode_months", "1300"))
    with pytest.raises(ValidationFailed, match="outside the range 0–1200"):
        load_dataset(example_copy)


def test_small_trial_is_flagged(example_copy):
    import yaml

    from training.config import load_config

    raw = load_config().raw
    raw["min_trial_size"] = 10 ** 6
    (example_copy / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    ds = load_dataset(example_copy)
    assert ds.small_trials and {w.trial for w in ds.warnings if w.code == "small_trial"} == set(ds.small_trials)


def test_problems_by_row_and_counted_by_code():
    """predict.errors.by_row: the rows a batch leaves out, each with its problems; a problem of the
    input as a whole (no row) raises with every problem; rows_by_code counts rows per code."""
    from predict.errors import Problem, by_row, rows_by_code

    probs = [Problem("out_of_range", "300 is outside", row=4, column="age"),
             Problem("bad_type", "'x' is not a number", row=1, column="bmi"),
             Problem("out_of_range", "-5 is outside", row=4, column="baseline_pain"),
             Problem("out_of_range", "9 is outside", row=2, column="bmi")]
    rows = by_row(probs)
    assert list(rows) == [1, 2, 4] and [p.column for p in rows[4]] == ["age", "baseline_pain"]
    assert rows_by_code(rows) == {"out_of_range": 2, "bad_type": 1}
    assert rows[1][0].brief() == "bmi: 'x' is not a number"
    assert rows[1][0].brief(code=True) == "[bad_type] bmi: 'x' is not a number"
    assert Problem("bad_input", "not a dict", row=0).brief() == "not a dict"
    whole = probs + [Problem("unknown_field", "unknown field 'shoe_size'", column="shoe_size")]
    with pytest.raises(ValidationFailed) as exc:
        by_row(whole)
    assert exc.value.problems == whole
    assert by_row([]) == {} and rows_by_code({}) == {}
