"""Time the whole one-stage replication on the default scenario (issue 4 target: < 60 s on 2 cores).

Every candidate modifier × 3 outcomes × unadjusted/adjusted × 3 follow-ups × 3 comparison sets,
plus the overall effects and the subgroup forest plots. Prints wall time, models per second,
the CPU time of the replication (main process plus its workers: on a shared machine the wall time
depends on the load, the CPU time much less), the split by model kind and the status counts.

    .venv/bin/python benchmarks/bench_replicate.py [--seed 1] [--workers 2] [--no-forest]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from training.dataset import load_dataset
from training.harmonise import harmonise
from training.meta.replicate import replicate
from training.simulate import simulate_dataset


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-forest", action="store_true")
    args = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc={os.cpu_count()}; CPU {cpu_model()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_dataset("hayden2020", seed=args.seed).write(Path(tmp) / "data")
        h = harmonise(load_dataset(Path(tmp) / "data"))
        t1, c1 = time.perf_counter(), os.times()
        res = replicate(h, Path(tmp) / "out", workers=args.workers, forest=not args.no_forest)
        t2, c2 = time.perf_counter(), os.times()
    cpu_main = (c2.user + c2.system) - (c1.user + c1.system)
    cpu_workers = (c2.children_user + c2.children_system) - (c1.children_user + c1.children_system)
    rows = pd.concat([res.overall, res.interactions])
    n = len(rows)
    print(f"simulate+load+harmonise: {t1 - t0:.1f} s")
    print(f"replication: {n} models{' + ' + str(len(res.subgroups)) + ' subgroup effects' if len(res.subgroups) else ''} "
          f"in {t2 - t1:.1f} s wall ({n / (t2 - t1):.1f} models/s, workers={args.workers})")
    print(f"replication CPU: {cpu_main + cpu_workers:.1f} s (main {cpu_main:.1f} s, workers {cpu_workers:.1f} s); "
          f"load average after {os.getloadavg()[0]:.1f}")
    print("status counts:", rows["status"].value_counts().to_dict())
    print("by outcome:", rows.groupby("outcome").size().to_dict())


if __name__ == "__main__":
    main()
