"""Model cards: sections, synthetic banner, MCT v0.0.2 structure, TRIPOD+AI and HTI-1,
robustness to missing files, subgroup performance with a known answer, and `card --model`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predict.errors import LbpError
from predict.model_format import FORMAT_VERSION
from training.cards import Card, build_card, write_card
from training.cards.content import SECTION_IDS, SECTION_ORDER
from training.cards.schema import validate_mct_v002
from training.cards.subgroups import COLUMNS, subgroup_performance

PNG = b"\x89PNG\r\n\x1a\n"


def run_plot(kind: str) -> bytes:
    """A small real PNG standing for a training run's plot (its text chunk says which)."""
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", f"run-plot-{kind}")
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 220, 240)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()
TASKS = ["pain__short", "pain__moderate", "global_recovery__short"]
IECV = ["pain__short", "global_recovery__short"]
TRIALS = [f"T{i:02d}" for i in range(1, 7)]
COVS = ["age", "female", "bmi", "employed", "heavy_physical_work"]


# ----------------------------------------------------------------------------- fixtures
def make_manifest(synthetic: bool = True) -> dict:
    trials = {t: {"participants": 100 + 10 * i, "by_class": {"exercise": 50 + 5 * i, "usual_care": 50 + 5 * i}}
              for i, t in enumerate(TRIALS)}
    return {
        "schema_version": FORMAT_VERSION, "model_id": "lbp-test-model", "created": "2025-03-04T05:06:07Z",
        "package_version": "0.1.0", "git_commit": "0123abc", "seed": 7, "synthetic": synthetic,
        "training_data": {"fingerprint": "sha256:feedface", "trials": trials,
                          "n_participants": sum(v["participants"] for v in trials.values())},
        "feature_schema": [
            {"name": "age", "type": "continuous", "label": "Age", "unit": "years", "range": [18, 100], "categories": None, "missing": "allowed"},
            {"name": "female", "type": "binary", "label": "Female sex", "unit": None, "range": None, "categories": None, "missing": "allowed"},
            {"name": "bmi", "type": "continuous", "label": "Body mass index", "unit": "kg/m2", "range": [12, 70], "categories": None, "missing": "allowed"},
            {"name": "employed", "type": "binary", "label": "Employed", "unit": None, "range": None, "categories": None, "missing": "allowed"},
            {"name": "heavy_physical_work", "type": "binary", "label": "Heavy physical demands at work", "unit": None,
             "range": None, "categories": None, "missing": "allowed"},
        ],
        "baselines": ["pain", "function"], "outcomes": ["pain", "global_recovery"],
        "comparators": ["usual_care", "other_conservative"], "sparse_comparators": ["usual_care"],
        "follow_ups": ["short", "moderate"], "tasks": TASKS,
    }


