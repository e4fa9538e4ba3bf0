"""The CDS Hooks discovery document and the prefetch templates, built from the code registry."""
from __future__ import annotations

from serving.cds.codes import Registry

SERVICE_ID = "lbp-exercise-benefit"
REFERRAL_ID = "lbp-exercise-benefit-referral"
HOOKS = {SERVICE_ID: "patient-view", REFERRAL_ID: "order-select"}


def prefetch_templates(reg: Registry) -> dict[str, str]:
    """Every prefetch key of the services, each a read or search in the patient's compartment."""
    pid = "{{context.patientId}}"
    obs = ",".join(f"{c.system}|{c.code}" for e in reg.observations for c in e.codes)
    cond = ",".join(f"{c.system}|{c.code}" for e in reg.conditions for c in e.codes)
    out = {"patient": f"Patient/{pid}",
           "observations": f"Observation?patient={pid}&code={obs}&_sort=-date",
           "conditions": f"Condition?patient={pid}&code={cond}",
           "medications": f"MedicationStatement?patient={pid}&status=active"}
    urls = [u for q in reg.questionnaires for u in q.urls]
    if urls:
        out["questionnaires"] = f"QuestionnaireResponse?patient={pid}&questionnaire={','.join(urls)}&_sort=-authored"
    return out


def discovery_document(reg: Registry, synthetic: bool) -> dict:
    note = " Trained on synthetic (simulated) data: not for clinical use." if synthetic else ""
    prefetch = prefetch_templates(reg)
    base = ("Predicted individual benefit of exercise therapy for low back pain versus other care, with 95% "
            "intervals, from a model of pooled randomised-trial data." + note)
    return {"services": [
        {"hook": "patient-view", "id": SERVICE_ID, "title": "Exercise therapy benefit (low back pain)",
         "description": base, "prefetch": prefetch,
         "usageRequirements": "Needs a recent baseline pain score (0-10 NRS) and a disability score (Oswestry or "
                              "Roland-Morris) for the patient; see the service documentation for the codes."},
        {"hook": "order-select", "id": REFERRAL_ID, "title": "Exercise therapy benefit for a physiotherapy referral",
         "description": base + " Answers when a physiotherapy or exercise-therapy ServiceRequest is selected.",
         "prefetch": prefetch},
    ]}
