"""The card's section container, section order and the lookups every section uses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.cards.inputs import CardInputs

NA = "not available"

SECTION_ORDER = [
    ("model_details", "Model details and version"),
    ("intended_use", "Intended use, users and settings"),
    ("out_of_scope", "Out-of-scope uses"),
    ("training_data", "Training data"),
    ("modifiers", "Candidate modifiers and how each entered"),
    ("methods", "Methods"),
    ("performance", "IECV performance (95% CIs, between-trial heterogeneity)"),
    ("figures", "Calibration for benefit and IECV forest plots"),
    ("subgroups", "Subgroup performance (sex, age, BMI, work status)"),
    ("limitations", "Limitations and caveats"),
    ("ethics", "Ethical considerations"),
    ("point_of_care", "What a clinician sees: intervals and the smallest-worthwhile verdict"),
    ("organisation", "Developer, funding, oversight, monitoring and updates"),
    ("tripod_ai", "TRIPOD+AI checklist"),
    ("hti1", "ONC HTI-1 predictive DSI source attributes"),
    ("card_format", "About this card"),
]
SECTION_IDS = [s for s, _ in SECTION_ORDER]


@dataclass
class Section:
    id: str
    title: str
    md: list[str] = field(default_factory=list)
    data: Any = None


def headline_learner(inp: CardInputs, task: str) -> str | None:
    """The learner whose IECV numbers represent the selected model: the selected learner (a stack:
    its own held-out performance, ``training/iecv_stack.py``, when the run has it; runs from before
    that: its best single learner)."""
    sel = inp.selection.get(task, {})
    it = inp.iecv.get(task)
    have = set(it.pooled["learner"]) if it is not None and it.pooled is not None else set()
    for cand in (sel.get("model"), sel.get("best_single")):
        if cand and cand in have:
            return cand
    if have:
        for cand in ("effect_model", "constant"):
            if cand in have:
                return cand
        return sorted(have)[0]
    return None


def n_trials_manifest(m: dict) -> tuple[int | None, int | None]:
    td = m.get("training_data") or {}
    trials = td.get("trials") or {}
    n = td.get("n_participants")
    if n is None and trials:
        n = sum(int((v or {}).get("participants", 0)) for v in trials.values())
    return (len(trials) if trials else None), n


def feature_schema(m: dict) -> list[dict]:
    fs = m.get("feature_schema") or []
    if isinstance(fs, dict):  # {name: spec}
        fs = [{"name": k, **(v or {})} for k, v in fs.items()]
    return [f for f in fs if isinstance(f, dict) and f.get("name")]


def names(x) -> list[str]:
    if x is None:
        return []
    if isinstance(x, dict):
        return [str(k) for k in x]
    if isinstance(x, (list, tuple)):
        out = []
        for v in x:
            out.append(str(v.get("name") or v.get("task") or v) if isinstance(v, dict) else str(v))
        return out
    return [str(x)]


# ----------------------------------------------------------------------------- sections


def outcome_type_of(inp: CardInputs, task: str | None) -> str:
    if task is None:
        return "continuous"
    r = inp.tasks[inp.tasks["task"] == task]
    if len(r) and "outcome_type" in r.columns:
        return str(r.iloc[0]["outcome_type"])
    return "binary" if "recovery" in task else "continuous"