def make_report(d: Path, synthetic: bool = True, subgroups: bool = False, plots_for=tuple(IECV)) -> Path:
    """A report folder like training/train.py writes (plus the harmonisation reports). Tasks not
    in ``plots_for`` get no PNGs, so the card redraws them from the CSVs (slow: one test only)."""
    d.mkdir(parents=True, exist_ok=True)
    sel = {"pain__short": {"model": "stacked", "weights": {"effect_model": 0.8, "constant": 0.1},
                           "rule": "non-negative R-loss stacking on IECV predictions", "best_single": "effect_model"},
           "pain__moderate": {"model": "effect_model", "rule": "no IECV for this task: effect model (penalty by grouped CV)"},
           "global_recovery__short": {"model": "constant", "rule": "lowest pooled IECV R-loss"}}
    run = {"command": "lbp-benefit train", "seed": 7, "synthetic": synthetic, "study": "lbp_default",
           "learners": ["constant", "effect_model"], "select": "stack", "iecv_follow_ups": ["short"],
           "n_boot_linear": 20, "n_boot_trees": 10, "selection": sel, "seconds": 12.3,
           "versions": {"numpy": "2.0", "pandas": "2.2"}}
    (d / "run.json").write_text(json.dumps(run), "utf-8")
    (d / "report.md").write_text("# Training run\n", "utf-8")
    pd.DataFrame([{"task": t, "outcome": t.split("__")[0], "follow_up": t.split("__")[1],
                   "outcome_type": "binary" if t.startswith("global") else "continuous", "participants": 600,
                   "trials": 6, "comparator_trials": 6, "status": "ok", "selected": sel[t]["model"], "iecv": t in IECV}
                  for t in TASKS]).to_csv(d / "tasks.csv", index=False)
    pd.DataFrame([{"task": t, "comparator": c, "trials": k, "participants": n, "sparse": k < 2}
                  for t in TASKS for c, k, n in (("usual_care", 1, 40), ("other_conservative", 5, 300), ("combined", 0, 0))]
                 ).to_csv(d / "class_support.csv", index=False)
    rng = np.random.default_rng(0)
    for t in IECV:
        it = d / "iecv" / t
        it.mkdir(parents=True)
        rows = []
        for lr in ("constant", "effect_model"):
            for tr in TRIALS:
                for m, c in (("c_for_benefit", 0.55), ("calibration_slope_for_benefit", 0.9), ("citl_for_benefit", 0.1),
                             ("outcome_slope", 1.0)):
                    e = c + 0.02 * rng.standard_normal()
                    rows.append({"learner": lr, "trial": tr, "metric": m, "estimate": e, "ci_low": e - 0.05,
                                 "ci_high": e + 0.05, "n": 100})
                rows.append({"learner": lr, "trial": tr, "metric": "r_loss", "estimate": 400.0, "ci_low": np.nan,
                             "ci_high": np.nan, "n": 100})
        pd.DataFrame(rows).to_csv(it / "per_trial.csv", index=False)
        pd.DataFrame([{"learner": lr, "metric": m, "estimate": c, "ci_low": c - 0.03, "ci_high": c + 0.03,
                       "pi_low": c - 0.06, "pi_high": c + 0.06, "tau": 0.01, "i2": 0.2, "k": 6}
                      for lr in ("constant", "effect_model")
                      for m, c in (("c_for_benefit", 0.55), ("calibration_slope_for_benefit", 0.9),
                                   ("citl_for_benefit", 0.1), ("outcome_slope", 1.0))]).to_csv(it / "pooled.csv", index=False)
        pd.DataFrame({"learner": ["constant", "effect_model"], "r_loss": [400.0, 398.0], "n": [600, 600],
                      "gain_vs_constant_pct": [0.0, 0.5]}).to_csv(it / "r_loss.csv", index=False)
        (it / "stack_weights.json").write_text(json.dumps({"constant": 0.1, "effect_model": 0.8}), "utf-8")
    # pain__short: a calibration CSV (used when its PNG is missing)
    pd.DataFrame({"group": [1, 2, 3], "n": [200] * 3, "predicted": [1.0, 3.0, 5.0], "observed": [1.5, 2.5, 5.5],
                  "se": [1.0] * 3, "ci_low": [-0.5, 0.5, 3.5], "ci_high": [3.5, 4.5, 7.5]}
                 ).to_csv(d / "pain__short__benefit_calibration.csv", index=False)
    (d / "plots").mkdir()
    for t in plots_for:
        for k in ("iecv_forest", "benefit_calibration"):
            (d / "plots" / f"{t}__{k}.png").write_bytes(run_plot(k))
    (d / "summaries").mkdir()
    pd.DataFrame({"term": ["intercept", "active x [age]", "active x [age:rcs1]", "active x [heavy_physical_work]"],
                  "coef": [30.0, 0.2, 0.1, 1.3], "se": [1.0, 0.5, 0.5, 0.4], "z": [30, 0.4, 0.2, 3.25]}
                 ).to_csv(d / "summaries" / "pain__short__effect_model.csv", index=False)
    pd.DataFrame([{"trial": t, "outcome": o, "received": 100, "excluded_invalid": 0, "valid": 100, "not_collected": 0,
                   "missing_baseline": 2, "with_baseline": 98, "missing_followup_short": 8, "analysed_short": 90}
                  for t in TRIALS for o in ("pain", "global_recovery")]).to_csv(d / "attrition.csv", index=False)
    pd.DataFrame([{"trial": t, "covariate": c, "participants": 100, "observed": 0 if (c == "heavy_physical_work" and i % 2) else 97,
                   "pct_missing": 100.0 if (c == "heavy_physical_work" and i % 2) else 3.0,
                   "collected": not (c == "heavy_physical_work" and i % 2)}
                  for i, t in enumerate(TRIALS) for c in COVS[:4] + ["heavy_physical_work"]]
                 ).to_csv(d / "covariate_availability.csv", index=False)
    if subgroups:
        subgroup_csv().to_csv(d / "subgroup_performance.csv", index=False)
    return d


