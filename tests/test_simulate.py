"""Tests of the IPD simulator (training.simulate): determinism, the data format, the published
design and case-mix, systematic missingness, the calibration report, and the truth."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predict.errors import LbpError
from training.instruments import BUILTIN
from training.simulate import (calibration_report, generate_population, list_scenarios, load_scenario,
                               simulate_dataset, true_benefit, true_expected)
from training.simulate import truth as T
from training.simulate.scenario import COVARIATES, FOLLOW_UPS, OUTCOMES

REFERENCE = Path("/work/shared/reference/hayden2020_published.json")
CLASSES = ["exercise", "no_treatment", "placebo", "usual_care", "other_conservative", "combined"]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def sim():
    return simulate_dataset("hayden2020", seed=1)


@pytest.fixture(scope="module")
def written(sim, tmp_path_factory):
    return sim.write(tmp_path_factory.mktemp("sim") / "data")


@pytest.fixture(scope="module")
def report(sim):
    return calibration_report(sim)


# ----------------------------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_files(written, tmp_path):
    again = simulate_dataset("hayden2020", seed=1).write(tmp_path / "again")
    files = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    assert {str(f) for f in files} >= {"participants.csv", "outcomes.csv", "study.yaml", "README.md",
                                       "truth/truth.csv", "truth/scenario.yaml"}
    for f in files:
        assert (written / f).read_bytes() == (again / f).read_bytes(), f


def test_other_seed_differs(written, tmp_path):
    other = simulate_dataset("hayden2020", seed=2).write(tmp_path / "other")
    assert (other / "participants.csv").read_bytes() != (written / "participants.csv").read_bytes()
    assert (other / "outcomes.csv").read_bytes() != (written / "outcomes.csv").read_bytes()


def test_everything_says_synthetic(written):
    assert "SYNTHETIC" in (written / "README.md").read_text()
    assert "SYNTHETIC" in (written / "study.yaml").read_text()
    assert "truth" in (written / "truth" / "scenario.yaml").read_text()


# ----------------------------------------------------------------------------------- format
def test_participants_format(written):
    p = pd.read_csv(written / "participants.csv", keep_default_na=False, dtype=str)
    assert list(p.columns) == ["trial", "participant", "arm", "treatment", "subtype"] + list(COVARIATES)
    assert set(p["treatment"]) <= set(CLASSES)
    assert not p.duplicated(["trial", "participant"]).any()
    assert p["participant"].duplicated().any()  # ids repeat across trials, as in pooled data
    sub_allowed = p["treatment"].isin(["other_conservative", "combined"])
    assert (p.loc[~sub_allowed, "subtype"] == "").all()
    assert set(p.loc[sub_allowed, "subtype"]) <= {"manual_therapy", "education", "psychological", "electrotherapy",
                                                   "passive_physio", "other"}
    assert p.groupby("arm").size().size > 10
    assert (p.groupby(["trial", "arm"])["treatment"].nunique() == 1).all()
    num = p[list(COVARIATES)].replace("", np.nan).astype(float)
    ranges = {"age": (18, 100), "bmi": (12, 70), "general_health": (0, 100), "mental_health": (0, 100),
              "fear_avoidance": (0, 100), "episode_months": (0, 720)}
    for v in COVARIATES:
        x = num[v].dropna()
        lo, hi = ranges.get(v, (0, 1))
        assert x.between(lo, hi).all(), v
        if v not in ranges:
            assert set(x.unique()) <= {0.0, 1.0}, v


def test_outcomes_format(written):
    o = pd.read_csv(written / "outcomes.csv", keep_default_na=False, dtype={"trial": str})
    assert list(o.columns) == ["trial", "participant", "outcome", "instrument", "week", "value"]
    assert set(o["outcome"]) == {"pain", "function"}
    assert (o.groupby(["trial", "outcome"])["instrument"].nunique() == 1).all()
    assert (o["week"] >= 0).all()
    scen = load_scenario("hayden2020")
    for code, g in o.groupby("instrument"):
        ins = BUILTIN[code]
        assert g["value"].between(ins.min, ins.max).all(), code
        k = (g["value"] - ins.min) / scen.precision(code)
        assert np.allclose(k, np.round(k)), code  # rounded to the instrument's precision
    assert not o.duplicated(["trial", "participant", "outcome", "week"]).any()
    p = pd.read_csv(written / "participants.csv", usecols=["trial", "participant"], dtype={"trial": str})
    keys = set(zip(p["trial"], p["participant"]))
    assert set(zip(o["trial"], o["participant"])) <= keys


def test_truth_format(sim, written):
    tr = pd.read_csv(written / "truth" / "truth.csv", dtype={"trial": str})
    n = len(sim.participants)
    assert len(tr) == 9 * n
    assert set(tr["follow_up"]) == set(FOLLOW_UPS)
    assert set(tr["outcome"]) == {"pain", "function", "global_recovery"}
    for c in CLASSES:
        assert f"expected_{c}" in tr.columns
        if c != "exercise":
            assert f"benefit_vs_{c}" in tr.columns
    assert "benefit_vs_exercise" not in tr.columns
    cont = tr["outcome"] != "global_recovery"
    e = tr[[f"expected_{c}" for c in CLASSES]]
    assert e[cont].stack().between(0, 100).all()
    assert e[~cont].stack().between(0, 1).all()
    # sign convention: positive = exercise better
    b = tr["benefit_vs_usual_care"]
    d = tr["expected_usual_care"] - tr["expected_exercise"]
    assert np.allclose(b[cont], d[cont], atol=2e-6)
    assert np.allclose(b[~cont], -d[~cont], atol=2e-6)


# ----------------------------------------------------------------------------------- published design
def test_design_as_published(sim):
    p = sim.participants
    assert len(p) == 3514 and p["trial"].nunique() == 27
    counts = p["treatment"].astype(str).value_counts()
    assert counts["exercise"] == 2568
    assert counts.get("no_treatment", 0) + counts.get("placebo", 0) == 142
    assert counts["usual_care"] == 125 and counts["other_conservative"] == 679
    sizes = p.groupby("trial", observed=True).size()
    assert sizes.min() == 28 and sizes.max() == 264 and sizes.median() == 109
    assert np.percentile(sizes, 25) == 65 and np.percentile(sizes, 75) == 209
    scen = sim.scenario
    n_ex = [sum(a.treatment == "exercise" for a in t.arms) for t in scen.trials]
    n_cmp = [len(t.arms) - e for t, e in zip(scen.trials, n_ex)]
    assert sorted(n_ex).count(1) == 11 and n_ex.count(2) == 13 and n_ex.count(3) == 3
    assert n_cmp.count(0) == 12 and n_cmp.count(1) == 13 and n_cmp.count(2) == 2
    assert all(e >= 2 for e, c in zip(n_ex, n_cmp) if c == 0)  # exercise-only trials compare exercise arms
    assert sum(t.measures("pain") for t in scen.trials) == 26
    assert sum(t.measures("function") for t in scen.trials) == 25
    assert [sum(bool(t.weeks.get(f)) for t in scen.trials) for f in FOLLOW_UPS] == [27, 19, 15]


def test_systematic_missingness(sim):
    p = sim.participants
    expected_trials = {"age": 27, "female": 27, "education_beyond_high_school": 12, "current_smoker": 9,
                       "physically_active": 12, "bmi": 17, "lbp_history": 8, "sick_leave_12m": 14, "employed": 18,
                       "heavy_physical_work": 8, "general_health": 10, "mental_health": 7, "fear_avoidance": 9,
                       "social_support": 10, "episode_months": 13, "leg_pain": 15, "lbp_medication": 13}
    for v, k in expected_trials.items():
        observed = p[v].notna()
        by_trial = observed.groupby(p["trial"], observed=True).mean()
        assert (by_trial > 0).sum() == k, v
        assert set(by_trial[by_trial > 0].index) == set(sim.scenario.availability[v]), v
        assert (by_trial[by_trial > 0] > 0.9).all(), v  # only sporadic missingness inside the trials that measured it


def test_calibration_report_within_tolerance(report):
    assert list(report.columns) == ["section", "quantity", "published", "simulated", "lower", "upper", "tolerance", "within"]
    asserted = report[report["section"] != "interactions (fit)"]
    bad = asserted[~asserted["within"]]
    assert bad.empty, bad[["section", "quantity", "published", "simulated", "lower", "upper"]].to_string()
    assert set(asserted["section"]) >= {"design", "table3", "studies", "effects (truth)", "effects (fit)"}
    fits = report[report["section"] == "interactions (fit)"]
    assert len(fits) == 57 and fits["within"].mean() >= 0.85


def test_report_can_fail():
    """The report flags a scenario that does not match the paper (so the test above can fail)."""
    scen = load_scenario("hayden2020")
    scen.raw["covariates"]["age"]["mean"] = 50.0
    scen.digest = "test-age-50"
    r = calibration_report(simulate_dataset(scen, seed=1), fits=False)
    assert not r.loc[r["quantity"] == "age: mean", "within"].item()


# ----------------------------------------------------------------------------------- truth
def test_truth_mean_benefit_equals_scenario_effect():
    """Without effect modification or heterogeneity the average true benefit is the scenario's
    effect (the latent offsets are calibrated so that clipping does not shrink it)."""
    sim = simulate_dataset("none", seed=5, n_participants=20000)
    s = sim.truth[sim.truth["follow_up"] == "short"]
    eff = sim.scenario.raw["effects"]
    for o in OUTCOMES:
        so = s[s["outcome"] == o]
        for c in ("no_treatment", "usual_care", "other_conservative"):
            assert so[f"benefit_vs_{c}"].mean() == pytest.approx(-eff[c][o], abs=0.3), (o, c)
        assert so["benefit_vs_usual_care"].std() < 2.0


def test_truth_mean_benefit_hayden(sim):
    s = sim.truth[sim.truth["follow_up"] == "short"]
    for o, md in (("pain", -10.7), ("function", -10.2)):
        assert -s.loc[s["outcome"] == o, "benefit_vs_usual_care"].mean() == pytest.approx(md, abs=0.6)


def _harmonise_outcomes(sim) -> pd.DataFrame:
    """An independent mini-harmonisation of sim.outcomes: 0-100, closest week to the target."""
    o = sim.outcomes.copy()
    o["v"] = np.nan
    for code, idx in o.groupby("instrument", observed=True).indices.items():
        o.loc[o.index[idx], "v"] = BUILTIN[code].to_0_100(o["value"].to_numpy()[idx])
    base = o[o["week"] == 0].pivot_table(index=["trial", "participant"], columns="outcome", values="v", observed=True)
    frames = []
    for w in sim.scenario.config.windows:
        x = o[(o["week"] > w.after) & (o["week"] <= w.up_to)].copy()
        x["d"] = (x["week"] - w.target_week).abs()
        x = x.sort_values(["trial", "participant", "outcome", "d", "week"]).drop_duplicates(["trial", "participant", "outcome"])
        x["follow_up"] = w.name
        frames.append(x)
    fu = pd.concat(frames).pivot_table(index=["trial", "participant", "follow_up"], columns="outcome", values="v",
                                       observed=True).reset_index()
    fu = fu.merge(base.reset_index().rename(columns={"pain": "b_pain", "function": "b_function"}),
                  on=["trial", "participant"], how="left")
    crit = []
    for oc, pts in (("pain", 20), ("function", 10)):
        imp = fu[f"b_{oc}"] - fu[oc]
        c = ((imp >= 0.3 * fu[f"b_{oc}"]) & (imp >= pts)).astype(float)
        crit.append(c.where(fu[oc].notna() & fu[f"b_{oc}"].notna()))
    crit = pd.concat(crit, axis=1)
    fu["global_recovery"] = crit.max(axis=1)
    fu["trial"] = fu["trial"].astype(str)
    return fu


def test_observed_means_match_truth_on_large_sample():
    """Trial x arm x follow-up means of the observed (harmonised) outcomes agree with the truth's
    expectations under the assigned class within sampling error."""
    sim = simulate_dataset("hayden2020", seed=11, n_participants=40000)
    fu = _harmonise_outcomes(sim)
    tr = sim.truth.copy()
    tr["trial"] = tr["trial"].astype(str)
    tr["expected"] = np.nan
    for c in CLASSES:
        m = tr["treatment"].astype(str) == c
        tr.loc[m, "expected"] = tr.loc[m, f"expected_{c}"]
    zs = []
    for oc in ("pain", "function", "global_recovery"):
        t = tr[tr["outcome"] == oc][["trial", "participant", "treatment", "follow_up", "expected"]].copy()
        t["follow_up"] = t["follow_up"].astype(str)
        m = t.merge(fu[["trial", "participant", "follow_up", oc]], on=["trial", "participant", "follow_up"])
        m = m.dropna(subset=[oc])
        m["r"] = m[oc] - m["expected"]
        g = m.groupby(["trial", "treatment", "follow_up"], observed=True)["r"].agg(["mean", "std", "size"])
        g = g[g["size"] >= 100]
        zs.append((g["mean"] / (g["std"] / np.sqrt(g["size"]))).to_numpy())
    z = np.concatenate(zs)
    assert len(z) > 150
    assert np.abs(z).max() < 4.5
    assert abs(z.mean()) < 0.35 and 0.7 < z.std() < 1.3


def test_reference_harmonisation_matches_outcomes(sim):
    """The generator's own reference harmonisation equals a harmonisation of outcomes.csv."""
    fu = _harmonise_outcomes(sim)
    ref = sim.followup.copy()
    ref["trial"] = ref["trial"].astype(str)
    m = ref.merge(fu, on=["trial", "participant", "follow_up"], suffixes=("", "_h"), how="left")
    for oc in ("pain", "function", "global_recovery"):
        a, b = m[oc].to_numpy(float), m[f"{oc}_h"].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), oc
        assert np.allclose(a[~np.isnan(a)], b[~np.isnan(b)]), oc


