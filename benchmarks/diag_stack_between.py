"""How much a model's stacked tasks' intervals change with the members' disagreement (the
model-averaging variance, ``interval.between = "mixture"``): per stacked task and comparator, over
simulated patients (hayden2020 seed 2 with their realistic missing inputs, as bench_scoring.py), the
SD of the members' disagreement and the ratio of the benefit's CI and PI half-widths with / without it
(numpy reference: estimation SE, missing-input draws and tau as the scorer combines them; before
the support widening, which multiplies both alike).

    python benchmarks/diag_stack_between.py --model ART [--n 3000] [--out benchmarks/results/x.csv] [--time 7]

``--time R``: also the compiled program's CPU time for every task of the model on the n patients (one
comparator), with the stacks' rule and with it removed (the old rule, same model), R interleaved
repeats each (median and range of patients per CPU-second): the kernel cost of the rule alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--time", type=int, default=0)
    ap.add_argument("--comparator", default="usual_care")
    a = ap.parse_args(argv)
    from benchmarks.bench_scoring import patients
    from predict import Scorer
    from predict import model_format as mf
    from predict.artifact import load_artifact
    from predict.features import feature_matrix
    from predict.learner_model import StackedLearner, build
    from predict.uncertainty import between_variance, estimation_se, missing_variance

    scorer = Scorer.load(a.model)  # (verifies the artifact; its patients' columns)
    df = patients(scorer, a.n)
    rows = []
    for vt in mf.verify(load_artifact(a.model, supported=mf.READABLE_VERSIONS)).tasks:
        L = build(vt.export)
        if not isinstance(L, StackedLearner) or L.interval.between is None:
            continue
        old = dataclasses.replace(L, interval=dataclasses.replace(L.interval, between=None))
        F = feature_matrix(L.features, df)
        new_se, old_se = estimation_se(L, F), estimation_se(old, F)
        vb, vm = between_variance(L, F), missing_variance(L, F)
        for c in L.comparators:
            tau = L.interval.tau_of(c)
            ci_new, ci_old = np.sqrt(new_se[c] ** 2 + vm[c]), np.sqrt(old_se[c] ** 2 + vm[c])
            pi_new, pi_old = np.sqrt(ci_new ** 2 + tau ** 2), np.sqrt(ci_old ** 2 + tau ** 2)
            sd_b = np.sqrt(vb[c])
            r_ci, r_pi = ci_new / ci_old, pi_new / pi_old
            rows.append({"task": vt.entry.task, "comparator": c, "members": ";".join(
                f"{n}={w:.2f}" for n, w in zip(L.names, L.weights)), "n": F.shape[0],
                "sd_between_median": np.median(sd_b), "sd_between_p90": np.quantile(sd_b, 0.9),
                "sd_between_max": sd_b.max(), "ci_halfwidth_old_median": 1.96 * np.median(ci_old),
                "ci_ratio_median": np.median(r_ci), "ci_ratio_p90": np.quantile(r_ci, 0.9), "ci_ratio_max": r_ci.max(),
                "pi_ratio_median": np.median(r_pi), "pi_ratio_p90": np.quantile(r_pi, 0.9), "pi_ratio_max": r_pi.max(),
                "share_pi_wider_10pct": float(np.mean(r_pi > 1.10))})
    if a.time:
        timing(vm_tasks := [build(vt.export) for vt in mf.verify(load_artifact(a.model,
               supported=mf.READABLE_VERSIONS)).tasks], feature_matrix(vm_tasks[0].features, df), a.comparator, a.time)
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(out.round(3).to_string(index=False))
    if a.out:
        out.to_csv(a.out, index=False)


def timing(learners: list, F: np.ndarray, comparator: str, repeats: int) -> None:
    import time

    from predict.learner_model import StackedLearner
    from predict.program import compile_program

    def old(L):
        if isinstance(L, StackedLearner):
            return dataclasses.replace(L, interval=dataclasses.replace(L.interval, between=None))
        return L

    progs = {"with the rule": compile_program(learners, comparator),
             "without (old rule)": compile_program([old(L) for L in learners], comparator)}
    res: dict = {k: [] for k in progs}
    for k, p in progs.items():
        p.run(F[:50], threads=1)  # compile
    for _ in range(repeats):
        for k, p in progs.items():
            c = time.process_time()
            p.run(F, threads=1)
            res[k].append(F.shape[0] / (time.process_time() - c))
    for k, v in res.items():
        print(f"compiled program, every task vs {comparator}, {F.shape[0]} patients, one thread, {k}: "
              f"median {np.median(v):.4g} patients per CPU-second (range {min(v):.4g}-{max(v):.4g}, {repeats} repeats)")


if __name__ == "__main__":
    main()