def subgroup_csv() -> pd.DataFrame:
    rows = []
    for var, levels in (("all", ["all"]), ("sex", ["female", "male"]), ("age_band", ["<40", "40-59", ">=60"]),
                        ("bmi_band", ["<18.5", "18.5-<25", "25-<30", ">=30"]), ("work_status", ["employed", "not employed"])):
        for lv in levels:
            for m, e in (("c_for_benefit", 0.56), ("calibration_slope_for_benefit", 0.95), ("citl_for_benefit", 0.2),
                         ("outcome_citl", 0.1), ("outcome_slope", 1.0), ("outcome_r2", 0.4)):
                rows.append({"task": "pain__short", "subgroup_variable": var, "subgroup_level": lv, "metric": m,
                             "estimate": e, "ci_low": e - 0.1, "ci_high": e + 0.1, "n": 123, "n_trials": 6})
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return make_report(tmp_path / "report")


# ----------------------------------------------------------------------------- MCT v0.0.2 (no network)
# The structure of model_card_toolkit/schema/v0.0.2/model_card.schema.json, written out as a
# minimal JSON schema: the top level admits only its five keys.
_STR, _NUM = {"type": "string"}, {"type": "number"}
_DESC = {"type": "object", "properties": {"description": _STR}}
MCT_V002 = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "schema_version": _STR,
        "model_details": {"type": "object", "properties": {
            "name": _STR, "overview": _STR, "documentation": _STR,
            "owners": {"type": "array", "items": {"type": "object", "properties": {"name": _STR, "contact": _STR}}},
            "version": {"type": "object", "properties": {"name": _STR, "date": {"type": "string", "format": "date"}, "diff": _STR}},
            "licenses": {"type": "array", "items": {"type": "object", "properties": {"identifier": _STR, "custom_text": _STR},
                                                    "oneOf": [{"required": ["identifier"]}, {"required": ["custom_text"]}]}},
            "references": {"type": "array", "items": {"type": "object", "properties": {"reference": _STR}}},
            "citations": {"type": "array", "items": {"type": "object", "properties": {"style": _STR, "citation": _STR}}}}},
        "model_parameters": {"type": "object", "properties": {
            "model_architecture": _STR, "input_format": _STR, "output_format": _STR,
            "data": {"type": "array", "items": {"type": "object", "properties": {
                "name": _STR, "link": _STR, "description": _STR,
                "sensitive": {"type": "object", "properties": {"sensitive_data": {"type": "array", "items": _STR}}}}}}}},
        "quantitative_analysis": {"type": "object", "properties": {
            "performance_metrics": {"type": "array", "items": {"type": "object", "properties": {
                "type": _STR, "value": _NUM, "slice": _STR}}},
            "graphics": {"type": "object", "properties": {"description": _STR, "collection": {
                "type": "array", "items": {"type": "object", "properties": {"name": _STR, "image": _STR}}}}}}},
        "considerations": {"type": "object", "properties": {
            "users": {"type": "array", "items": _DESC}, "use_cases": {"type": "array", "items": _DESC},
            "limitations": {"type": "array", "items": _DESC}, "tradeoffs": {"type": "array", "items": _DESC},
            "ethical_considerations": {"type": "array", "items": {"type": "object", "properties": {
                "name": _STR, "mitigation_strategy": _STR}}}}},
    },
}


def check_schema(v, s, path="$") -> list[str]:
    """A minimal JSON-schema (draft-07 subset) validator: type, properties, additionalProperties,
    items, required, oneOf, format=date."""
    errs = []
    t = s.get("type")
    ok = {"object": isinstance(v, dict), "array": isinstance(v, list), "string": isinstance(v, str),
          "number": isinstance(v, (int, float)) and not isinstance(v, bool), None: True}[t]
    if not ok:
        return [f"{path}: not {t}"]
    if t == "string" and s.get("format") == "date":
        try:
            pd.Timestamp(v)
            assert len(v) == 10
        except Exception:  # noqa: BLE001
            errs.append(f"{path}: not a date")
    if isinstance(v, dict):
        props = s.get("properties", {})
        for k, sub in v.items():
            if k in props:
                errs += check_schema(sub, props[k], f"{path}.{k}")
            elif s.get("additionalProperties") is False:
                errs.append(f"{path}: additional property {k}")
        for k in s.get("required", []):
            if k not in v:
                errs.append(f"{path}: missing {k}")
        if "oneOf" in s and sum(not check_schema(v, {**alt, "type": "object"}, path) for alt in s["oneOf"]) != 1:
            errs.append(f"{path}: oneOf failed")
    if isinstance(v, list) and "items" in s:
        for i, x in enumerate(v):
            errs += check_schema(x, s["items"], f"{path}[{i}]")
    return errs


