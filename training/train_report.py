"""What a training run writes for people: the IECV tables per task, the IECV forest and
calibration-for-benefit plots, and ``report.md`` (selection, verdicts and warnings per task,
comparator-class support). The fitting itself is training/train.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from training.train_warnings import case_mix_warnings, task_type, task_verdict


def write_iecv(d: Path, res) -> None:
    """``iecv/<task>/``: per-trial and pooled metrics, R-loss, stack weights, folds, skipped fits."""
    d.mkdir(parents=True, exist_ok=True)
    res.per_trial.to_csv(d / "per_trial.csv", index=False)
    res.pooled.to_csv(d / "pooled.csv", index=False)
    res.r_loss.to_csv(d / "r_loss.csv", index=False)
    (d / "stack_weights.json").write_text(json.dumps(res.stack_weights, indent=2), "utf-8")
    (d / "folds.json").write_text(json.dumps({"held_out": list(res.folds), "seconds": round(res.seconds, 1),
                                              "train_trials": res.folds}, indent=1), "utf-8")
    pd.DataFrame(res.skipped, columns=["trial", "learner", "reason"]).to_csv(d / "skipped.csv", index=False)


def write_plots(d: Path, task: str, res, how: dict) -> None:
    """``plots/<task>__iecv_forest.png`` and ``__benefit_calibration.png`` (+ .csv) of the selected learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = res.per_trial
    lr = how.get("best_single", how["model"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * max(per["trial"].nunique(), 4) + 1.5))
    for ax, m, ref in zip(axes, ("c_for_benefit", "calibration_slope_for_benefit"), (0.5, 1.0)):
        g = per[(per["learner"] == lr) & (per["metric"] == m)].reset_index(drop=True)
        yy = np.arange(len(g))
        lo = np.clip(np.nan_to_num(g["estimate"] - g["ci_low"]), 0, None)
        hi = np.clip(np.nan_to_num(g["ci_high"] - g["estimate"]), 0, None)
        ax.errorbar(g["estimate"], yy, xerr=[lo, hi], fmt="s", color="k", ms=4, capsize=2)
        pr = res.pooled[(res.pooled["learner"] == lr) & (res.pooled["metric"] == m)]
        if len(pr):
            r = pr.iloc[0]
            ax.errorbar([r["estimate"]], [-1.5], xerr=[[max(r["estimate"] - r["ci_low"], 0)], [max(r["ci_high"] - r["estimate"], 0)]],
                        fmt="D", color="tab:red", capsize=3)
        ax.axvline(ref, ls="--", color="grey")
        ax.set_yticks(list(yy) + [-1.5], list(g["trial"]) + ["pooled (RE)"])
        ax.set_title(f"{m} ({lr})", fontsize=9)
    fig.suptitle(f"IECV per held-out trial: {task}", fontsize=10)
    fig.tight_layout()
    fig.savefig(d / f"{task}__iecv_forest.png", dpi=110)
    plt.close(fig)
    # grouped calibration for benefit on the held-out predictions: quintiles of predicted benefit,
    # observed effect stratified by trial (within-trial comparisons; training.metrics)
    from training import metrics as M

    p = res.predictions[res.predictions["learner"] == lr].dropna(subset=["benefit"])
    if len(p) >= 50:
        binary = set(np.unique(p["y"])) <= {0.0, 1.0}
        try:
            gc = M.calibration_for_benefit_groups(p["benefit"].to_numpy(), p["y"].to_numpy(), p["treat"].to_numpy(),
                                                  outcome_type="binary" if binary else "continuous",
                                                  higher_is_better=binary, cluster=p["trial"].astype(str).to_numpy(),
                                                  n_groups=5)
        except Exception:  # noqa: BLE001 - a plot must not fail the run
            return
        fr = gc.to_frame()
        fr.to_csv(d / f"{task}__benefit_calibration.csv", index=False)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.errorbar(fr["predicted"], fr["observed"], yerr=[fr["observed"] - fr["ci_low"], fr["ci_high"] - fr["observed"]],
                    fmt="o", color="k", capsize=3)
        lim = [min(fr["predicted"].min(), fr["ci_low"].min()), max(fr["predicted"].max(), fr["ci_high"].max())]
        ax.plot(lim, lim, "--", color="grey")
        ax.set_xlabel("predicted benefit (held-out trials, quintile mean)")
        ax.set_ylabel("observed benefit (within-trial, 95% CI)")
        ax.set_title(f"{task}: calibration for benefit ({lr})", fontsize=9)
        fig.tight_layout()
        fig.savefig(d / f"{task}__benefit_calibration.png", dpi=110)
        plt.close(fig)


