"""The one owner of the synthetic-data label on everything a synthetic model exports.

A model trained on synthetic (simulated) data carries ``synthetic: true`` in its manifest. Every
file made from it says so in a form that survives being copied out of its folder:

- tables (``lbp-benefit score`` CSV, the Spark engine's Parquet): a first column
  :data:`COLUMN` (``synthetic``) that is true on every row, and :data:`LABEL` as its text where
  the format holds metadata (Parquet column metadata);
- figures (PNG, SVG): a red band reading :data:`LABEL` (``training/synthetic_label.py`` draws it
  with this wording).

Plain Python (the runtime imports it; training and serving use the same constants).
"""
from __future__ import annotations

from typing import Any

LABEL = "SYNTHETIC DATA \u2014 NOT FOR CLINICAL USE"
COLUMN = "synthetic"
COLUMN_DESCRIPTION = ("true: the model that produced this row was trained on synthetic (simulated) data; "
                      "not for clinical use")


def mark_table(df: Any, synthetic: bool) -> Any:
    """``df`` (a pandas DataFrame) with the :data:`COLUMN` column first, true on every row, if the
    model is synthetic; unchanged otherwise (a real model's tables carry no such column)."""
    if not synthetic:
        return df
    out = df.copy()
    if COLUMN in out.columns:
        out = out.drop(columns=[COLUMN])
    out.insert(0, COLUMN, True)
    return out
