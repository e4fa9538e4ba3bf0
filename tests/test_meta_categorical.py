"""Categorical covariates in the one-stage models: string levels, the reference level from the
config, one-hot (within-trial centred) columns, per-level interactions with a joint Wald test, and
an error naming the column when a column of levels is not declared categorical."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predict.errors import LbpError
from training.meta.design import ModelSpec, build_design
from training.meta.fit import fit_model

sm = pytest.importorskip("statsmodels.api")
LEVELS = ("low", "mid", "high")
GAMMA = {"low": 0.0, "mid": -4.0, "high": 3.0}  # treatment x level interaction vs the reference "low"
ROOT = Path(__file__).resolve().parents[1]


def _analysis(k=4, n=240, seed=5):
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(k):
        for i in range(n):
            t = i % 2
            lev = LEVELS[rng.integers(0, 3)]
            base = rng.normal(50, 10)
            y = 40 + 3 * j + 0.5 * (base - 50) + 2 * (lev == "high") + (-6 + GAMMA[lev]) * t + rng.normal(0, 6)
            rows.append(dict(trial=f"S{j}", participant=i, treat=t, treatment="active" if t else "control",
                             outcome="y", follow_up="end", value=y, baseline=base, level3=lev,
                             level2=("a" if lev == "low" else "b"), b01=float(lev != "low"), age=rng.normal(50, 9)))
    return pd.DataFrame(rows)


def _spec(modifier, levels=(), adjusted=False, adjust_for=()):
    return ModelSpec("y", "end", "any", ("control",), modifier, adjusted, False, adjust_for=adjust_for,
                     baseline=True, levels=levels)


def test_multilevel_modifier_gives_per_level_rows_and_a_joint_test():
    a = _analysis()
    spec = _spec("level3", (("level3", LEVELS),))
    d = build_design(a, spec, "active")
    assert {"treat:level3[mid]_c", "treat:level3[high]_c"} <= set(d.X.columns)
    assert not any("[low]" in c for c in d.X.columns)  # the reference level has no column
    row = fit_model(d)
    per = {r["level"]: r for r in row["per_level"]}
    assert set(per) == {"mid vs low", "high vs low"} and row["level"] == "joint test (2 df)"
    for lev in ("mid", "high"):
        r = per[f"{lev} vs low"]
        assert abs(r["estimate"] - GAMMA[lev]) < 3 * r["se"]
        assert r["ci_low"] < r["estimate"] < r["ci_high"]
    assert row["p"] < 1e-6 and "chi2" in row["message"]


def test_two_levels_equal_the_0_1_coding():
    a = _analysis()
    r2 = fit_model(build_design(a, _spec("level2", (("level2", ("a", "b")),)), "active"))
    r01 = fit_model(build_design(a, _spec("b01"), "active"))
    assert r2["level"] == "b vs a"
    assert r2["estimate"] == pytest.approx(r01["estimate"], abs=1e-6)
    assert r2["se"] == pytest.approx(r01["se"], rel=1e-5)


def test_single_trial_levels_and_joint_test_match_statsmodels():
    a = _analysis(k=1, n=400)
    spec = _spec("level3", (("level3", LEVELS),))
    row = fit_model(build_design(a, spec, "active", min_trials=1))
    f = sm.OLS.from_formula("value ~ baseline + treat * C(level3, Treatment('low'))", a).fit()
    per = {r["level"]: r for r in row["per_level"]}
    for lev in ("mid", "high"):
        name = f"treat:C(level3, Treatment('low'))[T.{lev}]"
        assert per[f"{lev} vs low"]["estimate"] == pytest.approx(f.params[name], abs=1e-8)
        assert per[f"{lev} vs low"]["se"] == pytest.approx(f.bse[name], rel=1e-8)
    ft = f.f_test([name for name in f.params.index if name.startswith("treat:")])
    assert row["p"] == pytest.approx(float(ft.pvalue), rel=1e-6)


def test_categorical_adjustment_and_undeclared_levels_name_the_column():
    a = _analysis()
    spec = _spec("age", (("level3", LEVELS),), adjusted=True, adjust_for=("level3",))
    d = build_design(a, spec, "active")
    assert {"level3[mid]_c", "treat:level3[high]_c"} <= set(d.X.columns)
    assert math.isfinite(fit_model(d)["estimate"])
    with pytest.raises(LbpError, match="column 'level3' has non-numeric values"):
        build_design(a, _spec("level3"), "active")


def test_replicate_on_a_real_trial_with_a_categorical_modifier(tmp_path):
    out = tmp_path / "rep"
    r = subprocess.run([sys.executable, "-m", "lbp_benefit", "replicate", "--data", str(ROOT / "examples/opt/data"),
                        "--config", str(ROOT / "examples/opt/study.yaml"), "--out", str(out), "--workers", "1",
                        "--modifier", "education", "--follow-up", "visit3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    inter = pd.read_csv(out / "interactions.csv")
    levels = set(inter[inter.variable == "education"].level)
    assert levels == {"joint test (2 df)", "under_8y vs 8_to_12y", "over_12y vs 8_to_12y"}
    table = next((out / "tables").glob("*.md")).read_text()
    assert "joint test (2 df)" in table and "under_8y vs 8_to_12y" in table
    sub = pd.read_csv(out / "subgroup_effects.csv")
    assert set(sub[sub.variable == "education"].level) == {"8_to_12y", "under_8y", "over_12y"}
    assert list((out / "figures").glob("*.png"))
