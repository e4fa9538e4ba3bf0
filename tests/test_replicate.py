"""`lbp-benefit replicate` end to end on a small simulated dataset: files, long-form columns, tables, plots."""
import subprocess
import sys

import pandas as pd
import pytest

from training.example_data import example_data_dir

LONG = ["outcome", "follow_up", "comparison", "variable", "level", "model", "studies", "participants",
        "estimate", "ci_low", "ci_high", "p", "tau", "status"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from training.simulate import simulate_dataset

    root = tmp_path_factory.mktemp("rep")
    simulate_dataset("hayden2020", seed=3).write(root / "data")
    out = root / "out"
    r = subprocess.run([sys.executable, "-m", "lbp_benefit", "replicate", "--data", str(root / "data"), "--out", str(out),
                        "--follow-up", "short", "--comparison", "any_non_exercise", "--modifier", "bmi",
                        "--modifier", "heavy_physical_work"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out, r


def test_long_form_outputs(report):
    out, _ = report
    inter = pd.read_csv(out / "interactions.csv")
    overall = pd.read_csv(out / "overall.csv")
    assert list(inter.columns[:len(LONG)]) == LONG and list(overall.columns[:len(LONG)]) == LONG
    assert set(inter.variable) == {"bmi", "heavy_physical_work"}
    assert set(inter.model) == {"unadjusted", "adjusted"}
    assert set(inter.outcome) == {"pain", "function", "global_recovery"}
    assert set(inter.status) <= {"ok", "singular", "not converged", "not estimable", "failed"}
    ok = inter[inter.status.isin(["ok", "singular"])]
    assert (ok.ci_low < ok.estimate).all() and (ok.estimate < ok.ci_high).all() and ok.p.between(0, 1).all()
    assert len(overall) == 3 and (overall.pi_low <= overall.ci_low).all()


def test_analysis_data_for_refitting_elsewhere(report):
    out, _ = report
    a = pd.read_csv(out / "analysis_data.csv")
    for col in ["trial", "participant", "outcome", "follow_up", "in_any_non_exercise", "treat", "value", "baseline",
                "recovered", "age", "bmi"]:
        assert col in a.columns
    rec = a[a.outcome == "global_recovery"]
    assert (rec.value == rec.recovered).all()


def test_tables_plots_and_report(report):
    out, r = report
    for stem in ("table4_pain", "table5_function", "table6_global_recovery"):
        for ext in ("csv", "md", "html"):
            assert (out / "tables" / f"{stem}.{ext}").stat().st_size > 100
    t = pd.read_csv(out / "tables" / "table6_global_recovery.csv")
    assert "unadjusted_or_95ci" in t.columns and "adjusted_p" in t.columns
    for i, o in enumerate(["pain", "function", "global_recovery"]):
        png = out / "figures" / f"figure{3 + i}_{o}.png"
        assert png.stat().st_size > 5000 and (out / "figures" / f"figure{3 + i}_{o}.svg").is_file()
    sub = pd.read_csv(out / "subgroup_effects.csv")
    assert set(sub[sub.variable == "bmi"].level) <= {"< 18.5", "18.5 to < 25", "25 to < 30", ">= 30"}
    assert "Overall effects" in r.stdout and "SYNTHETIC" not in r.stderr  # user data: no synthetic note


def test_unknown_modifier_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lbp_benefit", "replicate", "--data", str(example_data_dir()),
                        "--out", str(tmp_path / "o"), "--modifier", "shoe_size"], capture_output=True, text=True)
    assert r.returncode == 2 and "shoe_size" in r.stderr and "Traceback" not in r.stderr