# ----------------------------------------------------------------------------- tests: the card
def test_card_sections_banner_and_schema(report: Path):
    card = build_card(report, make_manifest())
    assert isinstance(card, Card)
    lines = card.markdown.splitlines()
    assert "SYNTHETIC" in lines[0] and "NOT FOR CLINICAL USE" in lines[0]
    for n, (sid, title) in enumerate(SECTION_ORDER, start=1):
        assert f"## {n}. {title}" in card.markdown, sid
    ext = card.json["extensions"]
    assert list(ext["lbp_benefit"]["section_order"]) == SECTION_IDS
    assert set(ext["lbp_benefit"]["sections"]) == set(SECTION_IDS) - {"tripod_ai", "hti1"}
    assert ext["tripod_ai"]["items"] and ext["onc_hti1"]["attributes"]
    assert card.json["synthetic"] is True and "NOT FOR CLINICAL USE" in card.json["notice"]
    mc = card.json["model_card"]
    assert mc["model_details"]["overview"].startswith("SYNTHETIC — NOT FOR CLINICAL USE")
    assert check_schema(mc, MCT_V002) == [] and validate_mct_v002(mc) == []
    assert mc["schema_version"] == "0.0.2" and mc["model_details"]["version"]["date"] == "2025-03-04"
    assert check_schema({**mc, "x": 1}, MCT_V002) and validate_mct_v002({**mc, "x": 1})
    json.dumps(card.json, allow_nan=False)  # strictly JSON-able (no NaN)
    # performance with CIs and heterogeneity, selection caveat for a stack, sparse class
    perf = ext["lbp_benefit"]["sections"]["performance"]["tasks"]
    assert set(perf) == set(IECV) and perf["pain__short"]["headline_learner"] == "effect_model"
    assert "0.550 (0.520 to 0.580)" in card.markdown and "0.490 to 0.610" in card.markdown
    assert "this run did not compute the stack's own held-out performance" in card.markdown  # no "stacked" rows
    assert "pain__moderate" in card.markdown.split("Not cross-validated by trial")[1]
    assert "usual_care" in ext["lbp_benefit"]["sections"]["training_data"]["sparse_comparators"]
    # modifier interaction from the summary (benefit = -coef for a continuous outcome)
    mods = {m["name"]: m for m in ext["lbp_benefit"]["sections"]["modifiers"]["modifiers"]}
    assert mods["heavy_physical_work"]["effect_model_interaction"]["linear"]["benefit_per_sd"] == -1.3
    assert mods["heavy_physical_work"]["trials_collecting"] == 3
    assert {"baseline_pain", "baseline_function"} <= set(mods)
    # seed-paper limitations, attributed
    assert "Named by the seed paper" in card.markdown and "inconsistent availability" in card.markdown.lower()


def test_figures_copied_or_redrawn(tmp_path: Path):
    report = make_report(tmp_path / "r", plots_for=("global_recovery__short",))
    card = build_card(report, make_manifest())
    from training.synthetic_label import label_png

    # copied from the run (then labelled: a synthetic model's figures all carry the synthetic band)
    assert card.figures["global_recovery__short__iecv_forest.png"] == label_png(run_plot("iecv_forest"))
    for name in ("pain__short__benefit_calibration.png", "pain__short__iecv_forest.png"):
        assert card.figures[name].startswith(PNG)  # redrawn from the CSVs
        assert f"]({name})" in card.markdown
    names = [g["name"] for g in card.json["model_card"]["quantitative_analysis"]["graphics"]["collection"]]
    assert sorted(names) == sorted(card.figures)
    prefixed = build_card(report, make_manifest(), figure_prefix="card/")
    assert "](card/pain__short__iecv_forest.png)" in prefixed.markdown


