"""Time the bring-your-own-IPD commands on a 1,000-participant trial of another condition (issue 18
target: check, replicate, train and validate each under 30 s on 2 cores).

The trial is the real OPT trial (examples/opt/data, 823 participants in 4 clinics) resampled with
replacement within clinic to 1,000 participants (seeded; new participant ids), so it keeps a
continuous outcome with a baseline in two windows, a binary outcome without one, categorical and
numeric covariates. Every command runs through the CLI (``python -m lbp_benefit``) as a user would,
with its default settings unless stated: ``train`` with all six learners and with ``--fast``,
``validate`` on a held-out clinic (NY) with the model trained on the other three. Wall times include
the interpreter start-up and imports (about 2-4 s).

    .venv/bin/python benchmarks/bench_byo.py [--n 1000] [--seed 1] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OPT = ROOT / "examples" / "opt"


def resample(n: int, seed: int, out: Path) -> None:
    parts = pd.read_csv(OPT / "data" / "participants.csv", dtype=str, keep_default_na=False)
    outs = pd.read_csv(OPT / "data" / "outcomes.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    share = parts["trial"].value_counts(normalize=True).sort_index()
    sizes = np.floor(share * n).astype(int)
    sizes.iloc[: n - sizes.sum()] += 1
    rows, orows = [], []
    for trial, k in sizes.items():
        pool = parts[parts["trial"] == trial]
        pick = pool.iloc[rng.integers(0, len(pool), k)].copy()
        pick["new"] = [f"{trial}-{i:04d}" for i in range(k)]
        rows.append(pick)
        o = outs[outs["trial"] == trial].merge(pick[["participant", "new"]], on="participant")
        orows.append(o)
    p = pd.concat(rows).assign(participant=lambda d: d.pop("new"))
    o = pd.concat(orows).assign(participant=lambda d: d.pop("new"))
    out.mkdir(parents=True, exist_ok=True)
    p.to_csv(out / "participants.csv", index=False)
    o[["trial", "participant", "outcome", "instrument", "week", "value"]].to_csv(out / "outcomes.csv", index=False)


def cli(*args: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "lbp_benefit", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-byo-"))
    try:
        data, cfg = tmp / "data", str(OPT / "study.yaml")
        resample(a.n, a.seed, data)
        parts, outs = pd.read_csv(data / "participants.csv", dtype=str), pd.read_csv(data / "outcomes.csv", dtype=str)
        for name, keep in (("train3", parts["trial"] != "NY"), ("ny", parts["trial"] == "NY")):
            (tmp / name).mkdir()
            parts[keep].to_csv(tmp / name / "participants.csv", index=False)
            outs[outs["trial"].isin(set(parts.loc[keep, "trial"]))].to_csv(tmp / name / "outcomes.csv", index=False)
        w = str(a.workers)
        times = {
            "check": cli("check", "--data", str(data), "--config", cfg, "--out", str(tmp / "chk")),
            "replicate (all modifiers, forest plots)": cli("replicate", "--data", str(data), "--config", cfg,
                                                           "--out", str(tmp / "rep"), "--workers", w),
            "train (6 learners, IECV, network)": cli("train", "--data", str(data), "--config", cfg, "--out", str(tmp / "run"),
                                                     "--workers", w),
            "train --fast": cli("train", "--fast", "--data", str(data), "--config", cfg, "--out", str(tmp / "fast"),
                                "--workers", w),
        }
        cli("train", "--data", str(tmp / "train3"), "--config", cfg, "--out", str(tmp / "run3"), "--workers", w)
        times["validate (held-out clinic, 200 bootstraps)"] = cli(
            "validate", "--model", str(tmp / "run3" / "artifact"), "--data", str(tmp / "ny"), "--config", cfg,
            "--out", str(tmp / "val"))
        print(f"# bench_byo: OPT resampled to {a.n} participants (seed {a.seed}), {a.workers} workers")
        print(f"# {platform.platform()}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end")
        print("| command | wall s |")
        print("|---|---|")
        for k, v in times.items():
            print(f"| {k} | {v:.1f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
