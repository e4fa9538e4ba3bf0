"""The card as JSON.

Layout::

    {
      "card_format": "lbp-benefit-model-card", "card_format_version": "1.0",
      "synthetic": true, "notice": "SYNTHETIC — NOT FOR CLINICAL USE ..." | null,
      "model_card": { ... Google Model Card Toolkit schema v0.0.2 document ... },
      "extensions": {
        "lbp_benefit": {"sections": {<section id>: <data>}, "section_order": [...], ...},
        "tripod_ai":   {"standard": ..., "items": [{item, topic, section, answer}]},
        "onc_hti1":    {"regulation": ..., "attributes": [{number, category, attribute, status, answer}] (31)}
      }
    }

``model_card`` validates unchanged against the Model Card Toolkit (MCT) JSON schema v0.0.2
(``model_card_toolkit/schema/v0.0.2/model_card.schema.json``: top-level ``schema_version``,
``model_details``, ``model_parameters``, ``quantitative_analysis``, ``considerations``, no other
top-level keys). MCT v0.0.2 has no place for confidence intervals (``performance_metrics.value`` is
one number), heterogeneity, TRIPOD+AI or HTI-1, so those live beside it under ``extensions``,
never inside it. Graphics are listed by name (the PNG files beside the card) rather than embedded
as base64, which MCT allows (``image`` is optional).
"""
from __future__ import annotations

from typing import Any

from training.cards import text as T
from training.cards.content import SECTION_IDS, SECTION_ORDER, Section
from training.cards.inputs import CardInputs
from training.cards.study import study_words

CARD_FORMAT = "lbp-benefit-model-card"
CARD_FORMAT_VERSION = "1.0"
MCT_SCHEMA_VERSION = "0.0.2"
MCT_TOP_KEYS = ("schema_version", "model_details", "model_parameters", "quantitative_analysis", "considerations")


def _date(created: Any) -> str | None:
    s = str(created or "")
    return s[:10] if len(s) >= 10 and s[4] == "-" and s[7] == "-" else None