def test_load_dataset_and_harmonise_accept_output(sim, written):
    dataset = pytest.importorskip("training.dataset", reason="training.dataset (lead's loader) not available yet")
    harmonise_mod = pytest.importorskip("training.harmonise", reason="training.harmonise not available yet")
    ds = dataset.load_dataset(written)
    assert ds.n_participants == len(sim.participants) and ds.n_trials == 27
    assert not [w for w in ds.warnings if getattr(w, "severity", "warning") == "error"]
    h = harmonise_mod.harmonise(ds)
    a = h.analysis
    a = a.assign(trial=a["trial"].astype(str), participant=a["participant"].astype(int))
    ref = sim.followup.assign(trial=sim.followup["trial"].astype(str))
    for oc in ("pain", "function", "global_recovery"):
        x = a[a["outcome"] == oc][["trial", "participant", "follow_up", "value"]]
        keep = ref[oc].notna() & (ref[f"baseline_{oc}"].notna() if oc != "global_recovery" else True)
        r = ref.loc[keep, ["trial", "participant", "follow_up", oc]]
        m = x.merge(r, on=["trial", "participant", "follow_up"], how="outer")
        assert len(m) == len(x) == len(r), oc  # the same analysed rows
        assert np.allclose(m["value"].to_numpy(float), m[oc].to_numpy(float)), oc  # the same values


