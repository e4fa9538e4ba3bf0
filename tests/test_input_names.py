"""A column or field the model does not take (predict/input_names.py, the one owner of the rule):
named with the closest input name, never silently ignored, and carried into the output only when
asked (``lbp-benefit score --keep COL``; Spark ``keep=``, tested in test_spark.py); the scorer, the
CLI and the HTTP API use the same words."""
from __future__ import annotations

import pandas as pd
import pytest

from lbp_benefit.cmd_score import score
from predict import ValidationFailed
from predict.input_names import closest_input, column_problems, unknown_message
from tests.test_score_cli import COMP, _run

INPUTS = ["baseline_pain", "baseline_function", "age", "female", "bmi", "fear_avoidance", "episode_months",
          "leg_pain", "employed"]


@pytest.mark.parametrize("given, meant", [
    ("BMI", "bmi"), ("Age", "age"), ("baseline pain", "baseline_pain"), ("Baseline-Function", "baseline_function"),
    ("fear_avoidence", "fear_avoidance"), ("episode_month", "episode_months"), ("legpain", "leg_pain"),
    ("shoe_size", None), ("MRN", None), ("note", None), ("", None),
])
def test_closest_input(given, meant):
    assert closest_input(given, INPUTS) == meant


def test_words_of_an_unknown_name():
    assert unknown_message("BMI", INPUTS) == ("unknown field 'BMI': the model has no input of this name; "
                                              "did you mean 'bmi'?")
    m = unknown_message("MRN", INPUTS, "column", keep="--keep {name}")
    assert m == ("unknown column 'MRN': the model has no input of this name. To carry it into the output "
                 "unchanged: --keep MRN")
    assert "row index" in unknown_message("Unnamed: 0", INPUTS, "column")


def test_column_problems_lists_every_problem_at_once():
    probs = column_problems(["participant", "MRN", "BMI", "age", "age", "note"], INPUTS, keep=["note", "mrn2"],
                            keep_hint="--keep {name}")
    assert [(p.code, p.column) for p in probs] == [("duplicate_column", "age"), ("unknown_field", "MRN"),
                                                   ("unknown_field", "BMI"), ("unknown_keep", "mrn2")]
    assert all(p.scope == "file" for p in probs)
    assert "did you mean 'bmi'" in probs[2].message and "--keep MRN" in probs[1].message
    assert column_problems(["x", "age"], INPUTS, keep=["x"], outputs=["x"])[0].code == "keep_clash"
    assert column_problems(["trial", "participant", "age", "MRN"], INPUTS, keep=["MRN"]) == []


def test_scorer_names_the_closest_input(scorer):
    p = {**scorer.example_patient(), "BMI": 27.0}
    with pytest.raises(ValidationFailed) as exc:
        scorer.score(p, COMP)
    (prob,) = exc.value.errors
    assert prob.code == "unknown_field" and prob.column == "BMI" and "did you mean 'bmi'?" in prob.message
    with pytest.raises(ValidationFailed) as exc:
        scorer.score_table(pd.DataFrame([{**scorer.example_patient(), "Fear Avoidance": 50}]), COMP)
    assert "did you mean 'fear_avoidance'?" in exc.value.errors[0].message


def _csv(tmp_path, text):
    src = tmp_path / "export.csv"
    src.write_text(text, "utf-8")
    return src


def test_cli_unknown_columns_refused_together_with_suggestion(sm, tmp_path):
    """A misspelt input and an identifier column: nothing written, both named at once (exit 2 via
    lbp_benefit.cli), the misspelt one with the input it likely means, the other with --keep."""
    src = _csv(tmp_path, "participant,MRN,baseline_pain,baseline_function,BMI,age\n"
                         "a,00123,62,41,31,47\nb,00456,50,30,24,60\n")
    out = tmp_path / "o.csv"
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(out)])
    assert isinstance(r.exception, ValidationFailed) and not out.exists()
    probs = {p.column: p for p in r.exception.errors}
    assert set(probs) == {"MRN", "BMI"}
    # a likely misspelt input is to be renamed, not kept (keeping it would leave bmi missing, imputed)
    assert probs["BMI"].message.endswith("did you mean 'bmi'? Rename it to 'bmi' to use it.")
    assert "--keep" not in probs["BMI"].message
    assert "--keep MRN" in probs["MRN"].message and probs["MRN"].file == "export.csv"
    assert "export.csv" in str(r.exception)
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(out), "--keep", "MRN", "--keep", "mrn"])
    assert isinstance(r.exception, ValidationFailed)
    assert {(p.code, p.column) for p in r.exception.errors} == {("unknown_field", "BMI"), ("unknown_keep", "mrn")}


def test_cli_keep_carries_identifiers_unchanged(sm, scorer, tmp_path):
    """--keep MRN --keep note: carried after the ids as written (leading zeros, empty cells), not
    scored; the scores equal those of the file without them. --keep age: age is scored and carried."""
    rows = "a,00123,62,41,31,47,first visit\nb,00456,50,30,24,60,\n"
    src = _csv(tmp_path, "participant,MRN,baseline_pain,baseline_function,bmi,age,note\n" + rows)
    out = tmp_path / "o.csv"
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(out), "--keep", "MRN", "--keep", "note", "--keep", "age"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(res.columns[:5]) == ["synthetic", "participant", "MRN", "note", "age"]
    assert list(res["MRN"]) == ["00123", "00456"] and list(res["note"]) == ["first visit", ""]
    assert list(res["age"]) == ["47", "60"]
    plain = pd.DataFrame({"baseline_pain": [62, 50], "baseline_function": [41, 30], "bmi": [31, 24], "age": [47, 60]})
    ref = scorer.score_table(plain, COMP)
    got = res[scorer.output_columns()].astype(float)
    pd.testing.assert_frame_equal(got, ref[scorer.output_columns()].astype(float), rtol=1e-12)
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(out), "--keep", "MRN", "--keep", "error"])
    assert isinstance(r.exception, ValidationFailed)
    assert {p.code for p in r.exception.errors} >= {"unknown_field", "unknown_keep"}  # note unknown, error absent


def test_http_unknown_field_same_words():
    from tests.test_serving_app import bad_fields, body, client

    with client() as c:
        r = c.post("/v1/score", json=body(BMI=31))
        assert bad_fields(r) == {"patient.BMI"}
        assert r.json()["detail"][0]["msg"] == unknown_message("BMI", ["bmi"])
        assert r.json()["detail"][0]["msg"].endswith("did you mean 'bmi'?")
        r = c.post("/v1/score/batch", json={"patients": [{"baseline_pain": 62, "baseline_function": 41},
                                                         {"baseline_pain": 62, "baseline_function": 41, "Age": 50}],
                                            "comparator": "usual_care"})
        assert r.status_code == 200, r.text
        item = r.json()["not_scored"]["detail"][0]
        assert item["field"] == "patients[1].Age" and item["msg"].endswith("did you mean 'age'?")
        r = c.post("/v1/score", json={**body(), "comparater": "usual_care"})  # a request key: no patient field
        assert "did you mean" not in {d["field"]: d for d in r.json()["detail"]}["comparater"]["msg"]