def mct_document(inp: CardInputs, sec: dict[str, Section], figure_names: list[str]) -> dict:
    """The Model Card Toolkit v0.0.2 core."""
    m = inp.manifest
    md = sec["model_details"].data
    W = study_words(m, inp.synthetic)
    overview = ("SYNTHETIC — NOT FOR CLINICAL USE. " if inp.synthetic else "") + W.overview
    version: dict[str, Any] = {"name": str(m.get("package_version") or m.get("model_id"))}
    d = _date(m.get("created"))
    if d:
        version["date"] = d
    if m.get("version_diff"):
        version["diff"] = str(m["version_diff"])
    owner = {"name": str(md["developer"])}
    if md.get("contact"):
        owner["contact"] = str(md["contact"])
    lic = str(md.get("license") or "Apache-2.0")
    arch_lines = []
    for task, how in sorted(md["selected_by_task"].items()):
        if how.get("model"):
            w = how.get("weights")
            arch_lines.append(f"{task}: {how['model']}" + (f" (weights {', '.join(f'{k} {v}' for k, v in w.items())})" if w else ""))
    arch = ("One model per outcome x follow-up. Learners: " + ", ".join(md["learners_fitted"]) + ". Selected: "
            + "; ".join(arch_lines) + ". Trial fixed effects, within-trial interactions, class-specific average "
            "effects with shared effect modification (docs/learners.md).")
    td = sec["training_data"].data
    sens = (["health data of trial participants (pain, function, health status)", "sex", "age", "employment"]
            if W.default else ["health data of trial participants (outcomes and the study's covariates)"])
    data = [{
        "name": "training data (" + ("synthetic, simulator" if inp.synthetic else "pooled trial IPD") + ")",
        "description": f"{td['n_trials']} trials, {td['n_participants']} participants; comparators "
                       f"{', '.join(td['comparators']) or 'not available'}; fingerprint {td.get('fingerprint') or 'not available'}. "
                       "No participant-level data are in the model or this card.",
        "sensitive": {"sensitive_data": sens},
    }]
    if inp.iecv_tasks():
        data.append({"name": "evaluation data (IECV held-out trials)",
                     "description": "Each trial with a comparator arm held out in turn; "
                                    f"tasks {', '.join(inp.iecv_tasks())}."})
    fs_names = [f["name"] for f in sec["modifiers"].data["modifiers"]]
    params = {
        "model_architecture": arch,
        "data": data,
        "input_format": "JSON object of covariates (any subset; missing allowed): " + ", ".join(fs_names),
        "output_format": md["output"],
    }
    metrics = []
    perf = sec["performance"].data.get("tasks", {})
    for task in sorted(perf):
        lr = perf[task]["headline_learner"]
        for r in perf[task]["pooled"]:
            if r.get("learner") != lr or r.get("estimate") is None:
                continue
            metrics.append({"type": f"{r['metric']} (IECV pooled, {lr})", "value": r["estimate"], "slice": task})
    sg = sec["subgroups"].data
    if sg.get("available"):
        for r in sg["rows"]:
            if r.get("estimate") is None or r.get("subgroup_variable") == "all":
                continue
            metrics.append({"type": f"{r['metric']} (IECV held-out, subgroup)", "value": r["estimate"],
                            "slice": f"{r['task']}: {r['subgroup_variable']}={r['subgroup_level']}"})
    qa: dict[str, Any] = {"performance_metrics": metrics}
    if figure_names:
        qa["graphics"] = {"description": "PNG files stored beside this card (card/<name> in the artifact): calibration "
                                         "for benefit, IECV forest plots and subgroup plots.",
                          "collection": [{"name": n} for n in figure_names]}
    lim = sec["limitations"].data
    considerations = {
        "users": [{"description": u} for u in W.intended_users],
        "use_cases": [{"description": u} for u in W.intended_use],
        "limitations": [{"description": f"{W.seed_short} — {d['name']}: {d['description']}"} for d in lim["seed_paper_limitations"]]
                       + [{"description": x} for x in lim["model_limitations"]]
                       + [{"description": "Out of scope: " + x} for x in sec["out_of_scope"].data["items"]],
        "tradeoffs": [{"description": "Flexible learners (tree meta-learners) can capture non-linear modification but are "
                                      "noisier with few trials; selection uses the held-out R-loss and the constant-effect "
                                      "model is always a candidate."},
                      {"description": "Shared effect modification across comparator classes gains precision at the cost of "
                                      "assuming the same modifiers for every comparator."}],
        "ethical_considerations": [dict(x) for x in sec["ethics"].data],
    }
    return {
        "schema_version": MCT_SCHEMA_VERSION,
        "model_details": {
            "name": str(m.get("model_id")),
            "overview": overview,
            "documentation": " ".join(W.intended_use[:2]) + " Methods: " + sec["methods"].data["validation"] + ".",
            "owners": [owner],
            "version": version,
            "licenses": [{"identifier": lic}],
            "references": [{"reference": r} for r in T.REFERENCES if W.default or "2046-4053" not in r],
            "citations": [{"style": "text", "citation": W.seed_paper}] if W.seed_paper else [],
        },
        "model_parameters": params,
        "quantitative_analysis": qa,
        "considerations": considerations,
    }


def card_json(inp: CardInputs, sections: list[Section], figure_names: list[str], notice: str | None) -> dict:
    sec = {s.id: s for s in sections}
    ext_sections = {s.id: s.data for s in sections if s.id not in ("tripod_ai", "hti1")}
    return {
        "card_format": CARD_FORMAT,
        "card_format_version": CARD_FORMAT_VERSION,
        "synthetic": inp.synthetic,
        "notice": _plain(notice) if notice else None,
        "model_card": mct_document(inp, sec, figure_names),
        "extensions": {
            "lbp_benefit": {
                "section_order": list(SECTION_IDS),
                "section_titles": dict(SECTION_ORDER),
                "sections": ext_sections,
            },
            "tripod_ai": sec["tripod_ai"].data,
            "onc_hti1": sec["hti1"].data,
        },
    }


def _plain(md: str) -> str:
    return md.replace("**", "").replace("`", "")


