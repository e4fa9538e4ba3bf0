"""Where a learner errs on a shifted new trial: per-participant diagnosis of ``bench_learners.py --dump-new``.

Reads the dumped new-trial participants (features, simulator truth, each learner's predicted benefit,
the selected model's 95% new-setting PIs and support scores) and prints, per file, the mean error
(predicted - truth) of each learner overall and by groups (BMI bins; beyond the extrapolation cut of
``predict.support``; rare), against the trial-specific truth (``truth_mix``) and the truth without the
new trial's own random class effects (``truth_avg``: the extrapolation error alone), with the selected
model's PI coverage of the class-specific truth and its mean widening factor per group.

Usage::

    python benchmarks/diag_new_trial.py benchmarks/results/i23e_dump/new_*.csv.gz [--out table.csv]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

LEARNERS = ("selected", "effect_model", "effect_adaptive", "t_learner", "x_learner", "dr_learner",
            "causalml_x", "econml_cf", "econml_dr")


def pi_hits(d: pd.DataFrame, model: str = "selected") -> pd.Series:
    """Per participant: share of their trial's comparator classes whose PI covers the class truth."""
    cls = [c[len(f"{model}:benefit_vs_"):-len("_pi_low")] for c in d.columns
           if c.startswith(f"{model}:benefit_vs_") and c.endswith("_pi_low")]
    hits = []
    for c in cls:
        if f"benefit_vs_{c}" not in d or d[f"{model}:benefit_vs_{c}_pi_low"].isna().all():
            continue
        t = d[f"benefit_vs_{c}"]
        hits.append((t >= d[f"{model}:benefit_vs_{c}_pi_low"]) & (t <= d[f"{model}:benefit_vs_{c}_pi_high"]))
    return pd.concat(hits, axis=1).mean(axis=1)


def diagnose(d: pd.DataFrame) -> pd.DataFrame:
    d = d[d["ok"]].copy()
    fac = d["selected:support_factor"]
    groups = {"all": pd.Series("all", index=d.index),
              "bmi": pd.cut(d["bmi"], [0, 27, 30, 33, 36, 40, 100]).astype(str),
              "beyond_cut": (fac > 1).map({True: "beyond", False: "inside"}),
              "rare": d["selected:support_rare"].astype(bool).map({True: "rare", False: "not rare"})}
    hit = pi_hits(d)
    rows = []
    for gname, g in groups.items():
        for level, idx in d.groupby(g, sort=True).groups.items():
            s = d.loc[idx]
            row = {"group": gname, "level": level, "n": len(s), "truth": s["truth_mix"].mean(),
                   "own_trial_effect": (s["truth_mix"] - s["truth_avg"]).mean(),
                   "pi_coverage": hit.loc[idx].mean(), "factor": fac.loc[idx].mean()}
            for lr in LEARNERS:
                if lr in s:
                    row[f"bias_{lr}"] = (s[lr] - s["truth_mix"]).mean()
                    row[f"bias_avg_{lr}"] = (s[lr] - s["truth_avg"]).mean()
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    out = []
    for f in a.files:
        t = diagnose(pd.read_csv(f)).assign(file=Path(f).name)
        out.append(t)
        cols = ["group", "level", "n", "truth", "own_trial_effect", "pi_coverage", "factor",
                "bias_avg_selected", "bias_avg_effect_model", "bias_avg_t_learner", "bias_avg_x_learner", "bias_avg_causalml_x"]
        with pd.option_context("display.width", 220, "display.max_columns", 20):
            print(f"== {Path(f).name}\n{t[[c for c in cols if c in t]].round(2).to_string(index=False)}")
    if a.out:
        pd.concat(out).to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
