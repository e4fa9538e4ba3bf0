"""CPU of the IECV metric bootstraps as ``lbp-benefit train`` runs them, on the default data, and a hash
of every number they return (issue 23 speed: code changes to the metrics must leave the hash alone).

For each short-term task of the embedded default data, every trial with both arms is scored as a held-out
trial would be: ``training.iecv.trial_metrics`` (c-/E-for-benefit, calibration, RATE, outcome performance;
30 replicates, as ``TrainSettings.iecv_metrics_boot``) on a fixed, deterministic benefit prediction (a
linear score of the baseline and age, so that it varies), then ``training.cards.subgroups.subgroup_performance``
(50 replicates, as ``TrainSettings.subgroup_boot``) on all of them. One process, one BLAS thread; CPU =
``time.process_time``. Run it under the old and the new code (``PYTHONPATH``) to compare:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_metrics_boot.py [--repeats 3] [--parts iecv subgroups]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import numpy as np
import pandas as pd


def _inputs():
    from lbp_benefit.data_source import load_source
    from training.harmonise import harmonise
    from training.learners.base import allocation_share, outcome_type_of, task_frame

    ds, _ = load_source(None, None, 1)
    cfg = ds.config
    an = harmonise(ds).analysis
    out = []
    for outcome in cfg.outcomes:
        df = task_frame(an, outcome, cfg.window_names[0])
        otype = outcome_type_of(outcome, cfg)
        cls = df["treatment"].astype(str).to_numpy()
        treat = (cls == cfg.active).astype(float)
        trial = df["trial"].astype(str).to_numpy()
        y = df["value"].to_numpy(float)
        base = pd.to_numeric(df.get("baseline", pd.Series(0.0, index=df.index)), errors="coerce").fillna(0).to_numpy()
        age = pd.to_numeric(df.get("age", pd.Series(50.0, index=df.index)), errors="coerce").fillna(50).to_numpy()
        if otype == "binary":
            benefit = 0.05 + 0.001 * (base - 50) + 0.0005 * (age - 50)
            own = np.clip(0.4 + 0.002 * (50 - base) + treat * benefit, 0.01, 0.99)
            comp = np.clip(0.4 + 0.002 * (50 - base), 0.01, 0.99)
        else:
            benefit = 5 + 0.08 * (base - 50) + 0.05 * (age - 50)
            own = 0.6 * base + 10 - treat * benefit
            comp = 0.6 * base + 10
        e = allocation_share(trial, treat == 1, treat == 0)
        frame = pd.DataFrame({"trial": trial, "treat": treat, "y": y, "benefit": benefit, "expected_own": own,
                              "expected_comparator": comp, "e": e,
                              **{c: df[c].to_numpy() for c in ("female", "age", "bmi", "employed") if c in df}})
        both = frame.groupby("trial")["treat"].agg(lambda t: 0 < t.sum() < len(t))
        out.append((f"{outcome}__{cfg.window_names[0]}", otype, frame[frame["trial"].isin(both[both].index)]))
    return out


def run(parts, repeats: int) -> dict:
    from threadpoolctl import threadpool_limits

    from training.cards.subgroups import subgroup_performance
    from training.iecv import trial_metrics

    tasks = _inputs()
    res, cpu = {}, {p: [] for p in parts}
    with threadpool_limits(1):
        for _ in range(repeats):
            if "iecv" in parts:
                c = time.process_time()
                rows = []
                for task, otype, f in tasks:
                    for k, (t, g) in enumerate(f.groupby("trial", sort=True)):
                        rows.append((task, t, trial_metrics(g["benefit"].to_numpy(), g["y"].to_numpy(), g["treat"].to_numpy(),
                                                            otype, g["expected_own"].to_numpy(),
                                                            g["expected_comparator"].to_numpy(), g["e"].to_numpy(), 30, 1 + k)))
                cpu["iecv"].append(time.process_time() - c)
                res["iecv"] = rows
            if "subgroups" in parts:
                c = time.process_time()
                sg = [subgroup_performance(f.assign(task=task, outcome_type=otype), n_boot=50, seed=1)
                      for task, otype, f in tasks]
                cpu["subgroups"].append(time.process_time() - c)
                res["subgroups"] = [s.to_dict("split") for s in sg]
    digest = hashlib.sha1(json.dumps(res, default=lambda v: repr(v), sort_keys=True).encode()).hexdigest()
    n_trials = sum(f["trial"].nunique() for _, _, f in tasks)
    return {"cpu_s": {p: [round(x, 2) for x in v] for p, v in cpu.items()}, "sha1": digest,
            "held_out_trials": n_trials, "load": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", nargs="+", default=["iecv", "subgroups"], choices=["iecv", "subgroups"])
    a = ap.parse_args()
    print(json.dumps(run(a.parts, a.repeats)))


if __name__ == "__main__":
    main()
