"""CPU per patient of ``Scorer.score`` (one patient, batches of 100) and of the binary tasks'
per-arm intervals, plus the check that the scorer's per-arm intervals of P(recovery) equal the
numpy reference's (``predict.arm_intervals.binary_parts``) on many patients with missing inputs.

    python benchmarks/bench_arm_intervals.py --model ARTIFACT [--seconds 3] [--patients 2000]

Run it with ``PYTHONPATH`` set to the checkout to measure (before/after: two checkouts, same
artifact, one after the other). CPU time (``time.process_time``), which a loaded shared machine
disturbs far less than wall time; one thread (``LBP_SCORE_THREADS=1``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time

os.environ.setdefault("LBP_SCORE_THREADS", "1")

import numpy as np  # noqa: E402

from predict import arm_intervals as A  # noqa: E402
from predict.scorer import Scorer  # noqa: E402

Z = 1.959963984540054


def patients(s: Scorer, n: int, p_missing: float, seed: int) -> list[dict]:
    """The example patient's inputs with continuous covariates perturbed (x 0.7-1.3) and each
    covariate (not the baselines) dropped with probability ``p_missing``."""
    rng = np.random.default_rng(seed)
    ex = s.example_patient()
    types = dict(zip(s._names, s._types))
    out = []
    for _ in range(n):
        d = {}
        for k, v in ex.items():
            if k in s.baselines:
                d[k] = v
            elif rng.random() >= p_missing:
                d[k] = round(float(v) * rng.uniform(0.7, 1.3), 1) if types.get(k) == "continuous" else v
        out.append(d)
    return out


def cpu_per_call(f, seconds: float) -> float:
    f()
    k, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        f()
        k += 1
    return (time.process_time() - t0) / k


def check_equal(s: Scorer, n: int) -> tuple[int, float]:
    """(task x comparator x batch comparisons, worst absolute difference of the bounds) between
    the scorer's per-arm intervals of binary tasks and the numpy reference's."""
    worst, count = 0.0, 0
    for comp in s.comparators:
        for j, pm in enumerate((0.0, 0.3, 0.7)):
            F, _ = s.validate(patients(s, n, pm, 100 + j))
            comp_out, arm_iv = s.engine.compute_unwidened(F, comp, s._select(None), arms=True)
            for c in comp_out:
                if not (c.available and c.learner is None and c.task.outcome_type == "binary"):
                    continue
                ref = A.binary_parts(c.task.exp, F, comp)
                if ref is None or c.task.task not in arm_iv:
                    continue
                for g, r in zip(arm_iv[c.task.task], A.binary_interval(ref, Z)):
                    worst = max(worst, float(np.max(np.abs(np.asarray(g) - np.asarray(r)))))
                count += 1
    return count, worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--patients", type=int, default=2000)
    a = ap.parse_args()
    s = Scorer.load(a.model)
    comp = s.comparators[0]
    one = patients(s, 1, 0.0, 1)
    batch = patients(s, 100, 0.3, 2)
    bins = [t for t in s._select(None) if t.outcome_type == "binary" and A.available(t.exp)]
    F1, _ = s.validate(one)
    F100, _ = s.validate(batch)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(A.__file__))).stdout.strip()
    print(f"commit {commit}  model {s.manifest.get('model_id')}  status {s.scoring_status()['path']}  "
          f"load {os.getloadavg()}")
    print(f"Scorer.score, 1 patient:        {cpu_per_call(lambda: s.score(one, comp), a.seconds) * 1e3:.3f} ms CPU")
    print(f"Scorer.score, 100 patients:     {cpu_per_call(lambda: s.score(batch, comp), a.seconds) * 1e3 / 100:.3f} "
          f"ms CPU per patient")
    print(f"numpy binary_parts (reference), 1 patient: "
          f"{cpu_per_call(lambda: [A.binary_parts(t.exp, F1, comp) for t in bins], a.seconds) * 1e3:.3f} ms CPU "
          f"({len(bins)} binary tasks: {[t.exp['kind'] for t in bins]})")
    print(f"numpy binary_parts (reference), 100 patients: "
          f"{cpu_per_call(lambda: [A.binary_parts(t.exp, F100, comp) for t in bins], a.seconds) * 1e3 / 100:.3f} "
          f"ms CPU per patient")
    if a.patients:
        count, worst = check_equal(s, a.patients // 3)
        print(f"per-arm intervals of binary tasks vs numpy reference: {count} comparisons "
              f"({a.patients // 3} patients x 3 missingness levels x comparators x tasks), worst |diff| {worst:.3g}")
        if count:
            assert worst <= 1e-10, worst


if __name__ == "__main__":
    main()