# ----------------------------------------------------------------------------------- scenarios & API
@pytest.mark.parametrize("name", ["hayden2020", "none", "strong", "nonlinear", "new_trial"])
def test_scenarios_load_and_simulate(name):
    assert name in list_scenarios()
    sim = simulate_dataset(name, seed=3, n_participants=600)
    assert len(sim.participants) == 600
    tr = sim.truth
    assert np.isfinite(tr.filter(like="expected_").to_numpy()).all()
    if name == "new_trial":
        assert sim.participants["trial"].nunique() == 1
        assert sim.participants[list(COVARIATES)].notna().mean().min() > 0.9  # every covariate measured


def test_modification_strength_orders_scenarios():
    pop = generate_population(5000, seed=2)
    sd = {s: true_benefit(pop, "usual_care", "short", "pain", s).std() for s in ("none", "hayden2020", "strong", "nonlinear")}
    assert sd["none"] < 1.5 < sd["hayden2020"] < sd["nonlinear"] < sd["strong"]


def test_true_benefit_api():
    pop = generate_population(20000, seed=3)
    b = true_benefit(pop, "usual_care", "short", "pain")
    assert b.shape == (20000,) and b.mean() == pytest.approx(10.7, abs=0.4)
    e = true_expected(pop, "short", "global_recovery")
    assert list(e.columns) == [f"expected_{c}" for c in CLASSES]
    assert e.to_numpy().min() >= 0 and e.to_numpy().max() <= 1
    r = true_benefit(pop, "usual_care", "short", "global_recovery")
    assert np.allclose(r, e["expected_exercise"] - e["expected_usual_care"])
    # heavy physical work makes exercise worse (published Tables 4-5)
    heavy, light = pop.assign(heavy_physical_work=1), pop.assign(heavy_physical_work=0)
    bh, bl = true_benefit(heavy, "usual_care"), true_benefit(light, "usual_care")
    assert (bh - bl).mean() < -3 and (bh < bl).mean() > 0.95  # not all: clipping near 0 compresses differences
    with pytest.raises(LbpError):
        true_benefit(pop.drop(columns="bmi"), "usual_care")
    with pytest.raises(LbpError):
        true_benefit(pop, "exercise")


