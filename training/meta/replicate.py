"""``lbp-benefit replicate``: the seed paper's analyses on any pooled IPD.

Writes a report folder: ``analysis_data.csv`` (so anyone can re-fit the models elsewhere),
``overall.csv`` and ``interactions.csv`` in long form, tables in the layout of the paper's
Tables 4–6 for every outcome × follow-up × comparison (CSV, Markdown, HTML), forest plots of
subgroup effects for the primary analyses (PNG, SVG) and ``report.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.config import StudyConfig
from training.harmonise import RECOVERY, Harmonised
from training.meta.fit import FEW_COLUMNS
from training.meta.forest import forest_plot
from training.meta.run import Runner
from training.meta.specs import all_specs, comparison_sets, modifiers, spec_for
from training.meta.tables import fmt_estimate, fmt_p, instrument_lines, paper_table, variable_label, write_table

LONG_COLUMNS = ["outcome", "follow_up", "comparison", "variable", "level", "model", "studies", "participants",
                "estimate", "ci_low", "ci_high", "p", "tau", "status"]
EXTRA_COLUMNS = ["se", "inference", "tau_at_boundary", "pi_low", "pi_high", "excluded_missing", "scale", "analysis",
                 "message"]
PAPER_TABLE = {"pain": "table4_pain", "function": "table5_function", RECOVERY: "table6_global_recovery"}


@dataclass
class Replication:
    overall: pd.DataFrame
    interactions: pd.DataFrame
    subgroups: pd.DataFrame
    out: Path


def analysis_data(h: Harmonised) -> pd.DataFrame:
    """One row per participant, outcome and follow-up with comparison-set membership and recovery."""
    cfg = h.config
    a = h.analysis.copy()
    for name, classes in comparison_sets(cfg).items():
        a[f"in_{name}"] = (a["treatment"].isin(classes) | (a["treatment"] == cfg.active)).astype(int)
    rec = a[a.outcome == RECOVERY].set_index(["trial", "participant", "follow_up"])["value"]
    key = pd.MultiIndex.from_frame(a[["trial", "participant", "follow_up"]])
    a["recovered"] = rec.reindex(key).to_numpy()
    lead = ["trial", "participant", "outcome", "follow_up"] + [c for c in a.columns if c.startswith("in_")] + [
        "treat", "treatment", "subtype", "arm", "week", "instrument", "value", "baseline", "recovered"]
    return a[lead + [c for c in a.columns if c not in lead]]


def _level(cfg: StudyConfig, variable: str) -> str:
    return (cfg.intervention_label or cfg.active) if variable == "treatment" else variable_label(cfg, variable)[1]


def _long(rows: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    rows = rows.copy()
    given = rows["level"] if "level" in rows else pd.Series([None] * len(rows), index=rows.index)
    rows["level"] = [g if isinstance(g, str) and g else _level(cfg, v) for g, v in zip(given, rows["variable"])]
    if "analysis" not in rows:
        rows["analysis"] = ""
    mi = [c for c in ("imputations", "df", "fmi", "excluded_missing_cc") if c in rows.columns]  # --missing mi
    return rows[LONG_COLUMNS + EXTRA_COLUMNS + [c for c in FEW_COLUMNS if c in rows.columns] + mi]


def _flatten(fits: list[dict]) -> list[dict]:
    """A categorical modifier's joint-test row followed by its per-level rows."""
    out = []
    for r in fits:
        per = r.pop("per_level", None) if isinstance(r, dict) else None
        out.append(r)
        out.extend(per or [])
    return out


