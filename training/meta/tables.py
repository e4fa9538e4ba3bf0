"""Tables in the layout of the seed paper's Tables 4–6, as CSV, Markdown and HTML."""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from training.config import StudyConfig
from training.harmonise import RECOVERY


def variable_label(cfg: StudyConfig, variable: str) -> tuple[str, str]:
    """(label, level described) for a modifier."""
    if variable.startswith("baseline_") and variable[9:] in cfg.outcomes:
        o = variable[9:]
        return f"Baseline {o}", "per 1 point (0–100)"
    spec = cfg.covariates[variable]
    if spec.type == "binary":
        return spec.label or variable, "1 vs 0"
    if spec.type == "continuous":
        if spec.unit in ("0-100", "0–100"):
            return spec.label or variable, "per 1 point (0–100)"
        return spec.label or variable, f"per 1 {spec.unit}" if spec.unit else "per 1 unit"
    return spec.label or variable, "level"


def fmt_estimate(est: float, lo: float, hi: float, odds: bool) -> str:
    if any(isinstance(v, float) and math.isnan(v) for v in (est, lo, hi)):
        return "not estimable"
    if odds:
        if max(abs(est), abs(lo), abs(hi)) > 50:
            return "not estimable (log OR diverges)"
        est, lo, hi = math.exp(est), math.exp(lo), math.exp(hi)
    return f"{est:.2f} ({lo:.2f} to {hi:.2f})"


def instrument_lines(cfg: StudyConfig, overall: pd.DataFrame) -> list[str]:
    """The overall effects of the continuous outcomes measured on ONE instrument, in that instrument's own
    units (intervention minus comparator; the 0–100 estimate, higher = worse, mapped back through the
    instrument's range and direction). Found with MASS::epil and Project STAR: 'MD -0.57' on 0–100 had to be
    converted by hand to -1.14 seizures in two weeks, and 'MD -1.49' to +6.7 reading-test points."""
    out = []
    for r in overall.itertuples():
        spec = cfg.outcome(r.outcome)
        if spec is None or spec.kind != "continuous" or len(spec.instruments) != 1 or spec.derived:
            continue
        ins = cfg.instruments.get(spec.instruments[0])
        if ins is None or any(not np.isfinite(float(v)) for v in (r.estimate, r.ci_low, r.ci_high)):
            continue
        zero = float(ins.from_0_100(0.0))
        est, a, b = (float(ins.from_0_100(v)) - zero for v in (r.estimate, r.ci_low, r.ci_high))
        lo, hi = min(a, b), max(a, b)
        vs = cfg.active + " vs " + (cfg.comparator_label if r.comparison == "any_comparator" else r.comparison)
        better = "higher" if ins.direction == "higher_is_better" else "lower"
        out.append(f"- {r.outcome} at {r.follow_up}, {vs} ({r.model}): {est:+.2f} ({lo:+.2f} to {hi:+.2f}) on "
                   f"{ins.label or ins.code} ({ins.min:g}–{ins.max:g}; {better} is better)")
    return out


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def paper_table(interactions: pd.DataFrame, cfg: StudyConfig, outcome: str, follow_up: str, comparison: str) -> pd.DataFrame:
    """One row per modifier: unadjusted and adjusted studies, participants, estimate (95% CI), p."""
    d = interactions[(interactions.outcome == outcome) & (interactions.follow_up == follow_up)
                     & (interactions.comparison == comparison)]
    odds = outcome == RECOVERY
    first = {}  # (variable, level, model) -> its first row; one pass instead of a filter per cell
    for r in d.itertuples(index=False):
        first.setdefault((r.variable, r.level, r.model), r)
    rows = []
    for variable, lev in dict.fromkeys(zip(d["variable"], d["level"])):
        label, level = variable_label(cfg, variable)
        categorical = level == "level"  # a categorical modifier: one row per level and its joint test
        row = {"variable": label, "level": lev if categorical else level}
        for model in ("unadjusted", "adjusted"):
            r = first.get((variable, lev, model))
            if r is None:
                continue
            row[f"{model}_studies"] = int(r.studies)
            row[f"{model}_participants"] = int(r.participants)
            joint = categorical and str(lev).startswith("joint test")
            row[f"{model}_{'or' if odds else 'md'}_95ci"] = (
                "(all levels)" if joint else fmt_estimate(r.estimate, r.ci_low, r.ci_high, odds))
            row[f"{model}_p"] = fmt_p(r.p)
            row[f"{model}_status"] = r.status
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, title: str = "") -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join("" if (isinstance(v, float) and np.isnan(v)) else str(v) for v in r) + " |"
            for r in df.itertuples(index=False)]
    return (f"## {title}\n\n" if title else "") + "\n".join([head, sep, *body]) + "\n"


def to_html(df: pd.DataFrame, title: str, note: str = "") -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:left}th{background:#eee}</style></head><body>"
        f"<h2>{html.escape(title)}</h2>" + (f"<p>{html.escape(note)}</p>" if note else "")
        + df.to_html(index=False, na_rep="", escape=True) + "</body></html>"
    )


def write_table(df: pd.DataFrame, folder: Path, stem: str, title: str, note: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / f"{stem}.csv", index=False)
    (folder / f"{stem}.md").write_text(to_markdown(df, title) + (f"\n{note}\n" if note else ""), "utf-8")
    (folder / f"{stem}.html").write_text(to_html(df, title, note), "utf-8")
