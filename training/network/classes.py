"""Network nodes: the package's treatment classes refined by subtype.

Node of a participant's arm (the issue's classes): ``exercise``; ``no_treatment_placebo`` (no
treatment and placebo, lumped as in the seed IPD meta-analysis); ``usual_care``; each
other-conservative subtype as its own node (``manual_therapy``, ``education``,
``psychological``, ``electrotherapy``, ``passive_physio``, ``other``; ``other_conservative`` when
no subtype is given); ``combined`` (exercise plus other care, whatever its subtype). Unknown
classes keep their own name, so another config's classes work unchanged.
"""
from __future__ import annotations

LUMP = {"no_treatment": "no_treatment_placebo", "placebo": "no_treatment_placebo"}
SUBTYPED = ("other_conservative",)
EXERCISE_CONTENT = {"exercise": 1.0, "combined": 1.0}  # nodes that contain exercise (share of its modifiers)


def node_of(treatment: str, subtype: str | None = None) -> str:
    t = str(treatment)
    if t in LUMP:
        return LUMP[t]
    if t in SUBTYPED:
        s = None if subtype is None or (isinstance(subtype, float)) or str(subtype) in ("", "nan", "<NA>", "None") else str(subtype)
        return s or t
    return t
