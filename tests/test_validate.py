"""``lbp-benefit validate`` on the small synthetic model and a simulated new trial (scenario
``new_trial``): report contents checked against independent computations, and robustness to a
missing covariate, another instrument, a single arm and very few participants."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predict import Scorer
from training.validate import validate_model

N_BOOT = 20
ONE = ["pain__short"]  # robustness tests validate one task (speed)


@pytest.fixture(scope="module")
def new_trial(tmp_path_factory) -> Path:
    from training.simulate import simulate_dataset

    folder = tmp_path_factory.mktemp("newtrial") / "data"
    simulate_dataset("new_trial", seed=3, n_participants=180).write(folder)
    shutil.rmtree(folder / "truth", ignore_errors=True)
    return folder


@pytest.fixture(scope="module")
def full(sm, new_trial, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "rep"
    res = validate_model(sm.artifact, new_trial, out, train_data=sm.data, update=True, n_boot=N_BOOT, seed=1)
    return res, out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_report_files_and_keys(full):
    res, out = full
    for f in ("report.html", "report.json", "metrics.csv", "case_mix.csv"):
        assert (out / f).is_file()
    js = json.loads((out / "report.json").read_text())
    b = js["tasks"]["pain__short"]["benefit_predictions"]["usual_care"]
    assert b["status"] == "ok"
    for key in ("c_for_benefit", "calibration_for_benefit", "calibration_for_benefit_groups", "e_for_benefit",
                "rank_average_treatment_effect", "net_benefit"):
        assert key in b and b[key].get("status") != "not_estimable", key
    assert "other_conservative" in js["tasks"]["pain__short"]["benefit_predictions"]
    assert any("synthetic" in w for w in js["warnings"])
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "SYNTHETIC" in html
    from training.synthetic_label import is_labelled

    plots = sorted((out / "plots").glob("*.png"))
    assert plots and all(is_labelled(p.read_bytes()) for p in plots)  # a synthetic model's figures say so
    m = pd.read_csv(out / "metrics.csv")
    # a synthetic model's tables say so on every row (predict/synthetic_marker.py)
    assert m.columns[0] == "synthetic" and m["synthetic"].all()
    assert pd.read_csv(out / "case_mix.csv")["synthetic"].all()
    assert all(pd.read_csv(f)["synthetic"].all() for f in (out / "curves").glob("*.csv"))
    ok = m.dropna(subset=["estimate", "ci_low", "ci_high"])
    assert len(ok) > 20
    assert (ok["ci_low"] <= ok["ci_high"]).all()
    # percentile-bootstrap CIs of the E-statistics (|error| >= 0, biased upwards) may exclude the estimate
    c = ok[~ok["metric"].str.contains("for_benefit") | ~ok["metric"].str.startswith("e")]
    assert (c["ci_low"] <= c["estimate"] + 1e-9).all() and (c["estimate"] <= c["ci_high"] + 1e-9).all()
    nb = b["net_benefit"]["at_smallest_worthwhile"]
    assert nb["threshold"] == pytest.approx(0.2) and nb["ci"][0] <= nb["net_benefit_model"] <= nb["ci"][1]
    assert "update" in js and js["update"]["pain__short"]["outcome"]["b"]["ci_low"] < js["update"]["pain__short"]["outcome"]["b"]["ci_high"]


def test_outcome_citl_matches_independent_scoring(sm, new_trial, full):
    """citl = mean(observed - predicted for the arm received), recomputed from Scorer + harmonise."""
    from training.dataset import load_dataset
    from training.harmonise import harmonise

    res, _ = full
    sc = Scorer.load(sm.artifact)
    h = harmonise(load_dataset(new_trial))
    a = h.analysis[(h.analysis["outcome"] == "pain") & (h.analysis["follow_up"] == "short")]
    # requirements per task: pain needs baseline_pain only (a missing baseline_function is imputed)
    feats = h.baselines[["trial", "participant"] + sc.schema.names + sc.baselines].dropna(subset=["baseline_pain"])
    assert feats["baseline_function"].isna().any()  # the case that used to be dropped is exercised
    a = a[a["participant"].isin(set(feats["participant"]))]
    pred = pd.Series(np.nan, index=a.index)
    for c in ("usual_care", "other_conservative"):
        s = sc.score_table(feats, c, ["pain"], details=False).set_index("participant")
        arm = a["treatment"] == c
        pred[arm] = s.loc[a.loc[arm, "participant"], "pain_short_comparator"].to_numpy()
        ex = a["treatment"] == "exercise"
        pred[ex] = s.loc[a.loc[ex, "participant"], "pain_short_exercise"].to_numpy()
    expect = float(np.mean(a["value"] - pred))
    got = res["tasks"]["pain__short"]["outcome_predictions"]["performance"]["citl"]
    assert got == pytest.approx(expect, rel=1e-9)


def test_exclusions_are_per_task_with_the_reason(sm, new_trial, full):
    """A participant is scored for a task when that task's baselines are present (recovery,
    ``combine: any``: at least one of pain and function); the others with the task's outcome are
    counted per task with the missing baseline named, and those scored with a baseline imputed are
    counted by the baselines imputed: scored + excluded = the task's rows, imputed <= scored."""
    from training.dataset import load_dataset
    from training.harmonise import harmonise

    res, _ = full
    h = harmonise(load_dataset(new_trial))
    b = h.baselines.set_index(["trial", "participant"])
    ex = res["data"]["excluded_by_task"]
    for task, t in res["tasks"].items():
        a = h.analysis[(h.analysis["outcome"] == t["outcome"]) & (h.analysis["follow_up"] == t["follow_up"])]
        both = b.loc[list(zip(a["trial"], a["participant"])), ["baseline_pain", "baseline_function"]].notna()
        ok = (both.any(axis=1) if t["outcome"] == "global_recovery" else both[f"baseline_{t['outcome']}"]).to_numpy()
        assert t["participants"] == int(ok.sum()), task
        assert sum(e["participants"] for e in ex[task]) == int((~ok).sum()), task
        assert t["participants"] + int((~ok).sum()) == len(a), task
        assert t["excluded"] == ex[task]
        for e in ex[task]:
            assert e["reason"].startswith("no ") and "required by the task" in e["reason"]
        imp = res["data"]["imputed_baseline_by_task"][task]
        assert t["imputed_baseline"] == imp
        assert sum(e["participants"] for e in imp) == int((ok & ~both.all(axis=1).to_numpy()).sum()), task
    rec = [k for k in ex if k.startswith("global_recovery")]
    imp = res["data"]["imputed_baseline_by_task"][rec[0]]
    assert rec and imp  # recovery needs one baseline: participants lacking the other are scored, it imputed
    assert any(w.startswith(f"{rec[0]}: ") and "scored with baseline_" in w and "imputed" in w for w in res["warnings"])


