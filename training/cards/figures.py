"""The card's PNG figures: calibration for benefit and the IECV forest plot per IECV task (copied
from the run's ``plots/`` or, when a plot is missing, redrawn from the run's CSVs), and a subgroup
plot per task when subgroup performance is available.

Redrawn figures are deterministic: Agg backend, fixed size and dpi, no timestamp or software
metadata in the PNG.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from training.cards.inputs import CardInputs

DPI = 110
_META = {"Software": None}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=_META)
    return buf.getvalue()


def _margins(fig, w: float, h: float, left_in: float, top_in: float = 0.6, bottom_in: float = 0.55,
             wspace: float = 0.45) -> None:
    """Fixed margins in inches (cheaper and more stable than tight_layout)."""
    fig.subplots_adjust(left=left_in / w, right=1 - 0.25 / w, top=1 - top_in / h, bottom=bottom_in / h, wspace=wspace)


def _figure(w: float, h: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    axes = fig.subplots(1, ncols)
    return fig, (axes if ncols > 1 else [axes])


def forest_png(per_trial: pd.DataFrame, pooled: pd.DataFrame, learner: str, task: str) -> bytes | None:
    """c-for-benefit and calibration slope for benefit per held-out trial with the pooled estimate."""
    per = per_trial[per_trial["learner"] == learner]
    if not len(per):
        return None
    n = max(per["trial"].nunique(), 4)
    fig, axes = _figure(10, 0.35 * n + 1.5, 2)
    for ax, m, ref in zip(axes, ("c_for_benefit", "calibration_slope_for_benefit"), (0.5, 1.0)):
        g = per[per["metric"] == m].sort_values("trial", kind="mergesort").reset_index(drop=True)
        yy = np.arange(len(g))
        est = g["estimate"].to_numpy(float)
        lo = np.clip(np.nan_to_num(est - g["ci_low"].to_numpy(float)), 0, None)
        hi = np.clip(np.nan_to_num(g["ci_high"].to_numpy(float) - est), 0, None)
        ax.errorbar(est, yy, xerr=[lo, hi], fmt="s", color="k", ms=4, capsize=2)
        pr = pooled[(pooled["learner"] == learner) & (pooled["metric"] == m)]
        if len(pr):
            r = pr.iloc[0]
            ax.errorbar([r["estimate"]], [-1.5], xerr=[[max(r["estimate"] - r["ci_low"], 0)], [max(r["ci_high"] - r["estimate"], 0)]],
                        fmt="D", color="tab:red", capsize=3)
        ax.axvline(ref, ls="--", color="grey")
        ax.set_yticks(list(yy) + [-1.5], list(g["trial"].astype(str)) + ["pooled (RE)"])
        ax.set_title(f"{m} ({learner})", fontsize=9)
    fig.suptitle(f"IECV per held-out trial: {task}", fontsize=10)
    _margins(fig, 10, 0.35 * n + 1.5, left_in=1.0)
    return _png(fig)


def calibration_png(fr: pd.DataFrame, learner: str, task: str) -> bytes | None:
    """Grouped calibration for benefit (predicted vs observed with 95% CI, identity line)."""
    fr = fr.dropna(subset=["predicted", "observed"])
    if not len(fr):
        return None
    fig, axes = _figure(4.5, 4.5)
    ax = axes[0]
    lo = np.nan_to_num(fr["observed"] - fr["ci_low"])
    hi = np.nan_to_num(fr["ci_high"] - fr["observed"])
    ax.errorbar(fr["predicted"], fr["observed"], yerr=[lo, hi], fmt="o", color="k", capsize=3)
    lim = [float(np.nanmin([fr["predicted"].min(), fr["ci_low"].min()])),
           float(np.nanmax([fr["predicted"].max(), fr["ci_high"].max()]))]
    ax.plot(lim, lim, "--", color="grey")
    ax.set_xlabel("predicted benefit (held-out trials, quintile mean)")
    ax.set_ylabel("observed benefit (within-trial, 95% CI)")
    ax.set_title(f"{task}: calibration for benefit ({learner})", fontsize=9)
    _margins(fig, 4.5, 4.5, left_in=0.8, top_in=0.4)
    return _png(fig)


def subgroup_png(sp: pd.DataFrame, task: str) -> bytes | None:
    """c-for-benefit and calibration slope for benefit by subgroup level (95% CI)."""
    from training.cards.content import SUBGROUP_ORDER

    g = sp[sp["task"] == task]
    keys = g[["subgroup_variable", "subgroup_level"]].drop_duplicates()
    if not len(keys):
        return None
    keys = keys.assign(_o=keys["subgroup_variable"].map(lambda v: SUBGROUP_ORDER.get(str(v), 9))).sort_values("_o", kind="mergesort")
    labels = [f"{v}: {lv}" for v, lv in zip(keys["subgroup_variable"], keys["subgroup_level"])]
    fig, axes = _figure(10, 0.35 * max(len(labels), 4) + 1.5, 2)
    for ax, m, ref in zip(axes, ("c_for_benefit", "calibration_slope_for_benefit"), (0.5, 1.0)):
        est, lo, hi = [], [], []
        for v, lv in zip(keys["subgroup_variable"], keys["subgroup_level"]):
            r = g[(g["subgroup_variable"] == v) & (g["subgroup_level"] == lv) & (g["metric"] == m)]
            e = float(r["estimate"].iloc[0]) if len(r) else np.nan
            est.append(e)
            lo.append(max(e - float(r["ci_low"].iloc[0]), 0) if len(r) and np.isfinite(r["ci_low"].iloc[0]) else 0)
            hi.append(max(float(r["ci_high"].iloc[0]) - e, 0) if len(r) and np.isfinite(r["ci_high"].iloc[0]) else 0)
        yy = -np.arange(len(labels))
        ax.errorbar(est, yy, xerr=[np.nan_to_num(lo), np.nan_to_num(hi)], fmt="s", color="k", ms=4, capsize=2)
        ax.axvline(ref, ls="--", color="grey")
        ax.set_yticks(list(yy), labels if m == "c_for_benefit" else [""] * len(labels))
        ax.set_title(m, fontsize=9)
    fig.suptitle(f"Subgroup performance (held-out trials): {task}", fontsize=10)
    _margins(fig, 10, 0.35 * max(len(labels), 4) + 1.5, left_in=2.0, wspace=0.1)
    return _png(fig)


def build_figures(inp: CardInputs) -> dict[str, bytes]:
    """PNG bytes by file name (``<task>__benefit_calibration.png``, ``<task>__iecv_forest.png``,
    ``<task>__subgroups.png``); a synthetic model's carry the synthetic-data band
    (training/synthetic_label.py)."""
    from training.cards.content import headline_learner

    out: dict[str, bytes] = {}
    for task in inp.task_names():
        lr = headline_learner(inp, task)
        name = f"{task}__benefit_calibration.png"
        if name in inp.plots:
            out[name] = inp.plots[name]
        elif task in inp.benefit_calibration:
            png = calibration_png(inp.benefit_calibration[task], lr or "", task)
            if png:
                out[name] = png
        name = f"{task}__iecv_forest.png"
        if name in inp.plots:
            out[name] = inp.plots[name]
        else:
            it = inp.iecv.get(task)
            if it is not None and it.per_trial is not None and it.pooled is not None and lr:
                png = forest_png(it.per_trial, it.pooled, lr, task)
                if png:
                    out[name] = png
    sp = inp.subgroup_performance
    if sp is not None and len(sp):
        for task in sorted(set(sp["task"].astype(str))):
            png = subgroup_png(sp.assign(task=sp["task"].astype(str)), task)
            if png:
                out[f"{task or 'all'}__subgroups.png"] = png
    if inp.synthetic:  # every figure of a synthetic model carries the label (copied plots included)
        from training.synthetic_label import label_png

        out = {k: label_png(v) for k, v in out.items()}
    return out
