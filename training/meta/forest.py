"""Forest plots of subgroup treatment effects (PNG and SVG), like the paper's Figures 3–5."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def forest_plot(sub: pd.DataFrame, labels: dict[str, str], title: str, odds: bool, path_stem: Path,
                intervention: str = "intervention", lower_is_better: bool = True, outcome_label: str = "the outcome") -> None:
    """One row per subgroup level (every level of a categorical modifier), grouped by modifier;
    estimate with 95% CI. Axis words come from the study config (intervention, outcome, direction)."""
    favours = (f"favours {intervention}", "favours comparator")
    rows = []
    for variable, grp in sub.groupby("variable", sort=False):
        rows.append((labels.get(variable, variable), None))
        for r in grp.itertuples():
            rows.append((f"   {r.level}  (n={r.participants}, k={r.studies})", r))
    n = len(rows)
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * n + 1.6))
    for i, (text, r) in enumerate(rows):
        y = n - i
        ax.text(-0.02, y, text, transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=8, fontweight="bold" if r is None else "normal")
        if r is None:
            continue
        with np.errstate(over="ignore"):
            est, lo, hi = (np.exp([r.estimate, r.ci_low, r.ci_high]) if odds else (r.estimate, r.ci_low, r.ci_high))
        if not np.all(np.isfinite([est, lo, hi])):  # not estimable: said in the table, no bar drawn
            continue
        ax.plot([lo, hi], [y, y], color="black", lw=1)
        ax.plot([est], [y], "s", color="#1f5fa8", ms=5)
    ref = 1.0 if odds else 0.0
    ax.axvline(ref, color="grey", lw=0.8, ls="--")
    if odds:
        ax.set_xscale("log")
        ax.set_xlabel(f"Odds ratio of {outcome_label}, {intervention} vs comparator (>1 {favours[0]})")
    else:
        ax.set_xlabel(f"Mean difference in {outcome_label}, {intervention} − comparator "
                      f"({'<0' if lower_is_better else '>0'} {favours[0]})")
    ax.set_yticks([])
    ax.set_ylim(0.3, n + 0.7)
    ax.set_title(textwrap.fill(title, 70), fontsize=9)
    ax.xaxis.label.set_text(textwrap.fill(ax.get_xlabel(), 75))
    ax.xaxis.label.set_fontsize(8)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.42, right=0.97, top=1 - 0.6 / (0.28 * n + 1.6), bottom=0.95 / (0.28 * n + 1.6))
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path_stem.with_suffix(".png"), dpi=110)
    fig.savefig(path_stem.with_suffix(".svg"))
    plt.close(fig)