def test_case_mix_detects_shift(full, sm, new_trial):
    """Standardised differences equal a hand computation; the shifted new trial is flagged."""
    from training.dataset import load_dataset
    from training.harmonise import harmonise

    res, out = full
    cm = pd.read_csv(out / "case_mix.csv").set_index("covariate")
    new = harmonise(load_dataset(new_trial)).baselines["age"].astype(float)
    train = harmonise(load_dataset(sm.data)).baselines["age"].astype(float)
    d = (new.mean() - train.mean()) / np.sqrt((new.std() ** 2 + train.std() ** 2) / 2)
    assert cm.loc["age", "standardised_difference"] == pytest.approx(d, rel=1e-9)
    assert cm.loc["age", "flag"]
    mc = res["case_mix"]["membership"]
    assert 0.6 < mc["c_statistic"] <= 1 and mc["ci_low"] > 0.5


def test_missing_covariate_column(sm, new_trial, tmp_path):
    d = _copy(new_trial, tmp_path / "d")
    p = pd.read_csv(d / "participants.csv", dtype=str, keep_default_na=False)
    p.drop(columns=["bmi", "fear_avoidance"]).to_csv(d / "participants.csv", index=False)
    res = validate_model(sm.artifact, d, tmp_path / "out", n_boot=N_BOOT, tasks=ONE)
    assert {"bmi", "fear_avoidance"} <= set(res["case_mix"]["lacking"])
    assert any("lacks covariate" in w and "bmi" in w for w in res["warnings"])
    assert res["case_mix"]["membership"]["c_statistic"] is None and "train-data" in res["case_mix"]["membership"]["reason"]
    assert res["tasks"]["pain__short"]["benefit_predictions"]["usual_care"]["status"] == "ok"


