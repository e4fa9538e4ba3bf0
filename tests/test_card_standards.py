"""The model card against the standards and against the model: CHAI Applied Model Card v0.2 XML
valid against the official XSD; every ONC HTI-1 source attribute and every TRIPOD+AI item answered,
with where; every output the card says has an interval has one; and the same smallest-worthwhile
verdict for the same patient from the API, the calculator's endpoint, the CDS card and the card's
own rule."""
from __future__ import annotations

import math
import re
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from predict import Scorer
from predict import verdict as verdicts
from training.cards import build_card
from training.cards import chai
from training.cards.content import SECTION_IDS, SECTION_ORDER

# ONC HTI-1, 45 CFR 170.315(b)(11)(iv)(B): the 31 source attributes, listed here independently of the card code
HTI1 = {
    1: "developer name and contact", 2: "funding source", 3: "output value", 4: "output type",
    5: "intended use", 6: "intended patient population", 7: "intended users", 8: "decision-making role",
    9: "cautioned out-of-scope use", 10: "known risks and limitations", 11: "training inclusion/exclusion criteria",
    12: "use of demographic, SDOH and health-status inputs", 13: "demographic representativeness",
    14: "relevance of training data to the deployed setting", 15: "approach to fairness in development",
    16: "approaches to manage bias", 17: "external validation data and setting", 18: "party that tested externally",
    19: "representativeness of external data", 20: "external validation process",
    21: "validity in same-source test data", 22: "fairness in same-source test data",
    23: "validity in external data", 24: "fairness in external data", 25: "evaluation on patient outcomes",
    26: "process and frequency of validity monitoring", 27: "validity in local data",
    28: "process and frequency of fairness monitoring", 29: "fairness in local data",
    30: "update process and frequency", 31: "frequency of correction",
}
# TRIPOD+AI 2024 (Collins et al., BMJ 2024;385:e078378): all 52 items
TRIPOD = ["1", "2", "3a", "3b", "3c", "4", "5a", "5b", "6a", "6b", "6c", "7", "8a", "8b", "8c", "9a", "9b", "9c",
          "10", "11", "12a", "12b", "12c", "12d", "12e", "12f", "12g", "13", "14", "15", "16", "17", "18a", "18b",
          "18c", "18d", "18e", "18f", "19", "20a", "20b", "20c", "21", "22", "23a", "23b", "24", "25", "26", "27a",
          "27b", "27c"]


@pytest.fixture(scope="module")
def card(sm):
    from lbp_benefit.cmd_card import card_from_artifact

    return card_from_artifact(sm.artifact)


def test_chai_xml_validates_against_the_official_xsd(card):
    xml = chai.chai_xml(card.json)
    assert chai.validate(xml) == []
    root = ET.fromstring(xml.split("\n", 2)[2])
    ns = {"mc": chai.NS}
    assert root.find("mc:BasicInfo/mc:ModelName", ns).text.endswith("(synthetic)")
    assert "SYNTHETIC" in xml.splitlines()[1]
    assert "None" in root.find("mc:TrustIngredients/mc:TransparencyInformation/mc:FundingSource", ns).text
    # a broken document is refused by the same validator (the test can fail)
    bad = xml.replace("<ModelDeveloper>", "<ModelAuthor>").replace("</ModelDeveloper>", "</ModelAuthor>")
    assert chai.validate(bad)


def test_xsd_is_the_official_one():
    text = chai.XSD.read_text("utf-8")
    assert 'targetNamespace="https://mc.chai.org/v0.2/schema.xsd"' in text and "Coalition for Health AI" in text


def _where_in_markdown(card, sid: str) -> bool:
    n = SECTION_IDS.index(sid) + 1
    return f"## {n}. {dict(SECTION_ORDER)[sid]}" in card.markdown


def test_every_hti1_attribute_is_answered_with_where(card):
    attrs = {a["number"]: a for a in card.json["extensions"]["onc_hti1"]["attributes"]}
    assert set(attrs) == set(HTI1)
    for num, what in HTI1.items():
        a = attrs[num]
        assert a["status"] == "answered", (num, what, a)
        assert len(a["answer"]) > 20 and "not yet available" not in a["answer"].lower(), (num, what)
        assert a["section"] in SECTION_IDS and _where_in_markdown(card, a["section"]), (num, a["section"])