# ----------------------------------------------------------------------------- structural check
def validate_mct_v002(doc: Any) -> list[str]:
    """Problems with ``doc`` as an MCT v0.0.2 document (empty list = valid). Checks the schema's
    structure: top-level keys only those of v0.0.2, object/array/string/number types of every
    field, license oneOf(identifier | custom_text), version.date as YYYY-MM-DD."""
    p: list[str] = []

    def typ(path, v, t):
        ok = {"object": isinstance(v, dict), "array": isinstance(v, list), "string": isinstance(v, str),
              "number": isinstance(v, (int, float)) and not isinstance(v, bool)}[t]
        if not ok:
            p.append(f"{path}: expected {t}")
        return ok

    def objects(path, arr, fields):
        if typ(path, arr, "array"):
            for i, o in enumerate(arr):
                if typ(f"{path}[{i}]", o, "object"):
                    for k, t in fields.items():
                        if k in o:
                            typ(f"{path}[{i}].{k}", o[k], t)

    if not typ("$", doc, "object"):
        return p
    for k in doc:
        if k not in MCT_TOP_KEYS:
            p.append(f"$: additional property {k!r} not allowed")
    if "schema_version" in doc:
        typ("schema_version", doc["schema_version"], "string")
    mdt = doc.get("model_details")
    if mdt is not None and typ("model_details", mdt, "object"):
        for k in ("name", "overview", "documentation"):
            if k in mdt:
                typ(f"model_details.{k}", mdt[k], "string")
        if "owners" in mdt:
            objects("model_details.owners", mdt["owners"], {"name": "string", "contact": "string"})
        if "version" in mdt and typ("model_details.version", mdt["version"], "object"):
            for k in ("name", "date", "diff"):
                if k in mdt["version"]:
                    typ(f"model_details.version.{k}", mdt["version"][k], "string")
            dt = mdt["version"].get("date")
            if isinstance(dt, str) and not (len(dt) == 10 and dt[4] == "-" and dt[7] == "-" and (dt[:4] + dt[5:7] + dt[8:]).isdigit()):
                p.append("model_details.version.date: not a date (YYYY-MM-DD)")
        if "licenses" in mdt:
            objects("model_details.licenses", mdt["licenses"], {"identifier": "string", "custom_text": "string"})
            for i, lic in enumerate(mdt["licenses"] if isinstance(mdt["licenses"], list) else []):
                if isinstance(lic, dict) and ("identifier" in lic) == ("custom_text" in lic):
                    p.append(f"model_details.licenses[{i}]: exactly one of identifier, custom_text")
        if "references" in mdt:
            objects("model_details.references", mdt["references"], {"reference": "string"})
        if "citations" in mdt:
            objects("model_details.citations", mdt["citations"], {"style": "string", "citation": "string"})
    mp = doc.get("model_parameters")
    if mp is not None and typ("model_parameters", mp, "object"):
        for k in ("model_architecture", "input_format", "output_format"):
            if k in mp:
                typ(f"model_parameters.{k}", mp[k], "string")
        if "data" in mp:
            objects("model_parameters.data", mp["data"], {"name": "string", "link": "string", "sensitive": "object",
                                                          "graphics": "object", "description": "string"})
            for i, dset in enumerate(mp["data"] if isinstance(mp["data"], list) else []):
                s = dset.get("sensitive") if isinstance(dset, dict) else None
                if isinstance(s, dict) and "sensitive_data" in s:
                    if typ(f"model_parameters.data[{i}].sensitive.sensitive_data", s["sensitive_data"], "array"):
                        for j, x in enumerate(s["sensitive_data"]):
                            typ(f"model_parameters.data[{i}].sensitive.sensitive_data[{j}]", x, "string")
    qa = doc.get("quantitative_analysis")
    if qa is not None and typ("quantitative_analysis", qa, "object"):
        if "performance_metrics" in qa:
            objects("quantitative_analysis.performance_metrics", qa["performance_metrics"],
                    {"type": "string", "value": "number", "slice": "string"})
        g = qa.get("graphics")
        if g is not None and typ("quantitative_analysis.graphics", g, "object"):
            if "description" in g:
                typ("quantitative_analysis.graphics.description", g["description"], "string")
            if "collection" in g:
                objects("quantitative_analysis.graphics.collection", g["collection"], {"name": "string", "image": "string"})
    c = doc.get("considerations")
    if c is not None and typ("considerations", c, "object"):
        for k in ("users", "use_cases", "limitations", "tradeoffs"):
            if k in c:
                objects(f"considerations.{k}", c[k], {"description": "string"})
        if "ethical_considerations" in c:
            objects("considerations.ethical_considerations", c["ethical_considerations"],
                    {"name": "string", "mitigation_strategy": "string"})
    return p