def test_generate_population():
    a = generate_population(30000, seed=4)
    assert a.equals(generate_population(30000, seed=4))
    assert list(a.columns) == list(COVARIATES) + ["baseline_pain", "baseline_function"]
    assert a["age"].mean() == pytest.approx(45.7, abs=0.5)
    assert a["bmi"].mean() == pytest.approx(26.3, abs=0.2)
    assert a["heavy_physical_work"].mean() == pytest.approx(0.361, abs=0.015)
    assert a["episode_months"].median() == pytest.approx(14, abs=2)
    assert a[["baseline_pain", "baseline_function"]].corr().iloc[0, 1] > 0.3


def test_unknown_scenario_is_a_clear_error():
    with pytest.raises(LbpError, match="unknown scenario"):
        load_scenario("no_such_scenario")


def test_cli(tmp_path, capsys):
    from lbp_benefit.cli import main

    try:
        main(["simulate", "--scenario", "none", "--seed", "4", "--participants", "500", "--out", str(tmp_path / "d"), "--report", "--no-mixed-fits"])
    except SystemExit as exc:  # pragma: no cover - success normally returns
        assert exc.code in (0, None)
    assert (tmp_path / "d" / "truth" / "truth.csv").is_file()
    assert (tmp_path / "d" / "calibration_report.md").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--scenario", "nope", "--out", str(tmp_path / "e")])
    assert exc.value.code == 2
    assert "unknown scenario" in capsys.readouterr().err


