"""The network stage of the default model's training run, alone: wall and CPU seconds per task.

Builds exactly what ``lbp-benefit train`` / ``make demo`` hands to the network stage on the
embedded default (synthetic) data — ``load_source(None, None, 1)``, ``harmonise``, the tasks with
comparator trials in config order, ``default_aggregate()`` and the default settings
(``lbp_benefit.default_model.default_settings``: ML-NMR, seed 1) — and calls the same function
(``training.network.benefit_model.write_run_network``) into a temporary folder. Reported per task:
the wall time between the stage's log lines, the process CPU seconds (``getrusage``: user + system,
children included), the method used and the ML-NMR diagnostics; the machine's load averages before
and after (the machine is shared: CPU seconds are the comparable figure).

    PYTHONPATH=. python benchmarks/bench_mlnmr_default.py [--out benchmarks/results/mlnmr_default_stage.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def network_inputs():
    """(analysis, tasks, features, aggregate, seed) as run_training builds them for the network stage."""
    from lbp_benefit.data_source import load_source
    from lbp_benefit.default_model import default_settings
    from training.harmonise import harmonise
    from training.iecv import holdout_trials
    from training.learners.base import feature_spec_from_config, outcome_type_of, task_frame
    from training.simulate.network import default_aggregate

    s = default_settings()
    ds, _ = load_source(None, None, s.seed)
    h = harmonise(ds)
    cfg, an = h.config, h.analysis
    named = list(getattr(cfg, "all_outcomes", cfg.outcomes))
    tasks = []
    for outcome in dict.fromkeys(named + sorted(set(an["outcome"]) - set(named))):  # training.train's task order
        spec = cfg.outcome(outcome) if hasattr(cfg, "outcome") else None
        for fu in cfg.window_names:
            if spec is not None and spec.follow_up is not None and fu not in spec.follow_up:
                continue
            df = task_frame(an, outcome, fu)
            if len(df) and holdout_trials(df, cfg.active):
                tasks.append((outcome, fu, outcome_type_of(outcome, cfg), df))
    return h.analysis, tasks, feature_spec_from_config(cfg), default_aggregate(), s.seed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/mlnmr_default_stage.json"))
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    from training.network.benefit_model import write_run_network

    analysis, tasks, features, agg, seed = network_inputs()
    marks = []

    def log(msg: str) -> None:
        marks.append((time.perf_counter(), _cpu(), msg))
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), _cpu()
    with tempfile.TemporaryDirectory() as tmp:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # as run_training
            status = write_run_network(tmp, analysis, tasks, features, log=log, method="ml-nmr", aggregate=agg,
                                       seed=seed)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    per, prev = [], (t0, c0)
    for t, c, msg in marks:
        if msg.startswith("network ") and "comparator nodes" in msg:
            per.append({"task": msg.split()[1].rstrip(":"), "wall_s": round(t - prev[0], 1),
                        "cpu_s": round(c - prev[1], 1)})
            prev = (t, c)
    for p in per:
        st = status.get(p["task"], {})
        p.update({"method": st.get("method"), "diagnostics": st.get("diagnostics")})
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": rev, "note": a.note,
           "machine": platform.platform(), "cpus": os.cpu_count(), "loadavg_before": load0,
           "loadavg_after": os.getloadavg(), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "tasks": per}
    print(json.dumps({k: v for k, v in res.items() if k != "tasks"}))
    for p in per:
        print(json.dumps(p))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1, default=str), "utf-8")


if __name__ == "__main__":
    main()
