"""Cost of the API's request-level baseline requirement check (serving/requirements.py) next to the
scoring it guards, in process (no HTTP): per request of 1 and of N patients, the check
(``OutcomeNeeds.problems`` for every patient) and ``Scorer.score`` of the same patients.

Model: the test suite's small model (tests/_small_model.py, built if absent). Reports the median
and the 10th-90th percentile range over repeats, and the check's share of the score time.

    PYTHONPATH=$PWD python benchmarks/bench_serving_requirement.py --repeats 30 --out benchmarks/results/serving_requirement_i23f.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

from predict import Scorer
from serving.requirements import OutcomeNeeds
from tests._small_model import small_model


def _times(fn, repeats: int) -> np.ndarray:
    fn()  # warm
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--sizes", default="1,1000")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    scorer = Scorer.load(small_model().artifact)
    needs = OutcomeNeeds.of(scorer)
    base = scorer.example_patient()
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        rng = np.random.default_rng(1)
        pts = [{**base, "baseline_pain": float(rng.uniform(0, 100)), "baseline_function": float(rng.uniform(0, 100))}
               for _ in range(n)]
        check = _times(lambda: [needs.problems(p, None, ["body", "patients", i]) for i, p in enumerate(pts)], a.repeats)
        score = _times(lambda: scorer.score(pts, "usual_care"), a.repeats)
        for what, t in (("requirement_check", check), ("scorer_score", score)):
            q10, q50, q90 = np.percentile(t, [10, 50, 90])
            rows.append({"patients": n, "what": what, "median_ms": round(q50, 4), "p10_ms": round(q10, 4),
                         "p90_ms": round(q90, 4), "repeats": a.repeats})
        share = np.median(check) / np.median(score)
        print(f"{n:>5} patients: check {np.median(check):.3f} ms [{np.percentile(check, 10):.3f}, "
              f"{np.percentile(check, 90):.3f}], score {np.median(score):.2f} ms [{np.percentile(score, 10):.2f}, "
              f"{np.percentile(score, 90):.2f}]: check = {100 * share:.2f}% of score")
    print("load average:", os.getloadavg())
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
