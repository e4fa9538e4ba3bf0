"""Few trials and one trial: the common-effect (stratified) estimate, the two-stage
Hartung–Knapp–Sidik–Jonkman interval and the single-trial analysis, each checked against an
independent computation (statsmodels OLS / Logit / combine_effects, and the HKSJ formula by hand)."""
import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from training.meta.design import ModelSpec, build_design
from training.meta.few_trials import HKSJ_LABEL, SINGLE_LINEAR, common_effect, hksj, paule_mandel, two_stage
from training.meta.fit import fit_model

sm = pytest.importorskip("statsmodels.api")
from statsmodels.stats.meta_analysis import combine_effects  # noqa: E402


def _analysis(k=4, n=40, seed=3, binary=False):
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(k):
        b0 = rng.normal(50, 5)
        eff = -6 + rng.normal(0, 2)
        for i in range(n):
            t = i % 2
            base = rng.normal(60, 12)
            y = b0 + 0.5 * (base - 60) + eff * t + rng.normal(0, 10)
            if binary:
                y = float(rng.random() < 1 / (1 + math.exp(-(-0.2 + 0.03 * (base - 60) + 0.8 * t))))
            rows.append(dict(trial=f"C{j + 1}", participant=i, treat=t, treatment="active" if t else "control",
                             outcome="y", follow_up="end", value=y, baseline=base, age=rng.normal(50, 10)))
    return pd.DataFrame(rows)


def _spec(binary=False):
    return ModelSpec("y", "end", "any", ("control",), None, False, binary, adjust_for=(), baseline=True)


