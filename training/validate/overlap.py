"""Is the "new" trial really new? Validating a model on the data it was trained on (or on trials it
was trained on) measures in-sample, *apparent* performance: optimistic, because the model has
already seen those outcomes. Found as a new user would do it on a single trial (medicaldata::strep_tb,
multgee::arthritis): validate on the trial itself said "the evidence supports individual
differences in benefit" with nothing to say the evidence was the training data.

The artifact records its training data (``training_data``: a SHA-256 fingerprint of the harmonised
analysis table, and the trials with their sizes); the new trial is compared with it.
"""
from __future__ import annotations

import pandas as pd

from training.export_model import data_fingerprint

APPARENT = ("In-sample (apparent) performance: the model was trained on these participants, so every "
            "metric is optimistic and this is not evidence for new patients. ")


def training_overlap(manifest: dict, analysis: pd.DataFrame, baselines: pd.DataFrame) -> dict:
    """{"same_data": the analysis table equals the training one, "shared_trials": [{trial,
    participants_here, participants_in_training}]} for trials named as in the training data."""
    td = manifest.get("training_data") or {}
    fp = td.get("fingerprint")
    same = bool(fp) and data_fingerprint(analysis) == fp
    trained = td.get("trials") or {}
    here = baselines.groupby(baselines["trial"].astype(str)).size()
    shared = [{"trial": t, "participants_here": int(here[t]),
               "participants_in_training": int((trained[t] or {}).get("participants", 0))}
              for t in sorted(set(here.index) & set(trained))]
    return {"same_data": same, "shared_trials": shared}


def overlap_warning(overlap: dict) -> str | None:
    """One warning line, or None when the new trial shares nothing with the training data."""
    if overlap["same_data"]:
        return ("the validation data ARE the model's training data (same fingerprint): in-sample (apparent) "
                "performance, optimistic; hold out a trial (leave one centre out) or validate on a new trial")
    if overlap["shared_trials"]:
        names = ", ".join(f"{s['trial']} ({s['participants_here']} here, {s['participants_in_training']} in training)"
                          for s in overlap["shared_trials"])
        return (f"trial(s) of the validation data have the name of a trial the model was trained on: {names}; "
                "if they are the same participants, the metrics are in-sample (apparent) and optimistic")
    return None