def test_deterministic_except_created(report: Path):
    a = build_card(report, make_manifest())
    b = build_card(report, make_manifest())
    assert a.markdown == b.markdown and a.json == b.json and a.figures == b.figures
    m = make_manifest()
    m["created"] = "2026-01-01T00:00:00Z"
    c = build_card(report, m)
    diff = [(x, y) for x, y in zip(a.markdown.splitlines(), c.markdown.splitlines()) if x != y]
    assert len(diff) == 1 and "2025-03-04T05:06:07Z" in diff[0][0]
    assert c.figures == a.figures


def test_hti1_has_31_attributes(report: Path):
    card = build_card(report, make_manifest())
    attrs = card.json["extensions"]["onc_hti1"]["attributes"]
    assert [a["number"] for a in attrs] == list(range(1, 32))
    assert len({a["category"] for a in attrs}) == 9
    assert all(a["answer"] and a["status"] == "answered" and a["section"] in SECTION_IDS for a in attrs)
    by = {a["number"]: a for a in attrs}
    # synthetic default: the owner's statements say plainly what is true (no external validation, no funding)
    assert all("None has been done" in by[k]["answer"] for k in (17, 19, 20, 23, 24))
    assert by[2]["answer"].startswith("None.") and "issue tracker" in by[1]["answer"]
    assert "0.550" in by[21]["answer"] and "not computed" in by[22]["answer"]
    assert "female: sex" in by[12]["answer"] and "race" in by[12]["answer"]
    sec = next(n for n, (sid, _) in enumerate(SECTION_ORDER, start=1) if sid == "hti1")
    md_rows = [ln for ln in card.markdown.split(f"## {sec}.")[1].split(f"## {sec + 1}.")[0].splitlines()
               if ln.startswith("| ") and ln[2].isdigit()]
    assert len(md_rows) == 31
    real = build_card(make_report(report.parent / "real", synthetic=False), make_manifest(synthetic=False))
    rb = {a["number"]: a for a in real.json["extensions"]["onc_hti1"]["attributes"]}
    assert rb[17]["status"] == "not_stated" and "Not stated by the model owner" in rb[17]["answer"]


def test_tripod_items(report: Path):
    card = build_card(report, make_manifest())
    items = card.json["extensions"]["tripod_ai"]["items"]
    assert {"3b", "6c", "12d", "23a", "23b", "26", "27a"} <= {i["item"] for i in items}
    assert all(i["section"] in SECTION_IDS and i["answer"] for i in items)


def test_real_model_has_no_synthetic_banner(tmp_path: Path):
    card = build_card(make_report(tmp_path / "r", synthetic=False), make_manifest(synthetic=False))
    assert "SYNTHETIC" not in card.markdown.splitlines()[0] and card.json["notice"] is None
    assert card.json["synthetic"] is False
    assert not card.json["model_card"]["model_details"]["overview"].startswith("SYNTHETIC")


def test_missing_optional_files_say_not_available(report: Path):
    for f in ("class_support.csv", "attrition.csv", "covariate_availability.csv", "report.md",
              "pain__short__benefit_calibration.csv"):
        (report / f).unlink()
    for d in ("iecv", "plots", "summaries"):
        shutil.rmtree(report / d)
    m = make_manifest()
    del m["training_data"], m["feature_schema"]
    card = build_card(report, m)
    assert card.figures == {}
    md = card.markdown
    for phrase in ("IECV results: not available", "Figures: not available", "Subgroup performance: not available",
                   "Attrition: not available", "Covariate availability and missingness: not available",
                   "Comparator support per task: not available", "Feature schema: not available"):
        assert phrase in md, phrase
    assert validate_mct_v002(card.json["model_card"]) == []
    assert len(card.json["extensions"]["onc_hti1"]["attributes"]) == 31


