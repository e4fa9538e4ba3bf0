"""Time ``lbp-benefit train`` end to end (issue 23: the default run <= 120 s wall on 2 cores, a
17,000-participant / 60-trial dataset <= 5 min) and, optionally, say where the time goes.

Runs (each a fresh ``python -m lbp_benefit train`` subprocess, as a user would run it):

- ``default``: the embedded default data and settings without the network stage (``--no-network``;
  the ML-NMR network stage is timed separately by ``default_network``);
- ``default_network``: the same with the network stage (ML-NMR, the default);
- ``large60``: ``simulate --scenario large60 --participants 17000`` (60 trials), then ``train`` with
  its default settings (no aggregate trials, so the network stage is the one-stage IPD model).

For each run: wall seconds, CPU seconds (user + system of the train process and its workers, from
``getrusage(RUSAGE_CHILDREN)``), the load average at start and end, peak RSS, and the run's own
stage timings from ``run.json``. On a machine shared with other jobs, CPU seconds are the figure to
compare; wall seconds hold only on a quiet machine (see the load columns).

``--profile`` runs each train once more in-process under cProfile with one worker and writes the
shares of ``run_training`` by part (IECV, final fits, subgroups, plots; tree boosters, linear fits,
logistic Newton fits, IECV metrics bootstraps, imputation) to ``--out``/profile_<run>.csv.

    .venv/bin/python benchmarks/bench_train.py [--runs default large60] [--workers 2] [--profile]
        [--out benchmarks/results/train_time]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("default", "default_network", "large60")

# where the time goes: function (file fragment, function name) -> part; shares of run_training's
# cumulative time (parts may overlap: e.g. LightGBM training happens inside IECV and final fits); profiles of
# code before e905a6a name the IECV and final fits run_iecv / _run_jobs
PARTS = {
    "IECV folds (all tasks)": ("training/iecv.py", "run_fold"),
    "final fits": ("training/train.py", "_fit_job"),
    "subgroup performance": ("training/cards/subgroups.py", "subgroup_performance"),
    "IECV plots": ("training/train_report.py", "write_plots"),
    "trial effects (selected model)": ("training/train.py", "_trial_effects"),
    "tree learners T/X/DR (fit)": ("training/learners/boosted.py", "fit"),
    "LightGBM training": ("lightgbm/engine.py", "train"),
    "LightGBM predict": ("lightgbm/basic.py", "__inner_predict_np2d"),
    "linear structured fits": ("training/learners/linear.py", "fit"),
    "logistic Newton fits": ("training/learners/strata_fit.py", "logistic_strata"),
    "dense penalised fits": ("training/learners/linear.py", "fit_penalised"),
    "effect-model penalty CV": ("training/learners/effect_model.py", "_select_sd"),
    "IECV per-trial metrics": ("training/iecv.py", "trial_metrics"),
    "metrics bootstraps": ("training/metrics/_base.py", "run_bootstrap"),
    "imputation (impute_mean)": ("predict/impute.py", "impute_mean"),
    "learner design (LinearData)": ("training/learners/effect_model.py", "__init__"),
}


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cli(args: list, env: dict) -> tuple[float, float, float, str]:
    """(wall, cpu, peak RSS MB, stderr tail) of one CLI call."""
    c0, t0 = _cpu_children(), time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "lbp_benefit", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    if p.returncode != 0:
        raise SystemExit(f"lbp-benefit {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, cpu, rss, p.stderr[-400:]


def _train_args(run: str, tmp: Path, workers: int, out: Path) -> list:
    args = ["train", "--out", str(out), "--workers", str(workers)]
    if run == "default":
        args.append("--no-network")
    if run == "large60":
        args += ["--data", str(tmp / "large60")]
    return args


def _profile_shares(prof: Path) -> list:
    import pstats

    st = pstats.Stats(str(prof)).stats
    total = max((v[3] for (f, _, fn), v in st.items() if f.endswith("training/train.py") and fn == "run_training"),
                default=float("nan"))
    rows = []
    for part, (frag, name) in PARTS.items():
        cum = sum(v[3] for (f, _, fn), v in st.items() if f.endswith(frag) and fn == name)
        rows.append({"part": part, "seconds": round(cum, 1), "share_of_run_training": round(cum / total, 3)})
    rows.append({"part": "run_training (total)", "seconds": round(total, 1), "share_of_run_training": 1.0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=["default", "large60"], choices=RUNS)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="also profile each run in-process (1 worker)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_time")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu_name = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name")), "")
    results = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if "large60" in a.runs:
            _cli(["simulate", "--scenario", "large60", "--participants", "17000", "--out", str(tmp / "large60")], env)
        for run in a.runs:
            load0 = os.getloadavg()
            start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            wall, cpu, rss, _ = _cli(_train_args(run, tmp, a.workers, tmp / f"run_{run}"), env)
            rj = json.loads((tmp / f"run_{run}" / "run.json").read_text())
            row = {"run": run, "commit": commit, "start": start, "workers": a.workers, "wall_s": round(wall, 1),
                   "cpu_s": round(cpu, 1), "peak_rss_mb": round(rss), "load_start": [round(x, 2) for x in load0],
                   "load_end": [round(x, 2) for x in os.getloadavg()], "run_training_s": rj.get("seconds"),
                   "timings": rj.get("timings"), "machine": {"nproc": os.cpu_count(), "cpu": cpu_name,
                                                            "python": platform.python_version()}}
            print(json.dumps({k: v for k, v in row.items() if k != "timings"}), flush=True)
            results.append(row)
            if a.profile:
                prof = a.out / f"profile_{run}.prof"
                p = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "lbp_benefit",
                                    *_train_args(run, tmp, 1, tmp / f"prof_{run}")], capture_output=True, text=True,
                                   env=env, cwd=ROOT)
                if p.returncode != 0:
                    raise SystemExit(p.stderr[-3000:])
                import pandas as pd

                shares = pd.DataFrame(_profile_shares(prof))
                shares.to_csv(a.out / f"profile_{run}.csv", index=False)
                print(shares.to_string(index=False), flush=True)
    (a.out / f"runs_{commit}.json").write_text(json.dumps(results, indent=1), "utf-8")


if __name__ == "__main__":
    main()
