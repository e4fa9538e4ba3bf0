"""Internal-external cross-validation and the training run."""
import json

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from training.iecv import holdout_trials, run_iecv
from training.learners.effect_model import ConstantEffect, EffectModel
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


class Spy(ConstantEffect):
    """Records the trials it was trained on."""

    seen: list = []

    def fit(self, X, y):
        Spy.seen.append(sorted(set(X["trial"])))
        return super().fit(X, y)


@pytest.fixture(scope="module")
def data():
    X, y, truth = small_trials(n_trials=10, n_per_arm=60, seed=21, noise=8.0, effect_mod=7.0)
    return X.assign(value=y), truth


def test_iecv_leaves_each_trial_out_once_and_never_trains_on_it(data):
    df, _ = data
    Spy.seen = []
    res = run_iecv(df, "value", {"spy": lambda: Spy(n_boot=0)}, "continuous", metrics=False)
    hold = holdout_trials(df, "exercise")
    assert set(res.folds) == set(hold) and len(res.folds) == len(hold)
    all_trials = set(df["trial"])
    for h, trained in zip(hold, Spy.seen):
        assert h not in trained
        assert set(trained) == all_trials - {h}  # exercise-only trials always train
    # each held-out participant predicted exactly once per learner
    assert res.predictions["row"].is_unique
    assert set(res.predictions["trial"]) == set(hold)


def test_iecv_metrics_pooling_and_selection(data):
    df, _ = data
    learners = {"constant": lambda: ConstantEffect(n_boot=0), "effect_model": lambda: EffectModel(n_boot=0)}
    res = run_iecv(df, "value", learners, "continuous", n_boot=8, workers=1)
    assert {"c_for_benefit", "calibration_slope_for_benefit", "autoc", "outcome_r2", "r_loss"} <= set(res.per_trial["metric"])
    pooled = res.pooled.set_index(["learner", "metric"])
    assert pooled.loc[("effect_model", "c_for_benefit"), "estimate"] > 0.5
    assert pooled.loc[("effect_model", "c_for_benefit"), "k"] == len(res.folds)
    # strong modifier: the effect model beats the constant on the held-out benefit loss
    assert res.best_learner() == "effect_model"
    assert res.r_loss.set_index("learner").loc["effect_model", "gain_vs_constant_pct"] > 0
    assert all(w >= 0 for w in res.stack_weights.values())


def test_iecv_parallel_equals_serial(data):
    df, _ = data
    learners = {"constant": lambda: ConstantEffect(n_boot=0)}
    a = run_iecv(df, "value", learners, "continuous", metrics=False, workers=1)
    b = run_iecv(df, "value", learners, "continuous", metrics=False, workers=2)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)


def _analysis_from_small_trials(n_trials=6, seed=31):
    parts = []
    for outcome, kind in (("pain", "continuous"), ("global_recovery", "binary")):
        X, y, _ = small_trials(n_trials=n_trials, n_per_arm=50, seed=seed, noise=8.0, effect_mod=5.0, outcome=kind,
                             missing=0.1)
        parts.append(X.assign(outcome=outcome, follow_up="short", value=y))
    return pd.concat(parts, ignore_index=True)


def test_run_training_writes_run_folder(tmp_path):
    from training.config import load_config
    from tests._runtime import rt
    from training.train import TrainSettings, run_training

    cfg = load_config(None)
    analysis = _analysis_from_small_trials()
    s = TrainSettings(seed=2, learners=("constant", "effect_model"), n_boot_linear=5, n_boot_trees=0,
                      iecv_metrics_boot=5, workers=1, subgroup_boot=5)
    res = run_training(analysis, cfg, tmp_path / "run", s)
    out = tmp_path / "run"
    sg = pd.read_csv(out / "subgroup_performance.csv")
    assert {"task", "subgroup_variable", "subgroup_level", "metric", "estimate", "ci_low", "ci_high", "n"} <= set(sg.columns)
    assert set(sg["task"]) == {"pain__short", "global_recovery__short"}
    for f in ("run.json", "report.md", "tasks.csv", "class_support.csv"):
        assert (out / f).is_file()
    run = json.loads((out / "run.json").read_text())
    assert set(run["selection"]) == {"pain__short", "global_recovery__short"}
    assert (out / "iecv" / "pain__short" / "pooled.csv").is_file()
    report = (out / "report.md").read_text()
    assert report.count("**Verdict:**") == 2  # one sentence per task (training.verdicts)
    assert any(s in report for s in ("The evidence supports individual", "inconclusive", "do not show individual",
                                     "could not be assessed"))
    assert (out / "plots" / "pain__short__iecv_forest.png").is_file()
    exp = json.loads((out / "models" / "pain__short" / "selected.json").read_text())
    p = rt.predict_from_export(exp, analysis[analysis["outcome"] == "pain"].head(5))
    assert p.filter(like="benefit_vs_usual_care").notna().all().all()
    ok = res.tasks["status"].eq("ok")
    assert set(res.tasks.loc[ok, "task"]) == {"pain__short", "global_recovery__short"}
    # The config's other tasks have no rows in this reduced table: listed, with the reason.
    assert res.tasks.loc[~ok, "status"].str.startswith("not formed: no participant has a measurement in window").all()
    te = pd.read_csv(out / "summaries" / "pain__short__trial_effects.csv")
    assert {"trial", "comparator", "raw", "se", "blup", "post_sd", "shrinkage"} <= set(te.columns)
    assert len(te) > 0 and te["shrinkage"].between(0, 1).all()
    assert "participant" not in te.columns


def test_train_command_on_example_data(example_copy, tmp_path):
    import typer
    from typer.testing import CliRunner

    from lbp_benefit.cmd_train import train

    app = typer.Typer()
    app.command()(train)
    app.command("noop")(lambda: None)
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(example_copy), "--out", str(out), "--n-boot", "3",
                                 "--n-boot-trees", "0", "--workers", "1", "--no-iecv", "--learner", "constant",
                                 "--learner", "effect_model"])
    assert r.exit_code == 0, r.output
    assert (out / "run.json").is_file() and (out / "models").is_dir()
    assert "selected" in r.output


def test_one_se_rule_prefers_simpler_learner_unless_clearly_worse():
    import numpy as np

    from training.iecv import select_one_se

    rng = np.random.default_rng(0)
    n, trials = 1200, np.repeat([f"T{i}" for i in range(12)], 100)
    treat = np.tile([0.0, 1.0], n // 2)
    tau = rng.normal(0, 3, n)  # true benefit varies
    y = -(treat * tau) + rng.normal(0, 10, n)  # continuous, higher = worse: benefit = tau
    base = dict(trial=trials, row=np.arange(n), treat=treat, y=y, e=0.5)
    good = pd.DataFrame({**base, "learner": "effect_model", "benefit": tau})
    const = pd.DataFrame({**base, "learner": "constant", "benefit": 0.0})
    noisy = pd.DataFrame({**base, "learner": "t_learner", "benefit": rng.normal(0, 0.3, n)})
    name, table = select_one_se(pd.concat([good, const]), "continuous")
    assert name == "effect_model"  # the constant is clearly worse
    name, table = select_one_se(pd.concat([const, noisy]), "continuous")
    assert name == "constant"  # pure noise never beats the constant by more than 1 SE
    assert set(table.columns) >= {"learner", "r_loss", "diff_vs_best", "se_diff", "within_1se"}
