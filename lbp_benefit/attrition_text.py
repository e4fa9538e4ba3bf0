"""The attrition report as a plain-text table for the terminal (`lbp-benefit check`)."""
from __future__ import annotations

import pandas as pd


def attrition_table_text(att: pd.DataFrame) -> str:
    """The attrition report per trial and outcome, with a total per outcome."""
    if att.empty:
        return "attrition: no participants"
    num = [c for c in att.columns if c not in ("trial", "outcome")]
    totals = att.groupby("outcome", sort=False)[num].sum(min_count=1).reset_index()  # n/a windows stay empty
    totals.insert(0, "trial", "ALL")
    table = pd.concat([att, totals], ignore_index=True)
    short = {c: c.replace("excluded_invalid", "invalid").replace("missing_followup_", "no_fu_")
             .replace("missing_baseline", "no_base").replace("with_baseline", "base").replace("not_collected", "not_coll")
             for c in table.columns}
    return ("Attrition (participants) by trial and outcome (- = not applicable: a window not analysed for the outcome, "
            "or the baseline columns of an outcome without a baseline):\n"
            + table.astype(object).where(table.notna(), "-").rename(columns=short).to_string(index=False))