def test_missing_required_inputs_fail_clearly(report: Path, tmp_path: Path):
    with pytest.raises(LbpError, match="model_id"):
        build_card(report, {k: v for k, v in make_manifest().items() if k != "model_id"})
    m = make_manifest()
    del m["synthetic"]
    run = json.loads((report / "run.json").read_text())
    del run["synthetic"]
    (report / "run.json").write_text(json.dumps(run))
    with pytest.raises(LbpError, match="synthetic"):
        build_card(report, m)
    (report / "run.json").unlink()
    with pytest.raises(LbpError, match="run.json"):
        build_card(report, make_manifest())
    with pytest.raises(LbpError, match="not found"):
        build_card(tmp_path / "nope", make_manifest())
    r2 = make_report(tmp_path / "r2")
    (r2 / "iecv" / "pain__short" / "pooled.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(LbpError, match="pooled.csv"):
        build_card(r2, make_manifest())
    m2 = make_manifest(synthetic=False)  # run.json says synthetic
    with pytest.raises(LbpError, match="disagree"):
        build_card(make_report(tmp_path / "r3"), m2)


def test_subgroup_csv_rendered(tmp_path: Path):
    card = build_card(make_report(tmp_path / "r", subgroups=True), make_manifest())
    sec = card.markdown.split("## 9.")[1].split("## 10.")[0]
    for lv in ("female", "male", "<40", "40-59", ">=60", "<18.5", "18.5-<25", "25-<30", ">=30", "employed", "not employed"):
        assert f"| {lv} |" in sec, lv
    assert "0.56 (0.46 to 0.66)" in sec and "123 / 6" in sec
    assert card.figures["pain__short__subgroups.png"].startswith(PNG)
    hti = {a["number"]: a for a in card.json["extensions"]["onc_hti1"]["attributes"]}
    assert hti[22]["status"] == "answered" and hti[13]["status"] == "answered"
    assert any(p["slice"].startswith("pain__short: sex=") for p in card.json["model_card"]["quantitative_analysis"]["performance_metrics"])


# ----------------------------------------------------------------------------- subgroup performance
def held_out_known(reverse: bool = False) -> pd.DataFrame:
    """Noiseless continuous data: y = trial level - treat * b (higher = worse), predicted benefit = b
    exactly, predicted own-arm outcome = y exactly. Known answers within every subgroup:
    c-for-benefit 1 (0 if reversed), calibration slope for benefit 1 (-1 if reversed), citl 0
    (not reversed), outcome citl 0, slope 1, R^2 1."""
    rng = np.random.default_rng(3)
    rows = []
    ages = [25, 39.9, 40, 59.9, 60, 75]
    bmis = [17, 18.5, 22, 25, 29.9, 30, 35, np.nan]
    for k, tr in enumerate(["A", "B", "C"]):
        n = 240
        for i in range(n):
            b = 2 + 3 * rng.random() + 0.001 * i
            t = i % 2
            y = 50 + 5 * k - t * b
            rows.append({"trial": tr, "treat": t, "y": y, "outcome_type": "continuous", "benefit": -b if reverse else b,
                         "expected_own": y, "female": (i // 2) % 2, "age": ages[(i // 2) % 6],
                         "bmi": bmis[(i // 4) % 8], "employed": (i // 12) % 2, "task": "pain__short"})
    return pd.DataFrame(rows)


def test_subgroup_performance_known_answer():
    h = held_out_known()
    sp = subgroup_performance(h, n_boot=0, seed=1)
    assert list(sp.columns) == COLUMNS
    levels = sp.drop_duplicates(["subgroup_variable", "subgroup_level"])
    n = {(r.subgroup_variable, r.subgroup_level): r.n for r in levels.itertuples()}
    assert n[("all", "all")] == 720 and n[("sex", "female")] == 360 and n[("sex", "male")] == 360
    assert n[("age_band", "<40")] == 240 and n[("age_band", "40-59")] == 240 and n[("age_band", ">=60")] == 240
    # bmi: 8 values (the last NaN, excluded) in blocks of 4 rows, 60 blocks per trial: values 0-3 in 8
    # blocks, 4-7 in 7; bands are half-open: 18.5 -> '18.5-<25', 25 -> '25-<30', 30 -> '>=30'
    assert n[("bmi_band", "<18.5")] == 96 and n[("bmi_band", "18.5-<25")] == 192
    assert n[("bmi_band", "25-<30")] == 180 and n[("bmi_band", ">=30")] == 168
    assert n[("work_status", "employed")] == 360 and set(levels["n_trials"]) == {3}
    est = sp.set_index(["subgroup_variable", "subgroup_level", "metric"])["estimate"]
    for var, lv in n:
        assert est[(var, lv, "c_for_benefit")] == pytest.approx(1.0)
        assert est[(var, lv, "calibration_slope_for_benefit")] == pytest.approx(1.0, abs=1e-8)
        assert est[(var, lv, "citl_for_benefit")] == pytest.approx(0.0, abs=1e-8)
        assert est[(var, lv, "outcome_citl")] == pytest.approx(0.0, abs=1e-8)
        assert est[(var, lv, "outcome_slope")] == pytest.approx(1.0, abs=1e-8)
        assert est[(var, lv, "outcome_r2")] == pytest.approx(1.0, abs=1e-8)
    rev = subgroup_performance(held_out_known(reverse=True), n_boot=0, include_overall=False).set_index(
        ["subgroup_variable", "subgroup_level", "metric"])["estimate"]
    assert rev[("sex", "female", "c_for_benefit")] == pytest.approx(0.0)
    assert rev[("sex", "female", "calibration_slope_for_benefit")] == pytest.approx(-1.0, abs=1e-8)
    one = h[h["female"] == 1]
    a, b = (subgroup_performance(one, n_boot=5, seed=2) for _ in range(2))
    assert a.equals(b) and a["ci_low"].notna().any()  # deterministic, with bootstrap CIs


def test_subgroup_performance_edge_cases():
    h = held_out_known()
    small = subgroup_performance(h[h["trial"] == "A"].head(12), n_boot=0)  # too few pairs: empty estimates, no crash
    assert small.loc[small["metric"] == "c_for_benefit", "estimate"].isna().all()
    assert (small["n"] >= 0).all()
    b = h.copy()
    b["outcome_type"] = "binary"
    rng = np.random.default_rng(0)
    b["y"] = (rng.random(len(b)) < 0.4 + 0.1 * b["treat"]).astype(float)
    b["benefit"] = 0.05 + 0.1 * rng.random(len(b))
    b["expected_own"] = 0.4 + 0.1 * b["treat"]
    sb = subgroup_performance(b.drop(columns=["bmi"]), n_boot=0)
    assert "outcome_c_statistic" in set(sb["metric"]) and "bmi_band" not in set(sb["subgroup_variable"])
    with pytest.raises(LbpError, match="benefit"):
        subgroup_performance(h.drop(columns=["benefit"]))
    with pytest.raises(LbpError, match="learner"):
        subgroup_performance(pd.concat([h.assign(learner="a"), h.assign(learner="b")]))


# ----------------------------------------------------------------------------- `card --model`
def test_card_command_on_artifact(report: Path, tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from lbp_benefit import cmd_card
    from predict.artifact import write_artifact

    files = {f"report/{p.relative_to(report).as_posix()}": p.read_bytes() for p in sorted(report.rglob("*")) if p.is_file()}
    art = write_artifact(tmp_path / "model", make_manifest(), files)
    app = typer.Typer()
    app.command("card")(cmd_card.card)
    app.command("noop")(lambda: None)  # keep 'card' a subcommand
    r = CliRunner().invoke(app, ["card", "--model", str(art)])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].startswith("**SYNTHETIC — NOT FOR CLINICAL USE.**")
    out = tmp_path / "cardout"
    r = CliRunner().invoke(app, ["card", "--model", str(art), "--out", str(out)])
    assert r.exit_code == 0, r.output
    js = json.loads((out / "card.json").read_text("utf-8"))
    assert validate_mct_v002(js["model_card"]) == [] and (out / "pain__short__iecv_forest.png").is_file()
    from predict.artifact import load_artifact

    # the same card as built directly from the manifest as the artifact reads it (an older format is
    # migrated on reading, so the card states the schema version it was read as)
    read = {k: v for k, v in load_artifact(art).manifest.items() if k != "files"}
    direct = build_card(report, read)
    assert (out / "card.md").read_text("utf-8") == direct.markdown
    assert (out / "card.chai.xml").is_file()
    r = CliRunner().invoke(app, ["card", "--model", str(art), "--format", "chai-xml"])
    assert r.exit_code == 0 and r.output.startswith('<?xml version="1.0"') and "<AppliedModelCard" in r.output
    r = CliRunner().invoke(app, ["card", "--model", str(art), "--format", "pdf"])
    assert r.exit_code != 0
    # a tampered artifact is refused before any card is built
    (art / "report" / "run.json").write_text("{}")
    from predict.artifact import ArtifactError

    with pytest.raises(ArtifactError, match="SHA-256"):
        cmd_card.card_from_artifact(art)


def test_write_card(tmp_path: Path, report: Path):
    card = build_card(report, make_manifest())
    paths = write_card(card, tmp_path / "o")
    assert {p.name for p in paths} == {"card.md", "card.json", "card.chai.xml"} | set(card.figures)