def test_every_tripod_ai_item_is_answered_with_where(card):
    items = {i["item"]: i for i in card.json["extensions"]["tripod_ai"]["items"]}
    assert list(items) == TRIPOD
    for it in TRIPOD:
        i = items[it]
        assert i["status"] in ("answered", "not_applicable") and len(i["answer"]) > 10, (it, i)
        assert i["section"] in SECTION_IDS and _where_in_markdown(card, i["section"]), it
    table = card.markdown.split("TRIPOD+AI checklist")[2]
    assert all(f"| {it} |" in table for it in TRIPOD)


def test_a_real_model_without_owner_statements_is_not_answered(tmp_path):
    from tests.test_cards import make_manifest, make_report

    real = build_card(make_report(tmp_path / "r", synthetic=False), make_manifest(synthetic=False))
    attrs = real.json["extensions"]["onc_hti1"]["attributes"]
    assert {a["number"] for a in attrs if a["status"] != "answered"} >= {1, 2, 17, 26, 30, 31}


def _get(obj, path: list[str]):
    for p in path:
        obj = obj[p]
    return obj


def test_every_output_the_card_says_has_an_interval_has_one(card, scorer):
    poc = card.json["extensions"]["lbp_benefit"]["sections"]["point_of_care"]
    claims, without = poc["outputs_with_interval"], poc["outputs_without_interval"]
    assert {c["path"] for c in claims} >= {"benefit.ci", "benefit.prediction_interval"}
    patients = [{"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1},
                {"baseline_pain": 30.0, "baseline_function": 70.0}]
    checked = 0
    for comp in scorer.comparators:
        for r in scorer.score(patients, comp):
            for task, o in r["outcomes"].items():
                if not o["available"]:
                    continue
                for c in claims:
                    if task in c["tasks"]:
                        iv = _get(o, c["path"].split("."))
                        assert iv is not None and all(isinstance(x, float) and math.isfinite(x) for x in iv), (comp, task, c)
                        checked += 1
                for c in without:  # what the card says has none: the result says so (never a bare number)
                    if task in c["tasks"] and c["path"].startswith("intervention"):
                        for arm in ("intervention", "comparator"):
                            assert o[arm]["interval"] is not None or o[arm]["interval_note"].startswith("no interval")
    assert checked > 20
    assert set(scorer.manifest["arm_intervals"]) == set(scorer.tasks)
    assert any(c["path"].startswith("top_factors") for c in without)  # point contributions: no interval of their own


def _card_rule_words(card_json: dict, estimate: float, pi: list[float], threshold: float) -> str:
    """The verdict by the rule the model card states (its own levels table), independently computed."""
    poc = card_json["extensions"]["lbp_benefit"]["sections"]["point_of_care"]
    se = (pi[1] - pi[0]) / (2 * 1.959963984540054)
    p = 0.5 * math.erfc(-(estimate - threshold) / se / math.sqrt(2))
    harm = 0.5 * math.erfc(-(-threshold - estimate) / se / math.sqrt(2))  # P(benefit < -threshold)
    u = poc["uncertain"]
    if p >= u["when_both_probabilities_at_least"] and harm >= u["when_both_probabilities_at_least"]:
        return u["words"]
    return next(lv["words"] for lv in poc["levels"] if p >= lv["from_probability"])


def test_api_calculator_cds_and_model_card_give_the_same_verdict(scorer, card):
    from serving.app import create_app
    from serving.cds.cards import prediction_card
    from serving.cds.fhir_map import MapResult
    from serving.settings import ServingSettings

    patient = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1}
    settings = ServingSettings(model_path=None, api_keys="", allow_unauthenticated=False, warmup=False)
    with TestClient(create_app(scorer, settings), client=("127.0.0.1", 5000)) as c:
        api = c.post("/v1/score", json={"patient": patient, "comparator": "usual_care"}).json()["result"]
        calc = c.post("/calculator/score", json={"patient": patient, "comparator": "usual_care"}).json()["result"]
    results = {comp: scorer.score([patient], comp)[0] for comp in ("usual_care", "no_treatment")}
    cds = prediction_card(results, ["usual_care", "no_treatment"], MapResult(inputs=patient, used=[], findings=[], missing=[]),
                          {}, {"label": "m", "url": "http://127.0.0.1/card"}, True, "synthetic")
    seen = 0
    for task, o in api["outcomes"].items():
        if o["verdict"] is None:
            continue
        words = o["verdict"]["words"]
        assert calc["outcomes"][task]["verdict"] == o["verdict"]
        b = o["benefit"]
        assert _card_rule_words(card.json, b["estimate"], b["prediction_interval"], o["smallest_worthwhile"]["threshold"]) == words
        name = f"{o['outcome']} (0-100)"
        line = next(ln for ln in cds["detail"].split("**vs usual care**")[1].splitlines() if ln.startswith(f"- {name}, "))
        assert (f"**{words}**: the model cannot tell" if words == "uncertain" else f"**{words}** to clear it") in line
        assert f"({verdicts.probability_words(o['verdict'])})" in line  # model-based, never 0% or 100%
        seen += 1
    assert seen >= 2


