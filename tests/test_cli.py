"""The console command: help, version, clear one-line errors, exit codes, outputs."""
import subprocess
import sys

import pandas as pd

from predict import __version__
from tests.conftest import read, write


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lbp_benefit", *args], capture_output=True, text=True, cwd=cwd)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "check" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lbp-benefit {__version__}"


def test_check_writes_attrition_and_analysis(example_copy, tmp_path):
    out = tmp_path / "out"
    r = run("check", "--data", str(example_copy), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "Attrition" in r.stdout and "ALL" in r.stdout
    att = pd.read_csv(out / "attrition.csv")
    assert set(att.outcome) == {"pain", "function", "global_recovery"}
    assert (out / "analysis_data.csv").is_file()


def test_invalid_data_exits_nonzero_with_the_culprit_and_no_traceback(example_copy):
    p = read(example_copy, "participants")
    p.loc[0, "treatment"] = "yoga"
    write(example_copy, "participants", p)
    r = run("check", "--data", str(example_copy))
    assert r.returncode == 2
    assert "yoga" in r.stderr and "participant '1'" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_folder_is_one_clear_line_and_debug_shows_traceback(tmp_path):
    r = run("check", "--data", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not found" in r.stderr
    r = run("--debug", "check", "--data", str(tmp_path / "nope"))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_drop_invalid_writes_the_excluded_list(example_copy, tmp_path):
    p = read(example_copy, "participants")
    p.loc[0, "age"] = "old"
    write(example_copy, "participants", p)
    out = tmp_path / "o"
    r = run("check", "--data", str(example_copy), "--drop-invalid", "--out", str(out))
    assert r.returncode == 0, r.stderr
    ex = pd.read_csv(out / "excluded_participants.csv", dtype=str)
    assert ex.to_dict("records") == [{"trial": "T01", "participant": "1", "reason": "not_a_number"}]


def test_check_words_its_counts_in_agreement(example_copy):
    """s12r: ``check`` printed "1 trials"; counts are worded with the noun agreeing (lbp_benefit.wording)."""
    from lbp_benefit.wording import counted

    assert (counted(1, "trial"), counted(2, "trial"), counted(0, "outcome row")) == ("1 trial", "2 trials", "0 outcome rows")
    for f in ("participants", "outcomes"):
        d = read(example_copy, f)
        write(example_copy, f, d[d.trial == "T02"])
    r = run("check", "--data", str(example_copy))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert ": 1 trial, " in said and "1 trials" not in said, said[:300]