def test_published_numbers_match_reference():
    """The scenario's copied numbers equal the structured extraction (when it is present)."""
    if not REFERENCE.is_file():
        pytest.skip("reference JSON not available")
    ref = json.loads(REFERENCE.read_text())
    pub = load_scenario("hayden2020").published
    names = {"Age": "age", "BMI": "bmi", "General health": "general_health", "Mental health": "mental_health",
             "Fear avoidance beliefs": "fear_avoidance", "Pain intensity": "baseline_pain",
             "Functional limitations": "baseline_function"}
    for c in ref["table3_participants"]["characteristics"]:
        if c["characteristic"] in names:
            t = pub["table3"][names[c["characteristic"]]]
            assert (t["mean"], t["n"]) == (c["mean"], c["n"])
    eff = {(e["outcome"], e["comparison"]): e for e in ref["overall_effects"]["ipd_one_stage"] if e["source_in_text"] == "results"}
    assert pub["overall"]["pain_vs_no_treatment_usual_care"]["estimate"] == eff[("pain", "exercise vs no treatment/usual care")]["estimate"]
    assert pub["overall"]["recovery_vs_no_treatment_usual_care"]["ci"] == [2.6, 5.7]
    t5 = {r["variable"]: r["adjusted"] for r in ref["interactions"]["table5_function"]["rows"]}
    assert pub["interactions"]["function"]["heavy_physical_work"] == [t5["Heavy physical demands"]["estimate"],
                                                                      t5["Heavy physical demands"]["ci_low"],
                                                                      t5["Heavy physical demands"]["ci_high"]]


