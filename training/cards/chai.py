"""The CHAI Applied Model Card (v0.2) as XML, generated from a built card's JSON, and validated
against the official XSD shipped in ``training/cards/schemas/`` (coalition-for-health-ai/mc-schema,
v0.2/schema.xsd, commit 1c773606f1b5, 2025-10-28; CHAI licence in ``schemas/CHAI-LICENSE``).

The XSD imports the W3C XML-Signature schema by URL; validation maps that namespace to the copy
bundled with ``xmlschema`` and allows local files only, so nothing is fetched from the network.
"""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from predict.errors import LbpError
from training.cards.interpret import interpret

NS = "https://mc.chai.org/v0.2/schema.xsd"
XSD = Path(__file__).with_name("schemas") / "chai-applied-model-card-v0.2.xsd"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

def _el(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    e = ET.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        e.text = text
    return e


def _lines(items) -> str:
    return "\n".join(f"- {x}" for x in items)


def _metric_block(parent: ET.Element, tag: str, goal: str, results: list[tuple[str, dict]], interpretation: str,
                  test_type: str, data: str, process: str) -> None:
    b = _el(parent, tag)
    _el(b, "MetricGoal", goal)
    r = _el(b, "Results")
    if not results:
        results = [("no result", {"kind": "none", "reason": "not computed for this model"})]
    for label, value in results:
        mr = _el(r, "MetricResult")
        _el(mr, "Label", label)
        _el(mr, "ValueJson", json.dumps(value, sort_keys=True))
    _el(b, "Interpretation", interpretation)
    _el(b, "TestType", test_type)
    _el(b, "TestingDataDescription", data)
    _el(b, "ValidationProcessAndJustification", process)


def chai_xml(card_json: dict) -> str:
    """The CHAI Applied Model Card v0.2 XML of a built card (``Card.json``)."""
    ext = card_json["extensions"]
    sec = ext["lbp_benefit"]["sections"]
    org = sec["organisation"]
    md, iu, poc = sec["model_details"], sec["intended_use"], sec["point_of_care"]
    perf = sec["performance"]
    hti = {a["number"]: a for a in ext["onc_hti1"]["attributes"]}
    syn = bool(card_json.get("synthetic"))
    tag = "SYNTHETIC (simulated training data; not for clinical use). " if syn else ""
    ET.register_namespace("", NS)
    root = ET.Element(f"{{{NS}}}AppliedModelCard")
    b = _el(root, "BasicInfo")
    _el(b, "ModelName", f"lbp-benefit {md['model_id']}" + (" (synthetic)" if syn else ""))
    _el(b, "ModelDeveloper", org["developer"])
    _el(b, "DeveloperContact", org["developer_contact"])
    r = _el(root, "ReleaseInfo")
    _el(r, "ReleaseStage", org["release_stage"])
    _el(r, "ReleaseDate", str(md.get("created") or ""))
    _el(r, "ReleaseVersion", f"{md['model_id']} (lbp-benefit {md.get('package_version')})")
    _el(r, "GlobalAvailability", org["global_availability"])
    ehr = _el(r, "EHRCompatibility")
    _el(ehr, "EHR", org["ehr_compatibility"])
    _el(r, "RegulatoryApproval", org["regulatory_approval"])
    s = _el(root, "ModelSummary")
    overview = card_json["model_card"]["model_details"]["overview"]
    _el(s, "Summary", (tag if not overview.startswith("SYNTHETIC") else "") + overview)
    kw = _el(s, "Keywords")
    for k in md.get("study_keywords") or ("low back pain", "exercise therapy", "individual treatment benefit",
                                          "IPD meta-analysis", "prediction interval"):
        _el(kw, "Keyword", k)
    u = _el(root, "UsesAndDirections")
    _el(u, "IntendedUseAndWorkflow", tag + _lines(iu["uses"]) + "\nRole: informs clinical management (never orders).")
    _el(u, "PrimaryIntendedUsers", _lines(iu["users"]))
    _el(u, "HowToUse", ("Enter the outcomes' baseline scores and any patient characteristics you know "
                        if md.get("study_keywords") else "Enter the baseline pain and function scores and any patient "
                        "characteristics you know ")
        + "(web calculator, HTTP API or CDS Hooks card). Read every number with its intervals: "
        + poc["interval_labels"]["ci"] + "; " + poc["interval_labels"]["prediction_interval"] + ". "
        + "The smallest-worthwhile verdict: " + poc["verdict_definition"] + ". Explanations come from entered "
        "inputs only; imputed inputs are listed apart.")
    _el(u, "TargetedPatientPopulation", hti[6]["answer"])
    _el(u, "CautionedOutOfScopeSettings", hti[9]["answer"])
    w = _el(root, "Warnings")
    _el(w, "KnownRisksAndLimitations", tag + hti[10]["answer"])
    _el(w, "KnownBiasesOrEthicalConsiderations", _lines(f"{e['name']}: {e['mitigation_strategy']}" for e in sec["ethics"]))
    _el(w, "ClinicalRiskLevel", org["clinical_risk_level"])
    ti = _el(root, "TrustIngredients")
    af = _el(ti, "AISystemFacts")
    _el(af, "OutcomesAndOutputs", hti[3]["answer"])
    _el(af, "ModelType", "Individual treatment-benefit learners (linear effect model, LightGBM T/X/DR learners, "
        "stacking) and a one-stage IPD network model; selected per outcome and follow-up: "
        + "; ".join(f"{t}: {v.get('model') or v.get('status')}" for t, v in sorted(md["selected_by_task"].items())))
    _el(af, "InputDataSource", hti[11]["answer"])
    _el(af, "OutputAndInputDataTypes", ("Inputs: the outcomes' baseline scores where the study has them (0-100) and "
        "optional patient " if md.get("study_keywords") else "Inputs: baseline pain and function (0-100, required) "
        "and optional patient ")
        + "characteristics (structured numbers and categories; " + hti[12]["answer"] + "). Outputs: numbers with "
        "95% intervals and verdict words (JSON, HTML, CDS Hooks cards).")
    _el(af, "DevelopmentDataCharacterization", hti[13]["answer"])
    _el(af, "BiasMitigationApproaches", hti[16]["answer"] + " " + hti[15]["answer"])
    _el(af, "OngoingMaintenance", "Monitoring: " + org["monitoring_plan"] + ". Updates: " + org["update_plan"]
        + ". Correction: " + org["correction_frequency"] + ".")
    _el(af, "Security", org["security"])
    _el(af, "Transparency", "Open source (Apache-2.0); the artifact holds the full model as plain JSON and LightGBM "
        "text; this card is generated from the artifact (`lbp-benefit card --format chai-xml`).")
    tr = _el(ti, "TransparencyInformation")
    _el(tr, "FundingSource", org["funding"])
    _el(tr, "ThirdPartyInformation", "Python packages listed in the project's pyproject.toml (numpy, pandas, "
        "LightGBM, FastAPI …); no third-party model or data service.")
    _el(tr, "StakeholdersConsulted", org["stakeholders_consulted"])
    km = _el(root, "KeyMetrics")
    results, meaning = [], []
    for task, d in sorted((perf.get("tasks") or {}).items()):
        lr = d["headline_learner"]
        for row in d["pooled"] or []:
            if row["learner"] != lr or row["metric"] not in ("c_for_benefit", "calibration_slope_for_benefit") \
                    or interpret(row["metric"], row["estimate"]) is None:
                continue
            results.append((f"{task} {row['metric']} ({lr})", {"kind": "interval", "value": row["estimate"],
                            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "level": 0.95}))
            meaning.append(f"{task}: " + interpret(row["metric"], row["estimate"], row["ci_low"], row["ci_high"]))
    no = perf.get("tasks_without_iecv") or []
    process = ("Internal-external cross-validation: each trial held out in turn, the whole pipeline refitted on the "
               "others, per-trial metrics pooled by random effects." + (f" Not run for {', '.join(no)}." if no else ""))
    _metric_block(km, "UsefulnessUsabilityEfficacy", "Rank and size individual benefit correctly in trials not used "
                  "for fitting (c-for-benefit above 0.5, calibration slope for benefit near 1).", results,
                  "; ".join(meaning) or "No cross-validated results for this model.",
                  "Internal-external cross-validation by trial", hti[21]["answer"], process)
    _metric_block(km, "FairnessEquity", "Similar benefit discrimination and calibration across sex, age, BMI and "
                  "work status.", [], hti[22]["answer"], "Subgroup performance on held-out predictions",
                  hti[13]["answer"], "Subgroups of the IECV held-out participants; see the card's subgroup section.")
    _metric_block(km, "SafetyReliability", "Never more certain than the model is: every output with its interval, "
                  "verdicts from the predictive distribution.", [
                      ("outputs with an interval", {"kind": "list", "value": [
                          f"{c['path']} ({', '.join(c['tasks'])})" for c in poc["outputs_with_interval"]]}),
                      ("outputs without an interval (said so)", {"kind": "list", "value": [
                          f"{c['path']} ({', '.join(c['tasks'])})" for c in poc["outputs_without_interval"]]})],
                  "Tested in the software's test suite: every output the card lists as having an interval has one.",
                  "Software tests", "Scored test patients", "Automated tests on every change.")
    res = _el(root, "Resources")
    _el(res, "EvaluationReferences", "Model card section 'IECV performance'; docs/metrics.md")
    _el(res, "ClinicalTrial", org["registration"])
    own = bool(md.get("study_keywords"))  # a user's study: not the default study's seed paper
    _el(res, "PeerReviewedPublications", ("" if own else "Seed IPD meta-analysis protocol: "
                                          "https://doi.org/10.1186/2046-4053-1-64; ") + "TRIPOD+AI: https://doi.org/10.1136/bmj-2023-078378; c-for-benefit: https://arxiv.org/abs/1810.03993")
    _el(res, "ReimbursementStatus", org["reimbursement"])
    _el(res, "PatientConsentOrDisclosure", org["patient_consent_or_disclosure"])
    _el(root, "Bibliography", ("" if own else "@article{hayden2012protocol, doi={10.1186/2046-4053-1-64}}\n")
        + "@article{collins2024tripodai, title={TRIPOD+AI statement}, journal={BMJ}, volume={385}, pages={e078378}, "
        "year={2024}, doi={10.1136/bmj-2023-078378}}")
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if syn:
        head += "<!-- SYNTHETIC model: trained on simulated data, not for clinical use. -->\n"
    return head + xml + "\n"


def _schema():
    import xmlschema

    dsig = Path(xmlschema.__file__).parent / "schemas" / "DSIG" / "xmldsig-core-schema.xsd"
    return xmlschema.XMLSchema(str(XSD), allow="local", locations={DSIG_NS: str(dsig)})


def validate(xml: str) -> list[str]:
    """Problems of ``xml`` against the CHAI v0.2 XSD (empty if valid)."""
    return [str(e.reason or e) for e in _schema().iter_errors(xml)]


def checked_xml(card_json: dict) -> str:
    xml = chai_xml(card_json)
    problems = validate(xml)
    if problems:  # a bug, not a user error
        raise LbpError("CHAI model card: the generated XML does not validate: " + "; ".join(problems[:3]))
    return xml