def test_other_instrument_gives_identical_results(sm, new_trial, full, tmp_path):
    """Pain on a custom 0-20 scale declared in the config: harmonised to the same 0-100 values,
    so every metric is unchanged."""
    import yaml

    from training.config import DEFAULT_CONFIG
    from importlib import resources

    d = _copy(new_trial, tmp_path / "d")
    o = pd.read_csv(d / "outcomes.csv", dtype=str, keep_default_na=False)
    pain = (o["outcome"] == "pain") & (o["value"] != "")
    o.loc[pain, "value"] = (pd.to_numeric(o.loc[pain, "value"]) * 2).map(lambda v: f"{v:.10g}")
    o.loc[o["outcome"] == "pain", "instrument"] = "pain_0_20"
    o.to_csv(d / "outcomes.csv", index=False)
    cfg = yaml.safe_load(resources.files("training.configs").joinpath(DEFAULT_CONFIG).read_text("utf-8"))
    cfg["instruments"] = {"pain_0_20": {"min": 0, "max": 20, "direction": "higher_is_worse"}}
    cfg["outcomes"]["pain"]["instruments"] += ["pain_0_20"]  # the training data keeps its own instruments
    (d / "study.yaml").write_text(yaml.safe_dump(cfg), "utf-8")
    a = full[0]
    b = validate_model(sm.artifact, d, None, n_boot=N_BOOT, train_data=sm.data, tasks=ONE)
    pa, pb = (r["tasks"]["pain__short"] for r in (a, b))
    assert pb["outcome_predictions"]["performance"]["citl"] == pytest.approx(pa["outcome_predictions"]["performance"]["citl"])
    ca, cb = (p["benefit_predictions"]["usual_care"]["c_for_benefit"]["c_for_benefit"] for p in (pa, pb))
    assert cb == pytest.approx(ca)


def test_single_arm_refuses_benefit_metrics(sm, new_trial, tmp_path):
    d = _copy(new_trial, tmp_path / "d")
    p = pd.read_csv(d / "participants.csv", dtype=str, keep_default_na=False)
    o = pd.read_csv(d / "outcomes.csv", dtype=str, keep_default_na=False)
    keep = p[p["treatment"] == "exercise"]
    keep.to_csv(d / "participants.csv", index=False)
    o[o["participant"].isin(set(keep["participant"]))].to_csv(d / "outcomes.csv", index=False)
    res = validate_model(sm.artifact, d, tmp_path / "out", n_boot=N_BOOT, tasks=ONE)
    t = res["tasks"]["pain__short"]
    assert t["outcome_predictions"]["performance"]["citl"] is not None
    for b in t["benefit_predictions"].values():
        assert b["status"] == "refused" and "single-arm" in b["reason"]
    assert any("refused for every task" in w for w in res["warnings"])
    assert (tmp_path / "out" / "report.html").is_file()


def test_very_few_participants_warn_not_crash(sm, new_trial, full, tmp_path):
    d = _copy(new_trial, tmp_path / "d")
    p = pd.read_csv(d / "participants.csv", dtype=str, keep_default_na=False)
    o = pd.read_csv(d / "outcomes.csv", dtype=str, keep_default_na=False)
    keep = pd.concat([p[p["treatment"] == c].head(12) for c in ("exercise", "usual_care")])
    keep.to_csv(d / "participants.csv", index=False)
    o[o["participant"].isin(set(keep["participant"]))].to_csv(d / "outcomes.csv", index=False)
    small = validate_model(sm.artifact, d, tmp_path / "out", n_boot=N_BOOT, tasks=ONE)
    big = full[0]
    assert any("only 24 participants" in w for w in small["warnings"])
    sb, bb = (r["tasks"]["pain__short"]["benefit_predictions"]["usual_care"] for r in (small, big))
    w = lambda r: r["calibration_for_benefit"]["slope_ci_high"] - r["calibration_for_benefit"]["slope_ci_low"]  # noqa: E731
    assert w(sb) > 2 * w(bb)
    assert (tmp_path / "out" / "metrics.csv").is_file()


def test_invalid_participants_are_excluded_counted_and_the_rest_validated(sm, new_trial, tmp_path):
    """One impossible value or text for a number leaves out that participant, not the validation:
    counted by reason and listed; every metric equals validating without those participants. A
    problem with the file itself still refuses the dataset."""
    from predict.errors import ValidationFailed

    d = _copy(new_trial, tmp_path / "d")
    p = pd.read_csv(d / "participants.csv", dtype=str, keep_default_na=False)
    bad = p.index[:2]
    p.loc[bad[0], "age"], p.loc[bad[1], "bmi"] = "300", "abc"
    p.to_csv(d / "participants.csv", index=False)
    res = validate_model(sm.artifact, d, None, n_boot=N_BOOT, tasks=ONE)
    inv = res["data"]["excluded_invalid"]
    assert inv["count"] == 2 and inv["by_reason"] == {"not_a_number": 1, "out_of_range": 1}
    assert {(x["participant"], x["reason"]) for x in inv["participants"]} == {
        (p.loc[bad[0], "participant"], "out_of_range"), (p.loc[bad[1], "participant"], "not_a_number")}
    assert any("2 participant(s) of the new trial excluded as invalid" in w for w in res["warnings"])
    clean = _copy(new_trial, tmp_path / "clean")
    o = pd.read_csv(clean / "outcomes.csv", dtype=str, keep_default_na=False)
    keep = p.drop(index=bad)
    pd.read_csv(new_trial / "participants.csv", dtype=str, keep_default_na=False).drop(index=bad).to_csv(
        clean / "participants.csv", index=False)
    o[o["participant"].isin(set(keep["participant"]))].to_csv(clean / "outcomes.csv", index=False)
    ref = validate_model(sm.artifact, clean, None, n_boot=N_BOOT, tasks=ONE)
    assert res["data"]["n_participants"] == ref["data"]["n_participants"] == len(p) - 2
    assert ref["data"]["excluded_invalid"]["count"] == 0
    same = lambda r: json.dumps(r["tasks"], sort_keys=True, default=str)  # noqa: E731 - NaN where NaN
    assert same(res) == same(ref)
    p.drop(columns=["treatment"]).to_csv(d / "participants.csv", index=False)  # a file-level problem
    with pytest.raises(ValidationFailed, match="treatment"):
        validate_model(sm.artifact, d, None, n_boot=N_BOOT, tasks=ONE)


