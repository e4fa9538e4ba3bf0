"""CPU seconds and export fingerprints of the learners of one training task, fitted as ``train`` fits
them: one IECV fold (the first held-out trial group, ``n_boot=0``, every learner on one training
frame and one cross-fit cache) and the task's final-fit job (the default bootstrap). For speed
work on ``train`` (issue 23): run it on the code before and after a change; equal fingerprints
(sha1 of each learner's export JSON) mean the change left the fitted models byte-identical, the
CPU columns say what it saved. One process, one thread (``threadpool_limits(1)``, as in training).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train_pieces.py [--data DIR] [--task pain__short]
        [--part fold final] [--out benchmarks/results/train_pieces.csv]

``--data``: a dataset folder (e.g. ``lbp-benefit simulate --scenario large60 --participants 17000
--out DIR``); default: the embedded default data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _task(data: Path | None, task: str):
    from lbp_benefit.data_source import load_source
    from training.harmonise import harmonise
    from training.learners.base import feature_spec_from_config, outcome_type_of, task_frame

    ds, _ = load_source(data, None, 1)
    h = harmonise(ds)
    cfg = ds.config
    outcome, fu = task.split("__")
    df = task_frame(h.analysis, outcome, fu)
    feats = feature_spec_from_config(cfg)["names"]
    X = df[["trial", "treatment"] + [c for c in feats if c in df.columns]].copy()
    return cfg, X, df["value"].to_numpy(float), outcome_type_of(outcome, cfg)


def _fingerprint(exp: dict) -> str:
    return hashlib.sha1(json.dumps(exp, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fit_all(names, make, X, y) -> list:
    from training.learners.boosted import CrossFitCache, accepts_crossfit_cache

    cache, rows = CrossFitCache(), []
    for name in names:
        lr = make(name)
        c0, t0 = time.process_time(), time.perf_counter()
        lr = lr.fit(X, y, crossfit_cache=cache) if accepts_crossfit_cache(lr) else lr.fit(X, y)
        rows.append({"learner": name, "cpu_s": round(time.process_time() - c0, 3),
                     "wall_s": round(time.perf_counter() - t0, 3), "export_sha1": _fingerprint(lr.export_)})
    return rows


def main() -> None:
    from threadpoolctl import threadpool_limits

    from training.iecv import holdout_trials
    from training.selection import learners_for
    from training.train import LEARNERS, make_learner

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--task", default="pain__short")
    ap.add_argument("--part", nargs="+", default=["fold", "final"], choices=["fold", "final"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    cfg, X, y, otype = _task(a.data, a.task)
    names = learners_for(list(LEARNERS), otype, default=True)
    out = []
    with threadpool_limits(1):
        for part in a.part:
            if part == "fold":
                hold = holdout_trials(X.assign(_y=y), cfg.active)
                keep = ~X["trial"].isin([hold[0]]).to_numpy()
                Xp, yp = X.loc[keep], y[keep]
                make = lambda n: make_learner(n, otype, cfg, a.seed, n_boot=0)  # noqa: E731
            else:
                Xp, yp = X, y
                make = lambda n: make_learner(n, otype, cfg, a.seed)  # noqa: E731
            for r in _fit_all(names, make, Xp, yp):
                out.append({"task": a.task, "part": part, "rows": int(len(yp)), **r})
    res = pd.DataFrame(out)
    tot = res.groupby("part", as_index=False)[["cpu_s", "wall_s"]].sum().assign(learner="(all)")
    print(pd.concat([res, tot]).to_string(index=False))
    print(f"load average at end: {os.getloadavg()}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
