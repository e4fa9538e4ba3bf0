"""What the members' error correlation (``train --stack-se joint``, training.learners.member_corr) costs
``train``: one IECV fold planned exactly as ``train`` plans it with the reference patients (every
learner also predicts ``REF_ROWS`` fixed rows), run in this process with one BLAS thread; the CPU
seconds of those reference predictions (every learner's ``predict`` on the plan's reference frame,
timed by a wrapper; CPU time is robust to the machine's load) against the fold's CPU, for each task
IECV selects on. The extra CPU times the number of folds is what the option adds to ``train``'s IECV
(spread over its workers).

    PYTHONPATH=. .venv/bin/python benchmarks/member_corr_cost.py [--data DIR] [--tasks pain__short ...]
        [--fold 0] [--out benchmarks/results/member_corr_cost_TAG.csv]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    from threadpoolctl import threadpool_limits

    from benchmarks.profile_fold import plan_task
    from training.iecv import run_fold
    from training.learners.base import BenefitLearner
    from training.learners.member_corr import REF_ROWS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--tasks", nargs="*", default=["pain__short", "function__short", "global_recovery__short"])
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    load0 = os.getloadavg()
    orig = BenefitLearner.predict
    for task in a.tasks:
        plan = plan_task(a.data, task, REF_ROWS)
        spent = [0.0]

        def timed(self, X, _ref=plan["ref"]):
            if X is not _ref:
                return orig(self, X)
            c = time.process_time()
            try:
                return orig(self, X)
            finally:
                spent[0] += time.process_time() - c

        BenefitLearner.predict = timed
        try:
            with threadpool_limits(1):
                c0 = time.process_time()
                run_fold(plan, a.fold)
                fold = time.process_time() - c0
        finally:
            BenefitLearner.predict = orig
        rows.append({"task": task, "fold": a.fold, "folds": len(plan["hold"]), "fold_cpu_s": round(fold, 2),
                     "reference_predictions_cpu_s": round(spent[0], 3), "share": round(spent[0] / fold, 4),
                     "extra_cpu_s_all_folds": round(spent[0] * len(plan["hold"]), 1)})
    res = pd.DataFrame(rows)
    print(res.to_string(index=False))
    print(f"load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        res.assign(load_start=round(load0[0], 1), load_end=round(os.getloadavg()[0], 1)).to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