def test_bad_input_named(sm, tmp_path):
    from predict.errors import LbpError

    with pytest.raises(LbpError, match="not found"):
        validate_model(sm.artifact, tmp_path / "nope", None)


def test_report_reads_top_down_at_laptop_and_phone_widths(full):
    """report.html in headless Chromium: verdict screens first (the first verdict visible without
    scrolling), then the case-mix, then the full table; nothing wider than the window."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is absent (scripts/install_system_deps.sh)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    _, out = full
    html = (out / "report.html").read_text()
    first_screen, case_mix, table = (html.index("class='screen'"), html.index("<h2>Case-mix"),
                                     html.index("<h2>Every metric"))
    assert first_screen < case_mix < table
    assert "The evidence" in html or "The data do not show" in html
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            for w, h in ((1366, 768), (390, 844)):
                page = b.new_page(viewport={"width": w, "height": h})
                page.goto((out / "report.html").as_uri())
                assert page.evaluate("document.documentElement.scrollWidth") <= w
                box = page.locator(".verdict").first.bounding_box()
                assert box is not None and box["y"] < h
                page.close()
        finally:
            b.close()


def test_verdict_and_extrapolation_bands_against_truth(sm, tmp_path):
    """Simulated new trial with its truth: the extrapolation section's bands partition the scored
    participants, the observed effect is the plain difference in means, and PI coverage of the
    true benefit is reported per band."""
    from training.config import resolve_config
    from training.harmonise import harmonise
    from training.simulate import simulate_dataset

    folder = tmp_path / "data"
    simulate_dataset("new_trial", seed=4, n_participants=180).write(folder)
    assert (folder / "truth" / "truth.csv").is_file()
    res = validate_model(sm.artifact, folder, None, n_boot=N_BOOT, seed=1, tasks=ONE)
    b = res["tasks"]["pain__short"]["benefit_predictions"]["usual_care"]
    assert "verdict" in b  # training.verdicts (the report's own verdict)
    ex = b["extrapolation"]
    assert ex["status"] == "ok"
    bands = {x["band"]: x for x in ex["bands"]}
    assert bands["within_support"]["n"] + bands["beyond_support"]["n"] == bands["all"]["n"] == ex["n"]
    assert 0.0 <= bands["all"]["coverage_pi_true_benefit"] <= 1.0
    # the coverage with its interval (s13g: no number without its interval): Wilson, checked by hand
    cov, (lo, hi), k = bands["all"]["coverage_pi_true_benefit"], bands["all"]["coverage_pi_true_benefit_ci"], \
        bands["all"]["n_truth"]
    z = 1.959963984540054
    centre = (cov + z * z / (2 * k)) / (1 + z * z / k)
    half = z * (cov * (1 - cov) / k + z * z / (4 * k * k)) ** 0.5 / (1 + z * z / k)
    assert (lo, hi) == (pytest.approx(centre - half, abs=1e-9), pytest.approx(centre + half, abs=1e-9)) and lo <= cov <= hi
    from training.validate.report import _coverage, _gap
    assert _coverage(bands["all"]).endswith(f"(n {k})") and "[" in _gap(bands["all"])
    from training.validate.data import load_new_trial

    a = harmonise(load_new_trial(folder, resolve_config(folder, None))).analysis
    a = a[(a["outcome"] == "pain") & (a["follow_up"] == "short")]
    a = a[a["baseline_pain"].notna()]  # pain needs only its own baseline (a missing baseline_function is imputed)
    y1 = a.loc[a["treatment"] == "exercise", "value"]
    y0 = a.loc[a["treatment"] == "usual_care", "value"]
    assert (len(y1) + len(y0), bands["all"]["observed"]) == (ex["n"], pytest.approx(y0.mean() - y1.mean(), abs=1e-9))
