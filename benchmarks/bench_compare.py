"""Scoring speed before and after a change, in the same run: ``bench_scoring.py`` of two source trees
on the same model, interleaved (before, after, before, after, ...), then a table of after / before.

    python benchmarks/bench_compare.py --before /path/to/old/checkout --after . --model ART \
        [--repeats 2] [--n 20000] [--duration 5] [--rounds 1] [--soak 2000] [--out benchmarks/results/compare]

Each run is ``<tree>/benchmarks/bench_scoring.py`` with ``PYTHONPATH=<tree>`` (its HTTP server runs
that tree's code too), writing ``<out>/<before|after>-<k>.json``. Reported per metric: the median
over the repeats of each side and the ratio after / before (patients or requests per second:
higher is better; latencies: lower is better). The machine is shared, so the interleaving matters
more than any one number.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IN_PROCESS = ("table_patients_per_s_without_explanations", "table_patients_per_s_with_explanations",
              "table_patients_per_s_without_explanations_again",
              "table_patients_per_s_without_explanations_complete_inputs",
              "table_patients_per_s_without_explanations_one_thread",
              "table_patients_per_s_without_explanations_complete_inputs_one_thread",
              "dicts_batch100_patients_per_s_without_explanations", "dicts_batch100_patients_per_s_with_explanations",
              "single_patient_ms_p50", "single_patient_ms_p99")


def metrics(res: dict) -> dict[str, float]:
    out = {f"in-process {k}": float(res["in_process"][k]) for k in IN_PROCESS if k in res.get("in_process", {})}
    h = res.get("http") or {}
    for name in ("ours", "bare_treeshap"):
        for run in h.get(name) or []:
            c = run.get("connections") or run.get("concurrency")
            for k in ("rps", "p50_ms", "p99_ms"):
                if k in run:
                    out[f"http {name} c={c} {k}"] = float(run[k])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, default=ROOT)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--soak", type=int, default=2000)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compare")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for k in range(a.repeats):
        for side in ("before", "after"):
            tree = (a.before if side == "before" else a.after).resolve()
            out = a.out / f"{side}-{k}.json"
            cmd = [sys.executable, str(tree / "benchmarks" / "bench_scoring.py"), "--model", str(a.model.resolve()),
                   "--n", str(a.n), "--duration", str(a.duration), "--rounds", str(a.rounds), "--soak", str(a.soak),
                   "--out", str(out)] + (["--no-http"] if a.no_http else [])
            print(f"[{side} {k}] {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
                           stdout=subprocess.DEVNULL)
            runs[side].append(json.loads(out.read_text()))
    mb = [metrics(r) for r in runs["before"]]
    ma = [metrics(r) for r in runs["after"]]
    lines = ["| metric | before (median) | after (median) | after / before |", "| --- | ---: | ---: | ---: |"]
    summary = {}
    for key in mb[0]:
        if not all(key in m for m in mb + ma):
            continue
        b = statistics.median(m[key] for m in mb)
        f = statistics.median(m[key] for m in ma)
        ratio = f / b if b else float("nan")
        summary[key] = {"before": b, "after": f, "ratio": ratio}
        lines.append(f"| {key} | {b:,.3g} | {f:,.3g} | {ratio:.3f} |")
    m0 = runs["before"][0]["machine_start"]
    head = (f"Before: {a.before}; after: {a.after}; model {runs['after'][0]['model_id']}; {a.repeats} interleaved "
            f"repeats per side; {m0['date']}, {m0['nproc']} CPUs ({m0['cpu']}), load average at start {m0['loadavg']}")
    text = head + "\n\n" + "\n".join(lines) + "\n"
    (a.out / "compare.md").write_text(text)
    (a.out / "compare.json").write_text(json.dumps({"header": head, "metrics": summary}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