def test_every_figure_of_a_synthetic_model_carries_the_label(card, sm, tmp_path):
    from training.synthetic_label import is_labelled, label_png

    assert card.figures and all(is_labelled(png) for png in card.figures.values())
    plots = sorted((sm.run / "plots").glob("*.png"))
    assert plots and all(is_labelled(p.read_bytes()) for p in plots)
    once = next(iter(card.figures.values()))
    assert label_png(once) is once  # never labelled twice


def test_a_real_model_card_has_unlabelled_figures(tmp_path):
    from tests.test_cards import make_manifest, make_report
    from training.synthetic_label import is_labelled

    real = build_card(make_report(tmp_path / "r", synthetic=False), make_manifest(synthetic=False))
    assert real.figures and not any(is_labelled(p) for p in real.figures.values())


def test_metric_interpretation_reads_the_interval():
    from training.cards.interpret import MEANING, interpret

    assert "cannot be told apart from chance" in interpret("c_for_benefit", 0.53, 0.49, 0.57)
    assert "weak ranking" in interpret("c_for_benefit", 0.53, 0.51, 0.56)
    assert "too large" in interpret("calibration_slope_for_benefit", 0.30, 0.1, 0.5)
    assert "too large by about 1.5 outcome" in interpret("citl_for_benefit", -1.5, -2.5, -0.5)
    assert "includes 0" in interpret("citl_for_benefit", -0.45, -2.4, 1.5)
    assert interpret("c_for_benefit", float("nan")) is None and interpret("unknown", 1.0) is None
    assert all(interpret(m, 0.7, 0.6, 0.8) for m in MEANING)


def test_owner_file_feeds_the_card_and_bad_files_are_named(tmp_path):
    import yaml

    from predict.errors import LbpError
    from tests.test_cards import make_manifest, make_report
    from training.cards.owner import DEFAULT, load_owner

    data = yaml.safe_load(DEFAULT.read_text("utf-8"))
    data["funding"] = "Grant XYZ-123 from the Example Health Fund"
    f = tmp_path / "owner.yaml"
    f.write_text(yaml.safe_dump(data), "utf-8")
    real = build_card(make_report(tmp_path / "r", synthetic=False), make_manifest(synthetic=False), owner=load_owner(f))
    attrs = {a["number"]: a for a in real.json["extensions"]["onc_hti1"]["attributes"]}
    assert attrs[2]["answer"].startswith("Grant XYZ-123") and all(a["status"] == "answered" for a in attrs.values())
    assert "Grant XYZ-123" in chai.chai_xml(real.json) and chai.validate(chai.chai_xml(real.json)) == []
    del data["funding"]
    f.write_text(yaml.safe_dump({**data, "extra": "x"}), "utf-8")
    with pytest.raises(LbpError, match="unknown key.*extra"):
        load_owner(f)
    f.write_text(yaml.safe_dump(data), "utf-8")
    with pytest.raises(LbpError, match="funding"):
        load_owner(f)


def test_cds_card_shows_every_comparators_warnings_and_absolute_risks(scorer):
    from serving.cds.cards import prediction_card
    from serving.cds.fhir_map import MapResult

    patient = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1}
    comps = list(scorer.comparators)[:3]
    results = {c: scorer.score([patient], c)[0] for c in comps}
    results[comps[-1]]["warnings"].append("few trials compared exercise with X (1 trials, 40 participants)")
    card = prediction_card(results, comps, MapResult(inputs=patient, used=[], findings=[], missing=[]), {},
                           {"label": "m", "url": "http://127.0.0.1/card"}, True, "synthetic")
    d = card["detail"]
    blocks = d.split("**vs ")
    last = next(b for b in blocks if b.startswith(comps[-1].replace("_", " ")) or b.startswith("other conservative"))
    assert "warning: few trials compared exercise with X" in last
    assert "effect modifiers were not entered" in d  # heavy imputation (14 of 17 not entered)
    rec = next(o for o in results[comps[0]]["outcomes"].values() if o["outcome"] == "global_recovery" and o["available"])
    assert f"{100 * rec['intervention']['expected']:.0f} of 100" in d and "per 100" in d and not re.search(r"[+-]\d+% \(95% CI", d)
    assert "**Why**, from the inputs that were entered" in d