def write_report(out: Path, tasks, pooled, iecv_res, selected, support_rows, synthetic, secs, case_mix=None) -> None:
    """``report.md``: tasks, selection, IECV per task with its verdict and warnings, comparator classes."""
    lines = ["# Training run", ""]
    if synthetic and (out / "plots").is_dir():
        from training.synthetic_label import label_folder

        label_folder(out / "plots")  # every figure of a synthetic run says so
    if synthetic:
        lines += ["**SYNTHETIC DATA** (embedded simulator default): not for clinical use.", ""]
    lines += [f"Total time {secs:.0f} s.", "", "## Tasks", "", _md(tasks) if len(tasks) else "(none)", ""]
    lines += ["## Selection", ""]
    for t, how in selected.items():
        lines.append(f"- **{t}**: {how['model']} ({how['rule']})" + (f"; weights {json.dumps({k: round(v, 3) for k, v in how['weights'].items()})}" if "weights" in how else ""))
    lines.append("")
    for t, res in iecv_res.items():
        lines += [f"## IECV {t}", "", "Held-out R-loss (lower is better; gain vs the constant-effect model in %):", "",
                  _md(res.r_loss.round(4)), ""]
        key = res.pooled[res.pooled["metric"].isin(["c_for_benefit", "calibration_slope_for_benefit", "citl_for_benefit",
                                                    "autoc", "outcome_r2", "outcome_c_statistic", "outcome_slope"])]
        if len(key):
            lines += ["Pooled over held-out trials (REML random effects; 95% CI and prediction interval):", "",
                      _md(key.round(3)), ""]
        v, warns = task_verdict(t, res, selected.get(t, {}), task_type(tasks, t))
        lines += ["**Verdict:** " + v["sentence"], ""]
        warns += case_mix_warnings({h: c for h, c in (case_mix or {}).items() if h in res.folds})
        lines += [f"**Warning:** {w}." for w in warns] + ([""] if warns else [])
    sp = pd.DataFrame(support_rows)
    if len(sp):
        none = sp[sp["trials"] == 0]
        sparse = sp[sp["sparse"] & (sp["trials"] > 0)]
        lines += ["## Comparator classes", "",
                  "Effect modification is shared across comparator classes; each class has its own average effect.", "",
                  "- No trial compares the intervention with (no prediction): "
                  + (", ".join(f"{r.comparator} ({r.task})" for r in none.itertuples()) or "none"),
                  "- Sparse (< 2 trials or < 60 participants; the class average effect rests on little data): "
                  + (", ".join(f"{r.comparator} ({r.task}: {r.trials} trials, {r.participants} participants)"
                               for r in sparse.itertuples()) or "none"), ""]
        from training.cards.text import borrowed_classes

        borrowed = borrowed_classes(sp)
        lines += ["- " + borrowed, ""] if borrowed else []
    (out / "report.md").write_text("\n".join(lines), "utf-8")


def _md(df: pd.DataFrame) -> str:
    """A pandas frame as a Markdown table (no optional dependency)."""
    cols = list(df.columns)
    rows = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        rows.append("| " + " | ".join("" if (isinstance(v, float) and np.isnan(v)) else str(v) for v in r) + " |")
    return "\n".join(rows)