def replicate(h: Harmonised, out: Path, *, follow_ups: list[str] | None = None, comparisons: list[str] | None = None,
              residual: str = "common", workers: int | None = None, progress: Callable | None = None,
              forest: bool = True, primary_comparison: str | None = None,
              only_modifiers: list[str] | None = None, missing: str = "complete_cases",
              imputations: int = 5) -> Replication:
    """Fit every model and write the report folder (see the module docstring).

    All models, subgroup models and figures run on one :class:`~training.meta.run.Runner`; the
    main process writes ``analysis_data.csv`` while the workers fit, and the tables while they
    draw the figures. ``missing='mi'``: every model by multiple imputation with Rubin's rules
    (``training.impute.meta``) instead of complete cases."""
    cfg = h.config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    available = set(h.analysis["outcome"])
    if not available:
        raise LbpError("no participant has both a baseline and a follow-up: nothing to analyse")
    specs = all_specs(cfg, available, follow_ups, comparisons, only_modifiers=only_modifiers)
    sets = comparison_sets(cfg)
    primary = primary_comparison or (comparisons[0] if comparisons else next(iter(sets)))
    first_w = (follow_ups or cfg.window_names)[0]
    outcomes = [o for o in list(cfg.outcomes) + [cfg.recovery_name] if o in available]
    sub_jobs = [(o, m) for o in outcomes for m in (only_modifiers or modifiers(cfg))] if forest else []
    sub_specs = [spec_for(cfg, o, first_w, primary, sets[primary], m, True) for o, m in sub_jobs]
    with Runner(h.analysis, active=cfg.active, residual=residual, workers=workers,
                missing=(missing, imputations)) as run:
        fits = run.submit_fits(specs, progress)
        subs = run.submit_subgroups(cfg, sub_specs, progress)
        analysis_data(h).to_csv(out / "analysis_data.csv", index=False)
        rows = _long(pd.DataFrame(_flatten(fits())), cfg)
        overall = rows[rows.variable == "treatment"].reset_index(drop=True)
        inter = rows[rows.variable != "treatment"].drop(columns=[c for c in FEW_COLUMNS if c in rows]).reset_index(drop=True)
        overall.to_csv(out / "overall.csv", index=False)
        inter.to_csv(out / "interactions.csv", index=False)
        subgroups, figures = pd.DataFrame(), []
        if forest:
            subgroups, figures = _forest_plots(run, cfg, out, first_w, primary, outcomes, sub_jobs, subs(), inter)
        _tables(out, cfg, inter, first_w, primary)
        for f in figures:
            f.result()
    _report(out, cfg, overall, inter, first_w, primary)
    return Replication(overall, inter, subgroups, out)


def _tables(out: Path, cfg: StudyConfig, inter: pd.DataFrame, first_w: str, primary: str) -> None:
    tables = out / "tables"
    for (o, w, c), _ in inter.groupby(["outcome", "follow_up", "comparison"], sort=False):
        t = paper_table(inter, cfg, o, w, c)
        stem = PAPER_TABLE.get(o, f"table_{o}") if (w == first_w and c == primary) else f"{o}_{w}_{c}"
        odds = cfg.outcome_type(o) == "binary"
        act = cfg.intervention_label or cfg.active.replace("_", " ")
        title = (f"Treatment–covariate interactions: {o}, {w} term, {act} vs {c.replace('_', ' ')} "
                 f"({'odds ratio' if odds else 'mean difference'})")
        spec = cfg.outcome(o)
        better = "negative" if spec is None or spec.direction == "higher_is_worse" else "positive"
        note = (f"Interaction on the odds-ratio scale (>1: the good outcome more likely with {act} for that level)."
                if odds else f"Interaction as a mean difference in outcome units ({better}: better outcome with {act} "
                             f"for that level).")
        adj = ", ".join(variable_label(cfg, a)[0] for a in cfg.adjust_for) or "nothing"
        cat = (" A categorical modifier has one row per level (its interaction vs the reference level) and a joint "
               "Wald test of all levels (p in its row).")
        write_table(t, tables, stem, title, note + f" Adjusted: plus {adj} (fixed and random)." + cat)


def _joint_labels(cfg, inter: pd.DataFrame | None, o: str, follow_up: str, comparison: str) -> dict[str, str]:
    """Modifier labels; a categorical one carries its joint Wald p (adjusted interaction model)."""
    labels = {m: variable_label(cfg, m)[0] for m in modifiers(cfg)}
    if inter is None or inter.empty:
        return labels
    j = inter[(inter.outcome == o) & (inter.follow_up == follow_up) & (inter.comparison == comparison)
              & (inter.model == "adjusted") & inter.level.astype(str).str.startswith("joint test")]
    for r in j.itertuples():
        labels[r.variable] = f"{labels.get(r.variable, r.variable)} (interaction, {r.level}: p {fmt_p(r.p) or '–'})"
    return labels


def _forest_plots(run: Runner, cfg, out, follow_up, comparison, outcomes, jobs, results,
                  inter: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list]:
    """Write ``subgroup_effects.csv`` and queue one forest plot per outcome on the workers;
    returns the subgroup rows and the plot jobs (wait on their ``result()``)."""
    frames = [r.assign(outcome=o) for (o, _), r in zip(jobs, results) if r is not None]
    if not frames:
        return pd.DataFrame(), []
    sub = pd.concat(frames, ignore_index=True)
    sub.to_csv(out / "subgroup_effects.csv", index=False)
    figures = []
    for i, o in enumerate(outcomes):
        s = sub[sub.outcome == o]
        if s.empty:
            continue
        labels = _joint_labels(cfg, inter, o, follow_up, comparison)
        figures.append(run.submit(
            forest_plot, s, labels, f"{o.replace('_', ' ').capitalize()}: "
            f"{cfg.intervention_label or cfg.active.replace('_', ' ')} vs {comparison.replace('_', ' ')}, "
            f"{follow_up} term (adjusted)", cfg.outcome_type(o) == "binary", out / "figures" / f"figure{3 + i}_{o}",
            intervention=cfg.intervention_label or cfg.active.replace("_", " "),
            lower_is_better=cfg.outcome(o) is None or cfg.outcome(o).direction == "higher_is_worse",
            outcome_label=(cfg.outcome(o).label if cfg.outcome(o) is not None and cfg.outcome(o).label else o.replace("_", " "))))
    return sub, figures


