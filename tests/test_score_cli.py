"""`lbp-benefit score` (--input CSV and --data folder), `train` writing the artifact, and the
default-model cache used by `serve` without --model."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lbp_benefit import default_model as dm
from lbp_benefit.cmd_score import score
from lbp_benefit.cmd_serve import serve
from predict import Scorer, ValidationFailed
from predict.errors import LbpError

COMP = "usual_care"


def _app(cmd) -> typer.Typer:
    app = typer.Typer()
    app.command()(cmd)
    app.command("noop")(lambda: None)  # two commands: the first is addressed by name
    return app


def _run(cmd, name, args):
    return CliRunner().invoke(_app(cmd), [name] + args)


def test_score_input_csv(sm, scorer, tmp_path):
    df = pd.DataFrame({"participant": ["a", "b", "c"], "baseline_pain": [62, 40.5, 80], "baseline_function": [41, 30, 70],
                       "age": [47, None, 60], "female": [1, 0, None]})
    src = tmp_path / "patients.csv"
    df.to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP, "--output", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(out)
    assert list(res.columns[:2]) == ["synthetic", "participant"]  # a synthetic model's file says so on every row
    assert res["synthetic"].dtype == bool and res["synthetic"].all()
    assert set(scorer.output_columns()) <= set(res.columns)
    assert {"pain_short_benefit", "pain_short_benefit_low", "pain_short_benefit_high", "recovery_moderate_ard",
            "recovery_moderate_p_exercise", "recovery_moderate_p_comparator", "function_moderate_comparator"} <= set(res.columns)
    ref = scorer.score_table(df.drop(columns=["participant"]), COMP)
    pd.testing.assert_series_equal(res["pain_short_benefit"], ref["pain_short_benefit"], check_names=False)
    assert (res["pain_short_benefit"] - (res["pain_short_comparator"] - res["pain_short_exercise"])).abs().max() < 1e-9
    # the verdict of every outcome with a smallest worthwhile effect, as in the JSON (session 13, s13g)
    cols = [c for c in scorer.table_columns() if c in res.columns]
    assert cols == scorer.table_columns() and "pain_short_verdict" in cols and "function_moderate_verdict" in cols
    for i, r_ in enumerate(scorer.score(df.drop(columns=["participant"]).to_dict("records"), COMP, explain=False)):
        v = r_["outcomes"]["pain__short"]["verdict"]
        assert res.at[i, "pain_short_verdict"] == v["level"]
        assert res.at[i, "pain_short_verdict_probability"] == v["probability"]
        assert res.at[i, "pain_short_verdict_probability_harm"] == v["probability_harm"]
        assert res.at[i, "pain_short_verdict_confidence"] == v["confidence"]
        assert res.at[i, "pain_short_smallest_worthwhile"] == pytest.approx(v["threshold"], rel=1e-12)


def test_score_input_csv_errors_name_line_and_column(sm, tmp_path):
    df = pd.DataFrame({"baseline_pain": [62, 140], "baseline_function": [41, 30], "age": ["47", "old"]})
    src = tmp_path / "bad.csv"
    df.to_csv(src, index=False)
    # Default: every scoreable row is written; the others get an 'error' column naming the problem.
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert len(res) == 2 and res["error"].iloc[0] == "" and res["pain_short_benefit"].iloc[0] != ""
    assert "baseline_pain" in res["error"].iloc[1] and "age" in res["error"].iloc[1] and res["pain_short_benefit"].iloc[1] == ""
    assert "scored 1 patient(s)" in r.output and "1 row(s) could not be scored" in r.output
    # --strict: the whole input is refused, every problem named with its line.
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o2.csv"), "--strict"])
    assert isinstance(r.exception, ValidationFailed)
    where = {(p.row, p.column) for p in r.exception.errors}
    assert (3, "baseline_pain") in where and (3, "age") in where  # line 3 of the file (header = line 1)
    assert not (tmp_path / "o2.csv").exists()
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", "surgery",
                              "--output", str(tmp_path / "o.csv")])
    assert isinstance(r.exception, LbpError) and "surgery" in str(r.exception)


def test_score_csv_each_kind_of_bad_row_leaves_only_that_row_out(sm, scorer, tmp_path):
    """One good row and one row of each kind of bad value: wrong type, out of range (impossible),
    not 0/1, an impossible baseline, a missing baseline, an infinity. Only the bad rows are left out,
    each named with its reason; the good rows equal scoring them alone; counted by reason. The row
    missing baseline_pain gets the outcomes that do not need it (issue 23, i23u)."""
    src = tmp_path / "p.csv"
    src.write_text("participant,baseline_pain,baseline_function,age,female\n"
                   "good1,62,41,47,1\nwrongtype,62,41,forty,1\nrange,62,41,300,1\nbinary,62,41,47,2\n"
                   "impossible,-5,41,47,1\nmissingbl,,41,47,1\ninfinite,62,41,inf,1\ngood2,50,30,70,0\n", "utf-8")
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert list(res["participant"]) == ["good1", "wrongtype", "range", "binary", "impossible", "missingbl",
                                        "infinite", "good2"]
    assert dict(zip(res["participant"], res["error"])) == {
        "good1": "", "good2": "", "wrongtype": "age: str 'forty' is not a number",
        "range": "age: 300 is outside the plausible range 18–100 years", "binary": "female: 2 is not 0 or 1",
        "impossible": "baseline_pain: -5 is outside the plausible range 0–100",
        "missingbl": "", "infinite": "age: not a finite number"}
    notp = dict(zip(res["participant"], res["not_predicted"]))
    assert notp["missingbl"] == "pain: no baseline_pain (required)" and notp["good1"] == ""
    assert notp["range"] == "pain: input refused (see error); function: input refused (see error); " \
        "global_recovery: input refused (see error)"
    for pid, row in (("good1", {"baseline_pain": 62, "baseline_function": 41, "age": 47, "female": 1}),
                     ("good2", {"baseline_pain": 50, "baseline_function": 30, "age": 70, "female": 0})):
        alone = scorer.score_table(pd.DataFrame([row]), COMP)
        got = res.loc[res["participant"] == pid, scorer.output_columns()].astype(float).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, alone[scorer.output_columns()].astype(float), rtol=1e-12)
    assert "2 fully, 1 partly" in r.output
    assert ("5 row(s) could not be scored (bad_value: 2, out_of_range: 2, bad_type: 1)" in r.output)
    assert "1 row(s) without a prediction for: no baseline_pain (required)" in r.output
    # an unknown column is about the whole file (every row has it): refused, named
    src.write_text("baseline_pain,baseline_function,shoe_size\n62,41,44\n", "utf-8")
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o3.csv")])
    assert isinstance(r.exception, ValidationFailed) and r.exception.errors[0].code == "unknown_field"


def test_score_one_outcome_needs_only_its_baseline(sm, tmp_path):
    """Issue 18, item 10: `score --outcome pain` does not need baseline_function (it is imputed like
    any missing input and listed as missing); scoring every outcome still needs it."""
    df = pd.DataFrame({"baseline_pain": [62, 55], "age": [47, 60]})
    src = tmp_path / "pain_only.csv"
    df.to_csv(src, index=False)
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o.csv"), "--outcome", "pain", "--strict"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert res["pain_short_benefit"].astype(float).notna().all() and (res["error"] == "").all()
    assert res["missing"].str.contains("baseline_function").all()
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o2.csv"), "--strict"])
    assert isinstance(r.exception, ValidationFailed) and {p.column for p in r.exception.errors} == {"baseline_function"}
    # without --strict the rows get the outcomes their record allows; not_predicted names the others
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP,
                              "--output", str(tmp_path / "o3.csv")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "0 fully, 2 partly" in r.output and "0 row(s) could not be scored" in r.output
    res = pd.read_csv(tmp_path / "o3.csv", keep_default_na=False)
    assert (res["not_predicted"] == "function: no baseline_function (required)").all() and (res["error"] == "").all()
    assert (res["function_moderate_benefit"] == "").all() and (res["pain_short_benefit"] != "").all()


def test_score_data_folder(sm, tmp_path):
    out = tmp_path / "scores.csv"
    r = _run(score, "score", ["--model", str(sm.artifact), "--data", str(sm.data), "--comparator", COMP,
                              "--output", str(out), "--drop-incomplete", "--explain", "--outcome", "pain"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(out, dtype={"participant": str})
    assert list(res.columns[:3]) == ["synthetic", "trial", "participant"] and res["synthetic"].all()
    assert "factor1_name" in res.columns and "pain_short_benefit" in res.columns
    assert not any(c.startswith("global_recovery_") for c in res.columns)
    assert len(res) > 100


def test_score_data_folder_recovery_needs_one_baseline(sm, tmp_path):
    """--drop-incomplete for recovery (combine: any) leaves out only participants with neither baseline;
    those with one are scored, the other listed as missing; scored + left out = participants."""
    from training.dataset import load_dataset
    from training.harmonise import harmonise

    b = harmonise(load_dataset(sm.data)).baselines
    has = b[["baseline_pain", "baseline_function"]].notna()
    out = tmp_path / "rec.csv"
    r = _run(score, "score", ["--model", str(sm.artifact), "--data", str(sm.data), "--comparator", COMP,
                              "--output", str(out), "--drop-incomplete", "--outcome", "global_recovery"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(out, dtype={"participant": str}, keep_default_na=False)
    assert len(res) == int(has.any(axis=1).sum()) and (res["error"] == "").all()
    n_out = int((~has.any(axis=1)).sum())
    assert (f"left out {n_out} participant(s)" in r.output) == (n_out > 0)
    one = int((has.any(axis=1) & ~has.all(axis=1)).sum())
    assert one > 0  # the simulated design has participants with one baseline only
    assert int(res["missing"].str.contains("baseline_").sum()) == one
    assert f"{one} of them scored with a baseline imputed" in r.output
    ard = [c for c in res.columns if c.endswith("_ard")]
    assert ard and res[ard[0]].astype(float).notna().all()


def test_default_model_cache(sm, tmp_path, monkeypatch):
    """With LBP_HOME set, the default model lives under it; a cached artifact is reused (no training)."""
    monkeypatch.setenv("LBP_HOME", str(tmp_path / "home"))
    assert dm.default_model_path() == tmp_path / "home" / "default-model" / dm.__version__ / "artifact"
    shutil.copytree(sm.artifact, dm.default_model_path())
    (dm.default_model_dir() / dm.REVISION_FILE).write_text(dm.DEFAULT_MODEL_REVISION, "utf-8")
    monkeypatch.setattr(dm, "_train", lambda *a, **k: pytest.fail("must not train when cached"))
    assert dm.ensure_default_model() == dm.default_model_path()
    text = dm.example_text(Scorer.load(dm.default_model_path()))
    assert "benefit" in text and "Example patient" in text
    r = Scorer.load(dm.default_model_path()).score([{k: v for k, v in dm.example_patient().items()}], dm.EXAMPLE_COMPARATOR)
    for task, o in r[0]["outcomes"].items():  # the verdict's own words (predict/verdict.py), not the point rule
        if o.get("verdict"):
            line = next(ln for ln in text.splitlines() if ln.startswith(f"  {task}: "))
            assert o["verdict"]["text"] in line and "clears the smallest" not in line
            assert "model-based probability of a worthwhile benefit" in line  # predict.verdict.probability_words
        if o["available"]:  # every arm's expected outcome with its CI (or said to have none), the difference's PI
            line = next(ln for ln in text.splitlines() if ln.startswith(f"  {task}: "))
            assert line.count("95% CI") + line.count("no interval available") == 3 and "new setting" in line
    from predict.results import FACTORS_UNCERTAINTY
    assert any(ln.startswith(f"  top factors ({FACTORS_UNCERTAINTY}): ") for ln in text.splitlines())
    r = _run(serve, "serve", ["--check-only"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "loaded, verified and warmed up" in r.output


def test_default_model_trains_once_when_missing(tmp_path, monkeypatch, sm):
    monkeypatch.setenv("LBP_HOME", str(tmp_path / "home"))
    calls = []

    def fake_train(d, progress, say):
        calls.append(d)
        shutil.copytree(sm.artifact, d / "artifact")

    monkeypatch.setattr(dm, "_train", fake_train)
    p1 = dm.ensure_default_model()
    p2 = dm.ensure_default_model()
    assert p1 == p2 and len(calls) == 1 and (p1 / "manifest.json").is_file()


def test_train_writes_the_artifact(sm, tmp_path):
    from lbp_benefit.cmd_train import train

    out = tmp_path / "run"
    r = _run(train, "train", ["--data", str(sm.data), "--out", str(out), "--learner", "constant", "--no-iecv",
                              "--n-boot", "3", "--workers", "1"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    s = Scorer.load(out / "artifact")
    assert not s.synthetic  # user data (a folder), as far as the package knows
    assert s.score([{"baseline_pain": 50.0, "baseline_function": 50.0}], s.comparators[0])


def test_score_counts_rows_scored_with_unusual_inputs(sm, scorer, tmp_path):
    """Values the schema accepts but few training participants had are scored and counted by kind."""
    from predict.clinical_warnings import count_warnings
    from tests.test_clinical_warnings import _patients

    df = pd.DataFrame(_patients(scorer, 12, seed=5))
    src, out = tmp_path / "patients.csv", tmp_path / "scores.csv"
    df.to_csv(src, index=False)
    r = _run(score, "score", ["--model", str(sm.artifact), "--input", str(src), "--comparator", COMP, "--output", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_csv(out, keep_default_na=False)
    want = count_warnings(t.split(" | ") for t in res["warnings"])
    assert want["count"] > 0 and want["by_kind"]["outside_training_range"] > 0
    from predict.clinical_warnings import warned_text

    assert warned_text(want, "'warnings'") in r.output  # inputs and predictions (outside_scale) named apart
