"""Plots for the metric results. Each function returns a matplotlib ``Figure`` drawn on an Agg
canvas (no pyplot, no global backend change, safe in servers and tests); save it with
``fig.savefig(path)``."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.metrics._stats import loess
from training.metrics.benefit import MatchedPairs
from training.metrics.benefit_calibration import GroupedCalibrationResult
from training.metrics.rate import RateResult
from training.metrics.decision import DecisionCurveResult
from training.metrics.outcome import CalibrationCurveResult


def _figure(figsize=(5.0, 4.5)) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def plot_calibration_for_benefit(
    grouped: GroupedCalibrationResult, pairs: MatchedPairs | None = None, *,
    units: str = "", title: str = "Calibration for benefit",
) -> Figure:
    """Observed vs predicted benefit per quantile group (points with CI bars) and the identity
    line; optionally a loess of observed on predicted matched-pair benefit (E-for-benefit
    smoother) with the pairs as faint points."""
    fig, ax = _figure()
    lo = min(np.nanmin(grouped.ci_low), np.nanmin(grouped.predicted))
    hi = max(np.nanmax(grouped.ci_high), np.nanmax(grouped.predicted))
    if pairs is not None and pairs.n_pairs >= 4:
        order = np.argsort(pairs.predicted_benefit)
        x, yv = pairs.predicted_benefit[order], pairs.observed_benefit[order]
        ax.scatter(x, yv, s=6, alpha=0.15, color="grey", label="matched pairs")
        ax.plot(x, loess(x, yv), color="tab:orange", label="loess (pairs)")
        lo, hi = min(lo, x.min()), max(hi, x.max())
    ax.plot([lo, hi], [lo, hi], ls="--", color="black", lw=1, label="ideal")
    ax.errorbar(grouped.predicted, grouped.observed,
                yerr=[grouped.observed - grouped.ci_low, grouped.ci_high - grouped.observed],
                fmt="o", color="tab:blue", capsize=3, label="groups (95% CI)" if grouped.ci_level == 0.95 else "groups")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    u = f" ({units})" if units else ""
    ax.set_xlabel(f"Predicted benefit{u}")
    ax.set_ylabel(f"Observed benefit{u}")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_outcome_calibration(
    curve: CalibrationCurveResult, pred: Any = None, *, title: str = "Calibration",
    units: str = "",
) -> Figure:
    """Smoothed observed vs predicted outcome with pointwise bootstrap CI band, the identity line
    and (if ``pred`` is given) a rug of the predictions."""
    fig, ax = _figure()
    g = curve.grid
    ax.fill_between(g, curve.ci_low, curve.ci_high, color="tab:blue", alpha=0.2, lw=0, label="CI")
    ax.plot(g, curve.observed, color="tab:blue", label=f"lowess (ICI {curve.ici:.3g})")
    lo, hi = float(np.nanmin([g.min(), np.nanmin(curve.ci_low)])), float(np.nanmax([g.max(), np.nanmax(curve.ci_high)]))
    ax.plot([lo, hi], [lo, hi], ls="--", color="black", lw=1, label="ideal")
    if pred is not None:
        p = np.asarray(pred, float)
        ax.plot(p, np.full(p.shape, lo), "|", color="grey", alpha=0.3, ms=8)
    u = f" ({units})" if units else ""
    ax.set_xlabel(f"Predicted{u}")
    ax.set_ylabel(f"Observed{u}")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_decision_curve(dc: DecisionCurveResult, *, units: str = "", title: str = "Decision curve") -> Figure:
    """Net benefit (per patient) of treating by the model, treating all and treating none across
    thresholds of the smallest worthwhile benefit, with pointwise CI bands."""
    fig, ax = _figure()
    t = dc.thresholds
    ax.fill_between(t, dc.net_benefit_model_ci_low, dc.net_benefit_model_ci_high, color="tab:blue",
                    alpha=0.2, lw=0)
    ax.plot(t, dc.net_benefit_model, color="tab:blue", label="treat if predicted benefit ≥ threshold")
    ax.fill_between(t, dc.net_benefit_all_ci_low, dc.net_benefit_all_ci_high, color="tab:red",
                    alpha=0.12, lw=0)
    ax.plot(t, dc.net_benefit_all, color="tab:red", label="treat all")
    ax.axhline(0, color="black", lw=1, label="treat none")
    top = np.nanmax(np.concatenate([dc.net_benefit_model_ci_high, dc.net_benefit_all, [0]]))
    bottom = min(np.nanmin(dc.net_benefit_model_ci_low), -0.05 * abs(top) if top else -1)
    ax.set_ylim(bottom - 0.05 * abs(top - bottom), top + 0.1 * abs(top - bottom))
    u = f" ({units})" if units else ""
    ax.set_xlabel(f"Threshold: smallest worthwhile benefit{u}")
    ax.set_ylabel(f"Net benefit per patient{u}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_toc(rate: RateResult, *, units: str = "", title: str = "Targeting operator characteristic") -> Figure:
    """TOC curve: average benefit among the top-q prioritised minus the overall average, with
    pointwise CI band; annotated with AUTOC and Qini."""
    fig, ax = _figure()
    ax.fill_between(rate.q, rate.toc_ci_low, rate.toc_ci_high, color="tab:green", alpha=0.2, lw=0)
    ax.plot(rate.q, rate.toc, color="tab:green", marker="o", ms=3)
    ax.axhline(0, color="black", lw=1)
    ax.set_xlim(0, 1)
    u = f" ({units})" if units else ""
    ax.set_xlabel("Fraction treated (highest predicted benefit first), q")
    ax.set_ylabel(f"TOC(q): benefit in top q − average{u}")
    ax.set_title(title)
    ax.text(0.98, 0.95, f"AUTOC {rate.autoc:.3g} [{rate.autoc_ci_low:.3g}, {rate.autoc_ci_high:.3g}]\n"
            f"Qini {rate.qini:.3g} [{rate.qini_ci_low:.3g}, {rate.qini_ci_high:.3g}]",
            transform=ax.transAxes, ha="right", va="top", fontsize=8)
    return fig