def test_hksj_matches_statsmodels_and_the_formula():
    y = np.array([-3.1, -1.2, -5.0, 0.4, -2.2])
    v = np.array([1.1, 0.8, 2.5, 1.6, 0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = combine_effects(y, v, method_re="iterated", use_t=True)  # Paule–Mandel
    row = ref.summary_frame().loc["random effect wls"]  # the HKSJ (weighted least squares) variance
    out = hksj(y, v)
    assert paule_mandel(y, v) == pytest.approx(ref.tau2, rel=1e-6)
    assert out["estimate"] == pytest.approx(row["eff"], rel=1e-7)
    assert out["ci_low"] == pytest.approx(row["ci_low"], rel=1e-6)
    assert out["ci_high"] == pytest.approx(row["ci_upp"], rel=1e-6)
    # by hand, with tau² = 0 (homogeneous effects: q < 1, an interval narrower than the z one)
    y0 = np.array([-2.0, -2.1, -1.9, -2.05])
    v0 = np.array([0.5, 0.4, 0.6, 0.5])
    w = 1 / v0
    mu = (w * y0).sum() / w.sum()
    q = (w * (y0 - mu) ** 2).sum() / 3
    half = stats.t.ppf(0.975, 3) * math.sqrt(q / w.sum())
    o = hksj(y0, v0)
    assert o["tau"] == 0.0 and o["estimate"] == pytest.approx(mu) and o["ci_high"] == pytest.approx(mu + half)


def test_common_effect_and_two_stage_match_independent_fits():
    a = _analysis()
    d = build_design(a, _spec(), "active")
    ce = common_effect(d, "treat")
    # statsmodels: trial-specific intercepts and baseline slopes (baseline centred within trial)
    df = a.assign(bc=a.baseline - a.groupby("trial").baseline.transform("mean"))
    ols = sm.OLS.from_formula("value ~ 0 + C(trial) + C(trial):bc + treat", df).fit()
    assert ce["estimate"] == pytest.approx(ols.params["treat"], abs=1e-9)
    assert ce["ci_low"] == pytest.approx(ols.conf_int().loc["treat", 0], abs=1e-8)
    assert ce["inference"] == f"t({int(ols.df_resid)})"
    y, v = [], []
    for _, g in df.groupby("trial"):
        f = sm.OLS.from_formula("value ~ treat + bc", g).fit()
        y.append(f.params["treat"])
        v.append(f.bse["treat"] ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = combine_effects(np.array(y), np.array(v), method_re="iterated", use_t=True).summary_frame()
    ts = two_stage(d)
    assert ts["label"] == HKSJ_LABEL and ts["k"] == 4
    assert ts["estimate"] == pytest.approx(ref.loc["random effect wls", "eff"], abs=1e-6)
    assert ts["ci_high"] == pytest.approx(ref.loc["random effect wls", "ci_upp"], abs=1e-6)
    row = fit_model(d)
    assert row["ce_estimate"] == ce["estimate"] and row["hksj_ci_low"] == ts["ci_low"]
    assert row["ce_label"].startswith("common effect (stratified)") and row["analysis"].startswith("one-stage")


def test_binary_common_effect_matches_logistic_regression():
    a = _analysis(binary=True, n=80)
    d = build_design(a, _spec(binary=True), "active")
    ce = common_effect(d, "treat")
    df = a.assign(bc=a.baseline - a.groupby("trial").baseline.transform("mean"))
    f = sm.Logit.from_formula("value ~ 0 + C(trial) + C(trial):bc + treat", df).fit(disp=0)
    assert ce["estimate"] == pytest.approx(f.params["treat"], abs=1e-6)
    assert ce["se"] == pytest.approx(f.bse["treat"], rel=1e-5)
    assert ce["inference"] == "z"


def test_binary_common_effect_leaves_out_trials_without_outcome_variation():
    """Many small centres (the CGD trial: 13 hospitals, two with no infection at all): a centre whose
    participants all have the same outcome made the stratified common effect 'not estimable'
    (its intercept diverges). Its profile likelihood is flat in the effect, so the maximum likelihood
    equals the fit without it: the estimate must match statsmodels Logit on the other centres."""
    a = _analysis(k=5, binary=True, n=40, seed=11)
    a.loc[a.trial == "C2", "value"] = 1.0
    a.loc[a.trial == "C4", "value"] = 0.0
    d = build_design(a, _spec(binary=True), "active")
    ce = common_effect(d, "treat")
    kept = a[~a.trial.isin(["C2", "C4"])]
    df = kept.assign(bc=kept.baseline - kept.groupby("trial").baseline.transform("mean"))
    f = sm.Logit.from_formula("value ~ 0 + C(trial) + C(trial):bc + treat", df).fit(disp=0)
    assert ce["estimate"] == pytest.approx(f.params["treat"], abs=1e-6)
    assert ce["se"] == pytest.approx(f.bse["treat"], rel=1e-5)
    assert "2 trial(s) where every participant had the same outcome left out" in ce["message"]
    assert "C2, C4" in ce["message"]


def test_single_trial_is_an_ancova_labelled_as_such():
    a = _analysis(k=1, n=60)
    d = build_design(a, _spec(), "active", min_trials=1)
    row = fit_model(d)
    f = sm.OLS.from_formula("value ~ treat + baseline", a).fit()
    assert row["studies"] == 1 and row["participants"] == 60
    assert row["analysis"] == SINGLE_LINEAR and row["status"] == "ok"
    assert row["estimate"] == pytest.approx(f.params["treat"], abs=1e-9)
    assert row["ci_high"] == pytest.approx(f.conf_int().loc["treat", 1], abs=1e-8)
    assert math.isnan(row["tau"])
    with pytest.raises(Exception, match="fewer than 2 trial"):
        build_design(a, _spec(), "active")


def test_replicate_on_one_trial_reports_the_single_trial_analysis(tmp_path):
    from training.example_data import example_data_dir

    src = example_data_dir()
    data = tmp_path / "one"
    data.mkdir()
    (data / "study.yaml").write_text((src / "study.yaml").read_text())
    for f in ("participants", "outcomes"):
        d = pd.read_csv(src / f"{f}.csv")
        d[d.trial == "T02"].to_csv(data / f"{f}.csv", index=False)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "lbp_benefit", "replicate", "--data", str(data), "--out", str(out),
                        "--workers", "1", "--no-forest", "--modifier", "age", "--follow-up", "short"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ov = pd.read_csv(out / "overall.csv")
    row = ov[(ov.outcome == "pain") & (ov.comparison == "any_non_exercise")].iloc[0]
    assert row.studies == 1 and row.participants > 0 and row.analysis == SINGLE_LINEAR
    p = pd.read_csv(data / "participants.csv")
    o = pd.read_csv(out / "analysis_data.csv")
    o = o[(o.outcome == "pain") & (o.follow_up == "short") & (o.in_any_non_exercise == 1)]
    f = sm.OLS.from_formula("value ~ treat + baseline", o).fit()
    assert row.estimate == pytest.approx(f.params["treat"], abs=1e-6) and len(p) > 0
    assert "single trial" in (out / "report.md").read_text()


def test_diverging_logistic_interaction_is_not_estimable_not_a_number():
    """Found on survival::cgd0: 3 of 128 patients on steroids, all free of infection, gave an
    interaction 'log OR 56, SE 590906' reported as a number (status 'singular') and overflowed the
    forest plot. A diverging logistic estimate is separation: reported as not estimable, saying so."""
    a = _analysis(k=4, binary=True, n=40, seed=5)
    a["rare"] = 0.0
    for trial, arm, n, y in (("C1", 1, 3, 1.0), ("C1", 0, 3, 0.0), ("C2", 1, 3, 1.0), ("C2", 0, 3, 0.0)):
        idx = a.index[(a.trial == trial) & (a.treat == arm)][:n]
        a.loc[idx, "rare"], a.loc[idx, "value"] = 1.0, y  # the rare level: every active event-free, no control
    spec = ModelSpec("y", "end", "any", ("control",), "rare", False, True, adjust_for=(), baseline=True)
    row = fit_model(build_design(a, spec, "active"))
    assert row["status"] == "not estimable" and np.isnan(row["estimate"]) and np.isnan(row["ci_low"])
    assert "estimate diverges" in row["message"] and "separation" in row["message"]


def test_single_trial_without_baseline_or_covariates_is_a_difference_in_means():
    """s12r: ``replicate`` labelled a one-trial fit with no baseline and no covariate "ANCOVA"; it is a
    plain difference in means (equal to the arms' mean difference), labelled so."""
    from training.meta.few_trials import SINGLE_MEANS

    a = _analysis(k=1, n=60)
    spec = ModelSpec("y", "end", "any", ("control",), None, False, False, adjust_for=(), baseline=False)
    row = fit_model(build_design(a, spec, "active", min_trials=1))
    assert row["analysis"] == SINGLE_MEANS and "ANCOVA" not in SINGLE_MEANS
    means = a.groupby("treat")["value"].mean()
    assert row["estimate"] == pytest.approx(means[1] - means[0], abs=1e-9)
    adjusted = fit_model(build_design(a, _spec(), "active", min_trials=1))
    assert adjusted["analysis"] == SINGLE_LINEAR
