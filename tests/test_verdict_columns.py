"""The verdict and the per-arm intervals as table columns (score CSV, Spark, ``Scorer.score_table``;
session 13 s13g): the array rule of :func:`predict.verdict.columns` equals the per-patient
:func:`predict.verdict.verdict` (the reference) case by case, the scorer's table carries per task the
JSON ``verdict`` and each arm's 95% CI of the same patient, and a not-predicted outcome's columns
are empty."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predict import verdict as V
from predict.partial import NOT_PREDICTED, score_partly

COMP = "usual_care"


def _reference(est, ci, pi, th, limit, rare):
    """The scalar verdict as the columns' values (None where there is none)."""
    nan = lambda x: None if x is None or x != x else float(x)  # noqa: E731
    v = V.verdict(nan(est), [nan(ci[0]), nan(ci[1])], [nan(pi[0]), nan(pi[1])], nan(th), limit, rare)
    if v is None:
        return [None] * len(V.COLUMNS)
    return [v[key] for _, key in V.COLUMNS]


def test_array_rule_equals_the_per_patient_verdict():
    rng = np.random.default_rng(13)
    n = 4000
    for limit in (100.0, 1.0):
        est = rng.uniform(-0.6, 0.6, n) * limit
        half_pi = rng.choice([0.0, 0.01, 0.05, 0.1, 0.3, 0.6, 1.5], n) * limit * rng.uniform(0.5, 1.0, n)
        half_ci = half_pi * rng.uniform(0.3, 1.0, n)
        ci = (np.clip(est - half_ci, -limit, limit), np.clip(est + half_ci, -limit, limit))
        pi = (np.clip(est - half_pi, -limit, limit), np.clip(est + half_pi, -limit, limit))
        th = rng.choice([0.0, 0.05, 0.124, 0.2], n) * limit
        est[::97] = np.nan  # comparator without a prediction
        th[5::101] = np.nan  # no threshold
        pi[0][7::89] = np.nan  # an unknown bound
        rare = rng.random(n) < 0.2
        cols = V.columns(est, ci, pi, th, limit, rare)
        assert list(cols) == [s for s, _ in V.COLUMNS]
        clipped = 0
        for i in range(n):
            ref = _reference(est[i], (ci[0][i], ci[1][i]), (pi[0][i], pi[1][i]), th[i], limit, bool(rare[i]))
            got = [cols[s][i] for s, _ in V.COLUMNS]
            for (s, _), g, r in zip(V.COLUMNS, got, ref):
                if r is None:
                    assert g is None or g != g, (i, s, g)
                elif isinstance(r, str):
                    assert g == r, (i, s, g, r)
                else:
                    assert g == pytest.approx(r, abs=1e-12), (i, s, g, r)
            clipped += bool(pi[0][i] <= -limit and pi[1][i] >= limit and ref[0] is not None)
        assert clipped > 10  # intervals spanning the whole scale are among the cases (a verdict, not none)
        levels = set(cols["verdict"]) - {None}
        assert levels == {"very_likely", "likely", "possibly", "unlikely", "uncertain"}


def test_column_names_have_one_owner_and_carry_the_json_keys(scorer):
    assert V.column_names("pain_short") == ["pain_short_verdict", "pain_short_verdict_probability",
                                            "pain_short_verdict_probability_harm", "pain_short_verdict_confidence",
                                            "pain_short_smallest_worthwhile"]
    r = scorer.score([scorer.example_patient()], COMP)[0]
    v = r["outcomes"]["pain__short"]["verdict"]
    assert {key for _, key in V.COLUMNS} <= set(v)
    cols = scorer.table_columns()
    assert cols[:len(scorer.output_columns(["pain"]))] == scorer.output_columns(["pain"])
    # a binary outcome without a smallest worthwhile effect has no verdict (JSON null) and no columns
    assert not any(c.startswith("recovery_") and "verdict" in c for c in cols)
    assert r["outcomes"]["global_recovery__moderate"]["verdict"] is None


