"""Figures and a Markdown table from ``bench_learners.py`` results.

Usage: python benchmarks/plot_learners.py benchmarks/results/learners.csv
Writes ``<stem>_pehe.png`` (root PEHE by scenario and learner, mean +- SD over seeds),
``<stem>_coverage.png`` and prints the Markdown summary table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ORDER = ["selected", "selected_1se", "best_single_cv", "effect_model", "constant", "risk_model", "t_learner", "x_learner", "dr_learner",
         "econml_dr", "econml_cf", "causalml_x"]


def main(path: str) -> None:
    p = Path(path)
    res = pd.read_csv(p)
    res = res[res["learner"].isin(ORDER)]
    s = res.groupby(["scenario", "learner"]).agg(seeds=("seed", "nunique"), pehe=("pehe", "mean"),
                                                  pehe_sd=("pehe", "std"), bias=("bias", "mean"),
                                                  cov_ci=("coverage_ci", "mean"), cov_pi=("coverage_pi", "mean"),
                                                  c_benefit=("c_for_benefit", "mean"), c_oracle=("c_oracle", "mean"),
                                                  fit_s=("fit_seconds", "mean"), sd_true=("sd_true_benefit", "mean"),
                                                  pehe_avg=("pehe_avg_trial", "mean"), pehe_new=("pehe_new", "mean"),
                                                  c_new=("c_for_benefit_new", "mean"),
                                                  c_oracle_new=("c_oracle_new", "mean"),
                                                  ).reset_index()
    scen = list(dict.fromkeys(res["scenario"]))
    lrs = [x for x in ORDER if x in set(s["learner"])]
    fig, ax = plt.subplots(figsize=(11, 4.2))
    w = 0.8 / len(lrs)
    for i, lr in enumerate(lrs):
        d = s[s["learner"] == lr].set_index("scenario").reindex(scen)
        ax.bar(np.arange(len(scen)) + i * w, d["pehe"], w, yerr=d["pehe_sd"], label=lr, capsize=2)
    ax.set_xticks(np.arange(len(scen)) + 0.4 - w / 2, scen)
    ax.set_ylabel("root PEHE (points, 0-100)")
    ax.legend(ncol=5, fontsize=7)
    ax.set_title("Benefit of exercise vs own-trial comparator, pain at 3 months: error vs simulator truth")
    fig.tight_layout()
    fig.savefig(p.with_name(p.stem + "_pehe.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ours = [x for x in lrs if not x.startswith(("econml", "causalml"))] + ["econml_cf"]
    for j, col in enumerate(["cov_ci", "cov_pi"]):
        d = s[s["learner"].isin(ours)].groupby("learner")[col].mean().reindex(ours)
        ax.bar(np.arange(len(ours)) + j * 0.4, d, 0.4, label={"cov_ci": "95% CI", "cov_pi": "95% PI (new setting)"}[col])
    ax.axhspan(0.90, 0.97, color="green", alpha=0.1)
    ax.axhline(0.95, ls="--", color="grey")
    ax.set_xticks(np.arange(len(ours)) + 0.2, ours, rotation=30, fontsize=7)
    ax.set_ylim(0.3, 1.0)
    ax.set_ylabel("coverage of true benefit")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(p.with_name(p.stem + "_coverage.png"), dpi=110)
    plt.close(fig)
    s["order"] = s["learner"].map({k: i for i, k in enumerate(ORDER)})
    s = s.sort_values(["scenario", "order"]).drop(columns="order")
    cols = list(s.columns)
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in s.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
