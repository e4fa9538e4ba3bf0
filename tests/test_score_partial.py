"""Per-outcome partial scoring (predict/partial.py, issue 23 i23u): a row whose record allows some of
the requested outcomes gets those, exactly as if scored for them alone; the others' columns are empty
and ``not_predicted`` says why; rows allowing none, or with another problem, are refused as before."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predict import ValidationFailed
from predict.partial import FULL, NONE, NOT_PREDICTED, PARTLY, score_partly

COMP = "usual_care"
NAN = np.nan


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.DataFrame({
        "participant": ["full", "no_pain", "no_function", "neither", "bad_age", "bad_age_no_pain"],
        "baseline_pain": [62, NAN, 70, NAN, 50, NAN],
        "baseline_function": [41, 35, NAN, NAN, 30, 30],
        "age": [47, 60, 33, 52, 300, 300],
        "female": [1, 0, NAN, 1, 0, 1]})


def test_partly_scored_rows_equal_scoring_them_alone(scorer, table):
    part = score_partly(scorer, table, COMP)
    t = part.table
    assert list(t["participant"]) == list(table["participant"])
    assert list(part.status) == [FULL, PARTLY, PARTLY, NONE, NONE, NONE]
    allows = {"full": scorer.outcomes, "no_pain": ["function", "global_recovery"], "no_function": ["pain", "global_recovery"]}
    for i, pid in enumerate(table["participant"][:3]):
        row = table.drop(columns=["participant"]).iloc[[i]]
        alone = scorer.score_table(row, COMP, allows[pid])
        for c in alone.columns:
            if pd.isna(alone[c].iat[0]):  # e.g. an arm interval the learner does not hold: empty in both
                assert pd.isna(t.at[i, c]), (pid, c)
            else:  # the same numbers, bit for bit (and the same verdict words)
                assert t.at[i, c] == alone[c].iat[0], (pid, c)
        not_scored = [c for c in scorer.table_columns() if c not in alone.columns]
        assert t.loc[[i], not_scored].isna().all().all() and (len(not_scored) > 0) == (pid != "full")
    assert list(t[NOT_PREDICTED][:4]) == [
        "", "pain: no baseline_pain (required)", "function: no baseline_function (required)",
        "pain: no baseline_pain (required); function: no baseline_function (required); "
        "global_recovery: no baseline_function or baseline_pain (required)"]
    assert t.loc[3:, scorer.table_columns()].isna().all().all()
    # refused rows: every problem in the validation's words, as before partial scoring
    assert sorted(part.problems) == [3, 4, 5]
    assert {p.code for p in part.problems[3]} == {"required"}
    assert {(p.code, p.column) for p in part.problems[5]} == {("out_of_range", "age"), ("required", "baseline_pain")}
    assert t.at[4, NOT_PREDICTED].startswith("pain: input refused (see error)")
    assert list(part.lacking[:4]) == ["", "no baseline_pain (required)", "no baseline_function (required)",
                                      "no baseline_pain (required); no baseline_function (required); "
                                      "no baseline_function or baseline_pain (required)"]


def test_outcome_restricts_and_explain_only_for_the_explained_task(scorer, table):
    part = score_partly(scorer, table, COMP, ["pain"])
    assert list(part.status[:3]) == [FULL, NONE, FULL] and 1 in part.problems
    assert part.table[NOT_PREDICTED].iat[1] == "pain: no baseline_pain (required)"
    assert list(part.table.columns) == ["participant"] + scorer.table_columns(["pain"]) + ["missing", "warnings",
                                                                                            NOT_PREDICTED]
    ex = score_partly(scorer, table, COMP, explain=True).table
    task = scorer.explained_task(COMP)
    assert task is not None and task.startswith("pain")
    ref = scorer.score_table(table.drop(columns=["participant"]).iloc[[0, 2]], COMP, ["pain", "global_recovery"],
                             explain=True)
    assert scorer.explained_task(COMP, ["pain", "global_recovery"]) == task
    fac = [c for c in ex.columns if c.startswith("factor")]
    assert fac == [c for c in ref.columns if c.startswith("factor")] and fac
    assert list(ex.loc[[0, 2], "factor1_name"]) == list(ref["factor1_name"])
    assert ex.loc[[1, 3, 4, 5], fac].isna().all().all()  # no pain prediction: no factors of another task
    assert ex.columns.get_loc("factor1_name") < ex.columns.get_loc("missing")


def test_request_and_table_problems_still_raise(scorer, table):
    with pytest.raises(ValidationFailed):
        score_partly(scorer, table, "no_such_class")
    with pytest.raises(ValidationFailed):
        score_partly(scorer, table.assign(shoe_size=44), COMP)
    empty = score_partly(scorer, table.head(0), COMP)
    assert len(empty.table) == 0 and not empty.problems