@pytest.fixture(scope="module")
def patients(scorer) -> pd.DataFrame:
    ex = scorer.example_patient()
    rows = []
    for age in (22, 47, 71, 95):
        for bmi in (19, 27, 38, 55):
            rows.append({**ex, "age": float(age), "bmi": float(bmi)})
    return pd.DataFrame(rows)


def test_table_verdicts_are_the_json_verdicts_of_the_same_patients(scorer, patients):
    seen, low = set(), 0
    for comp in scorer.comparators:
        t = scorer.score_table(patients, comp)
        assert [c for c in t.columns if c in scorer.table_columns()] == scorer.table_columns()
        res = scorer.score(patients.to_dict("records"), comp, explain=False)
        for i, r in enumerate(res):
            for task, o in r["outcomes"].items():
                names = [c for c in V.column_names(_prefix(task)) if c in t.columns]
                v = o["verdict"]
                if not names:
                    assert v is None
                    continue
                got = [t.at[i, c] for c in names]
                if v is None:
                    assert all(pd.isna(g) for g in got)
                    continue
                ref = [v[key] for _, key in V.COLUMNS]
                assert got[0] == ref[0] and got[3] == ref[3]
                assert got[1] == ref[1] and got[4] == ref[4]
                assert (pd.isna(got[2]) and ref[2] is None) or got[2] == ref[2]
                seen.add(ref[0])
                low += ref[3] == "low"
    assert {"uncertain", "unlikely", "possibly"} <= seen and low > 0


def _prefix(task: str) -> str:
    outcome, follow_up = task.split("__")
    return f"{'recovery' if outcome == 'global_recovery' else outcome}_{follow_up}"


def test_a_not_predicted_outcome_has_empty_verdict_columns(scorer):
    table = pd.DataFrame({"participant": ["full", "no_pain"], "baseline_pain": [62, np.nan],
                          "baseline_function": [41, 35], "age": [47, 60]})
    t = score_partly(scorer, table, COMP).table
    pain = V.column_names("pain_short")
    func = V.column_names("function_moderate")
    assert t.loc[1, pain].isna().all() and t.at[1, NOT_PREDICTED].startswith("pain: no baseline_pain")
    assert t.loc[0, pain].notna().all() and t.loc[[0, 1], func].notna().all().all()
    assert t.at[1, "function_moderate_verdict"] in {k for _, k, _ in V.LEVELS} | {V.UNCERTAIN}
    alone = scorer.score_table(table.drop(columns=["participant"]).iloc[[1]], COMP, ["function", "global_recovery"])
    for c in func:
        assert t.at[1, c] == alone[c].iat[0]


def test_table_arm_intervals_are_the_json_arm_intervals(scorer, patients):
    from predict.outcome_text import arm_interval_names

    assert arm_interval_names("pain_short", False, "exercise") == [
        "pain_short_exercise_low", "pain_short_exercise_high", "pain_short_comparator_low", "pain_short_comparator_high"]
    assert arm_interval_names("recovery_short", True, "exercise")[0] == "recovery_short_p_exercise_low"
    shown = 0
    for comp in ("usual_care", "no_treatment", "education"):
        t = scorer.score_table(patients, comp)
        res = scorer.score(patients.to_dict("records"), comp, explain=False)
        for i, r in enumerate(res):
            for task, o in r["outcomes"].items():
                p = _prefix(task)
                binary = task.startswith("global_recovery")
                names = arm_interval_names(p, binary, "exercise")
                assert set(names) <= set(t.columns)
                for arm, (lo, hi) in (("intervention", names[:2]), ("comparator", names[2:])):
                    iv = o[arm]["interval"]
                    if iv is None or iv[0] is None:
                        assert pd.isna(t.at[i, lo]) and pd.isna(t.at[i, hi])
                    else:
                        assert (t.at[i, lo], t.at[i, hi]) == (iv[0], iv[1])
                        assert iv[0] <= o[arm]["expected"] <= iv[1]
                        shown += 1
    assert shown > 100
