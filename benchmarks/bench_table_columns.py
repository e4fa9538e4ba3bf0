"""Time ``Scorer.score_table`` on 20,000 patients against usual_care (threads=1, best of 3), to compare
a tree before and after a change of the table's columns (session 13, s13g: per-arm intervals and verdict
columns). Usage: ``PYTHONPATH=<tree> python benchmarks/bench_table_columns.py <label> <artifact>``;
prints one JSON line (label, patients, columns, best and every run in seconds)."""
import json
import sys
import time

import numpy as np
import pandas as pd


def main():
    from predict import Scorer
    sc = Scorer.load(sys.argv[2])
    ex = sc.example_patient()
    rng = np.random.default_rng(0)
    n = 20000
    df = pd.DataFrame([ex] * n)
    df["age"] = rng.uniform(20, 80, n)
    df["bmi"] = rng.uniform(18, 40, n)
    sc.score_table(df.head(200), "usual_care", threads=1)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        t = sc.score_table(df, "usual_care", threads=1)
        runs.append(time.perf_counter() - t0)
    print(json.dumps({"tree": sys.argv[1], "n": n, "columns": t.shape[1], "best_s": round(min(runs), 3),
                      "runs_s": [round(r, 3) for r in runs]}))


if __name__ == "__main__":
    main()
