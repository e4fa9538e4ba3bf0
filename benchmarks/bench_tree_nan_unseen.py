"""Tree members scoring an input they never saw missing (issue 23, i23n): per stack member, the mean
benefit of fitted participants (the outside simulator, a model trained by bench_outside.py) with
their own baseline given, and with it removed under LightGBM's native rule (old: a NaN split with
missing type None reads as 0) and under the runtime's rule (new: the conditional mean
E[X | observed] before the walk, predict.trees.tree_input), against the mean true trial-specific
benefit of the same rows; 95% interval of each mean over trials (trial-cluster bootstrap).

    python benchmarks/bench_tree_nan_unseen.py --root /tmp/i23u_outside --seeds 1 2 --tag i23n
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "outside"))
import bench_outside as bo  # noqa: E402

from predict import Scorer, trees  # noqa: E402
from predict.evaluate import benefit_only  # noqa: E402
from predict.features import feature_matrix  # noqa: E402
from predict.impute import impute_mean  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
KEY = ["trial", "participant", "comparator"]


def _mean_ci(v: np.ndarray, trial: np.ndarray, rng, n_boot: int = 400) -> tuple[float, float, float]:
    keys, inv = np.unique(trial, return_inverse=True)
    s, c = np.bincount(inv, v), np.bincount(inv)
    b = rng.integers(0, len(keys), (n_boot, len(keys)))
    boot = s[b].sum(1) / c[b].sum(1)
    return float(v.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def one_seed(d: Path, seed: int, outcome: str, comparator: str) -> list[dict]:
    scorer = Scorer.load(d / "run" / "artifact", compiled=False)
    task = next(t for t in scorer._tasks if t.outcome == outcome and "short" in t.task)
    L = task.model
    truth = pd.read_csv(d / "truth" / "train_truth.csv", dtype={"participant": str})
    tt = truth[(truth.outcome == outcome) & (truth.kind == "trial")][KEY + ["truth"]]
    rows = bo.pairs(bo.harmonised_table(d / "train"))
    rows = rows[(rows.comparator == comparator) & rows[f"baseline_{outcome}"].notna()].merge(tt, on=KEY)
    F = feature_matrix(L.features, rows)
    G = F.copy()
    G[:, list(L.features["names"]).index(f"baseline_{outcome}")] = np.nan
    Fimp, Gimp = impute_mean(L.imputer, F), impute_mean(L.imputer, G)
    members = list(zip(L.members, L.weights)) if hasattr(L, "members") else [(L, 1.0)]
    members.append((L, 1.0))  # the task's model itself (the weighted sum)
    rng = np.random.default_rng(seed)
    trial = rows.trial.to_numpy()
    recs = []
    for k, (m, w) in enumerate(members):
        name = "model" if k == len(members) - 1 else f"{m.kind}#{k}"
        given = benefit_only(m, F, Fimp, comparator)
        new = benefit_only(m, G, Gimp, comparator)
        with mock.patch.object(trees, "nan_unseen", lambda model: np.zeros(0, np.int64)):
            old = benefit_only(m, G, Gimp, comparator)
        rec = {"seed": seed, "outcome": outcome, "comparator": comparator, "member": name, "weight": w,
               "n": len(rows), "trials": int(rows.trial.nunique())}
        for lab, v in (("given", given), ("masked_old", old), ("masked_new", new), ("truth", rows.truth.to_numpy())):
            rec[lab], rec[lab + "_lo"], rec[lab + "_hi"] = _mean_ci(np.asarray(v, float), trial, rng)
        recs.append(rec)
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--outcome", default="pain")
    ap.add_argument("--comparator", default="usual_care")
    ap.add_argument("--tag", default="i23n")
    a = ap.parse_args(argv)
    recs = []
    for s in a.seeds:
        recs += one_seed(a.root / f"seed{s}", s, a.outcome, a.comparator)
    df = pd.DataFrame(recs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / f"tree_nan_unseen_{a.tag}.csv", index=False, float_format="%.4f")
    print(df.to_string(float_format="%.2f"))


if __name__ == "__main__":
    main()