# ----------------------------------------------------------------------------------- properties
@FAST
@given(h=st.floats(-4, 4), k=st.floats(-4, 4), rho=st.floats(-0.9, 0.9))
def test_bvn_cdf_matches_scipy(h, k, rho):
    from scipy.stats import multivariate_normal

    ref = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([h, k])
    assert T.bvn_cdf(np.array([h]), np.array([k]), rho)[0] == pytest.approx(ref, abs=2e-6)


@FAST
@given(mu=st.floats(-30, 130), sd=st.floats(8, 25), code=st.sampled_from(sorted(BUILTIN)))
def test_rounded_clipped_mean_is_accurate(mu, sd, code):
    """The truth's expectation of the rounded, clipped score equals the exact discrete sum
    (within 1e-3 points: exact for coarse grids, Euler-Maclaurin corrected Tobit mean for fine ones)."""
    from scipy.stats import norm

    scen = load_scenario("hayden2020")
    h = scen.grid_step(code)
    grid = T.grid_values(code, scen.precision(code))
    edges = np.concatenate([[-np.inf], (np.arange(1, len(grid)) - 0.5) * h, [np.inf]])
    exact = float(np.sum(grid * np.diff(norm.cdf((edges - mu) / sd))))
    assert T.rounded_clipped_mean(np.array([mu]), sd, h)[0] == pytest.approx(exact, abs=1e-3)


@FAST
@given(b_idx=st.integers(0, 100), code=st.sampled_from(sorted(BUILTIN)), pts=st.sampled_from([10.0, 20.0]))
def test_recovery_index_matches_brute_force(b_idx, code, pts):
    scen = load_scenario("hayden2020")
    grid = T.grid_values(code, scen.precision(code))
    b = grid[min(b_idx, len(grid) - 1)]
    imp = b - grid
    ok = np.nonzero((imp >= 0.3 * b) & (imp >= pts))[0]
    expect = ok.max() if len(ok) else -1
    assert T.recovery_index(np.array([b]), grid, 0.3, pts)[0] == expect


@FAST
@given(n=st.integers(63, 200_000))
def test_scaled_design_sums_exactly(n):
    scen = load_scenario("hayden2020").scaled(n)
    arms = [a.n for t in scen.trials for a in t.arms]
    assert sum(arms) == n and min(arms) >= 1


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(100, 1500))
def test_small_simulations_keep_invariants(seed, n):
    s = simulate_dataset("hayden2020", seed=seed, n_participants=n)
    assert len(s.participants) == n and len(s.truth) == 9 * n
    assert not s.participants.duplicated(["trial", "participant"]).any()
    for code, g in s.outcomes.groupby("instrument", observed=True):
        assert g["value"].between(BUILTIN[code].min, BUILTIN[code].max).all()
    p = s.truth[s.truth["outcome"] == "global_recovery"].filter(like="expected_").to_numpy()
    assert p.min() >= 0 and p.max() <= 1