def _report(out: Path, cfg: StudyConfig, overall: pd.DataFrame, inter: pd.DataFrame, first_w: str, primary: str) -> None:
    lines = ["# One-stage IPD meta-analysis", "",
             f"Config: {cfg.name}. Continuous outcomes: linear mixed model (REML), trial-specific fixed intercepts, "
             "random treatment effect and, for an outcome with a baseline, a random baseline slope (adjusted for "
             "the baseline). Binary outcomes: logistic mixed model (ML, Laplace). Overall effects: Wald 95% CIs and p on t with k−1 df (k trials); "
             "interactions: Wald z. tau = between-trial SD of the treatment effect; "
             "PI = 95% prediction interval for a new trial (t with k−2 df). Status 'singular' means a variance "
             "component is at zero (tau_at_boundary says whether it is tau). tau is blank where it is not identified "
             "(two trials and a trial-mean interaction term: no trial-level degree of freedom left).", "",
             "Next to each one-stage random-effects estimate: the **common-effect (stratified)** estimate (no random "
             "effects; trial-specific intercepts and baseline slopes; t on n−p df, logistic: z) and the **two-stage "
             "random-effects** estimate with the **Hartung–Knapp–Sidik–Jonkman** 95% CI (per-trial regressions, "
             "Paule–Mandel tau, t with k−1 df). With few trials they can disagree: the common-effect interval ignores "
             "between-trial variation, the random-effects intervals include it but are wide when k is small. "
             "A dataset of one trial gets the single-trial analysis (ANCOVA, a difference in means without "
             "baseline or covariates, or logistic regression), labelled so.",
             "", "## Overall effects", "",
             "| outcome | follow-up | comparison | studies | participants | analysis | estimate (95% CI) | p | tau | "
             "95% PI | common effect (stratified) | two-stage RE, HKSJ 95% CI | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in overall.itertuples():
        odds = cfg.outcome_type(r.outcome) == "binary"
        pi = fmt_estimate(r.estimate, r.pi_low, r.pi_high, odds).split(" ", 1)[-1] if not np.isnan(r.pi_low) else ""
        ce = hk = ""
        if hasattr(r, "ce_estimate") and isinstance(r.ce_label, str):
            ce = fmt_estimate(r.ce_estimate, r.ce_ci_low, r.ce_ci_high, odds) + (
                f", p {fmt_p(r.ce_p)}" if np.isfinite(r.ce_p) else "")
            hk = fmt_estimate(r.hksj_estimate, r.hksj_ci_low, r.hksj_ci_high, odds) + (
                f", p {fmt_p(r.hksj_p)}" if np.isfinite(r.hksj_p) else "") + f" (k={int(r.hksj_studies)})"
        lines.append(f"| {r.outcome} | {r.follow_up} | {r.comparison} | {r.studies} | {r.participants} | {r.analysis} | "
                     f"{('OR ' if odds else 'MD ') + fmt_estimate(r.estimate, r.ci_low, r.ci_high, odds)} | {fmt_p(r.p)} | "
                     f"{'' if np.isnan(r.tau) else f'{r.tau:.2f}'} | {pi} | {ce} | {hk} | {r.status} |")
    units = instrument_lines(cfg, overall)
    if units:
        lines += ["", "**In the instrument's own units** (the estimate and its 95% CI above, "
                  "intervention minus comparator, for outcomes measured on one instrument):", ""] + units
    n_bad = int((inter.status != "ok").sum())
    lines += ["", "## Interactions", "",
              f"{len(inter)} interaction models; {n_bad} not 'ok' (singular, not converged, failed or not estimable; "
              "see the status and message columns of interactions.csv).",
              f"Primary tables (follow-up {first_w}, comparison {primary}): "
              + ", ".join(f"tables/{PAPER_TABLE.get(o, f'table_{o}')}" for o in dict.fromkeys(inter.outcome))
              + " (.csv/.md/.html).", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n", "utf-8")
