"""Benchmark the IPD simulator (training.simulate): speed at the published size and at scale.

    .venv/bin/python benchmarks/bench_simulate.py                  # 3514 + scale 100k..1M
    .venv/bin/python benchmarks/bench_simulate.py --sizes 100000 1000000 --no-write --json out.json

Each scale point runs in a fresh process so that its peak memory (ru_maxrss) is its own;
"cold" includes the once-per-process scenario calibration (Monte Carlo centring and effect
offsets, cached afterwards), "warm" does not. Targets (issue 3): 3514 participants in well
under a second; 1,000,000 participants in under a minute with memory growing linearly.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

CHILD = r"""
import json, resource, sys, tempfile, time
t0 = time.perf_counter()
from training.simulate import simulate_dataset
t1 = time.perf_counter()
n, write = int(sys.argv[1]), sys.argv[2] == "1"
sim = simulate_dataset("hayden2020", seed=1, n_participants=n)
t2 = time.perf_counter()
out = {"n": len(sim.participants), "import_s": t1 - t0, "simulate_s": t2 - t1,
       "outcome_rows": len(sim.outcomes), "truth_rows": len(sim.truth)}
if n <= 20000:
    reps = []
    for seed in range(2, 7):
        a = time.perf_counter(); simulate_dataset("hayden2020", seed=seed, n_participants=n); reps.append(time.perf_counter() - a)
    out["warm_s"] = sorted(reps)[len(reps) // 2]
if write:
    with tempfile.TemporaryDirectory() as d:
        a = time.perf_counter(); sim.write(d); out["write_s"] = time.perf_counter() - a
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(n: int, write: bool) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(n), "1" if write else "0"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if res.returncode != 0:
        raise SystemExit(f"benchmark child failed for n={n}:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 250_000, 500_000, 1_000_000])
    ap.add_argument("--no-write", action="store_true", help="time generation only, not CSV writing")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    env = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(), "cpu": cpu_model(),
           "python": platform.python_version(), "load_avg_at_start": os.getloadavg()}
    import numpy
    import pandas
    import pyarrow

    env["versions"] = f"numpy {numpy.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}"
    print(f"# bench_simulate  {env['date']}  nproc={env['nproc']}  cpu={env['cpu']}  load={env['load_avg_at_start']}")
    rows = [run(3514, True)] + [run(n, not a.no_write) for n in a.sizes]
    print("| participants | outcome rows | truth rows | import s | simulate s (cold) | simulate s (warm) | write CSV s | peak RSS MB | RSS KB / participant |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        per = 1024 * r["peak_rss_mb"] / r["n"]
        print(f"| {r['n']:,} | {r['outcome_rows']:,} | {r['truth_rows']:,} | {r['import_s']:.2f} | {r['simulate_s']:.2f} | "
              f"{r.get('warm_s', float('nan')):.3f} | {r.get('write_s', float('nan')):.2f} | {r['peak_rss_mb']:.0f} | {per:.2f} |")
    big = [r for r in rows if r["n"] >= 100_000]
    if len(big) >= 2:
        slope = (big[-1]["peak_rss_mb"] - big[0]["peak_rss_mb"]) / (big[-1]["n"] - big[0]["n"]) * 1024
        print(f"\nmemory slope between {big[0]['n']:,} and {big[-1]['n']:,}: {slope:.2f} KB per participant "
              f"(linear growth: per-participant RSS approaches the slope as n grows)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"env": env, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
