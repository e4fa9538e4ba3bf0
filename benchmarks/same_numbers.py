"""Same numbers: a model's scores before and after a change to the runtime, to 1e-10.

    # 1. on the old code: score 10,000 simulated patients (with missing values) and save everything
    PYTHONPATH=<old checkout> python benchmarks/same_numbers.py save --model ART --out REF.npz
    # 2. on the new code: score the same patients with the same artifact and compare
    PYTHONPATH=$PWD python benchmarks/same_numbers.py check --model ART --ref REF.npz [--model2 NEW_ART]

Patients: simulated participants (scenario hayden2020, seed 2) with their realistic missing
covariates, repeated to ``--n`` rows, and in a third of the rows (seeded) up to four more
covariates blanked at random, so that many missing-data patterns are scored. Every learner
comparator and every network-only node is scored three ways: ``score_table`` (large vectorised
batch, with explanations and the text columns), ``score`` in requests of 100 patients (the compiled
program), and ``score`` one patient at a time for the first 200. Results are flattened to their
float leaves (compared to ``--tol``, absolute and relative) and a digest of everything else (keys,
strings, booleans, None: compared exactly).

``--model2``: a second artifact of the same model (e.g. re-exported by the new code in the new
format) scored against the same reference. Uses the public API only (``predict.Scorer``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def patients(scorer, n: int, seed: int = 2):
    import pandas as pd

    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as d:
        simulate_dataset("hayden2020", seed=seed).write(Path(d))
        h = harmonise(load_dataset(Path(d), None))
    df = h.baselines.dropna(subset=scorer.baselines)
    cols = [c for c in df.columns if c in scorer.schema or c in scorer.baselines]
    df = df[cols].reset_index(drop=True)
    reps = -(-n // len(df))
    df = pd.concat([df] * reps, ignore_index=True).head(n).copy()
    rng = np.random.default_rng(20261207)
    cov = list(scorer.schema.names)
    for i in np.flatnonzero(rng.random(n) < 1 / 3):
        k = int(rng.integers(1, 5))
        for c in rng.choice(cov, size=min(k, len(cov)), replace=False):
            df.at[int(i), c] = None
    return df


def _walk(obj, floats: list, shape: list) -> None:
    if isinstance(obj, dict):
        shape.append("{")
        for k in sorted(obj):
            shape.append(repr(k))
            _walk(obj[k], floats, shape)
        shape.append("}")
    elif isinstance(obj, (list, tuple)):
        shape.append("[")
        for v in obj:
            _walk(v, floats, shape)
        shape.append("]")
    elif isinstance(obj, float) or (isinstance(obj, np.floating)):
        floats.append(float(obj))
        shape.append("f")
    else:
        shape.append(repr(obj))


def flatten(obj) -> tuple[np.ndarray, str]:
    floats: list = []
    shape: list = []
    _walk(obj, floats, shape)
    return np.asarray(floats, float), hashlib.sha256("\x00".join(shape).encode()).hexdigest()


def outputs(scorer, df) -> dict[str, np.ndarray | str]:
    """Every number the scorer gives for these patients, by name."""
    out: dict = {}
    recs = [{k: v for k, v in r.items() if v is not None and v == v} for r in df.to_dict("records")]
    for comp in scorer.comparators:
        t = scorer.score_table(df, comp, explain=True, details=True, threads=1)
        num = [c for c in t.columns if t[c].dtype.kind == "f"]
        out[f"table/{comp}/floats"] = t[num].to_numpy(float)
        out[f"table/{comp}/columns"] = json.dumps(list(t.columns))
        out[f"table/{comp}/text"] = hashlib.sha256(
            json.dumps(t[[c for c in t.columns if c not in num]].astype(str).to_numpy().tolist()).encode()).hexdigest()
        res = []
        for s in range(0, len(recs), 100):
            res += scorer.score(recs[s:s + 100], comp)
        out[f"dicts100/{comp}/floats"], out[f"dicts100/{comp}/shape"] = flatten(res)
        one = [scorer.score([r], comp)[0] for r in recs[:200]]
        out[f"dicts1/{comp}/floats"], out[f"dicts1/{comp}/shape"] = flatten(one)
    return out


def compare(ref: dict, new: dict, tol: float) -> list[str]:
    bad = []
    for k, v in ref.items():
        if k not in new:
            bad.append(f"{k}: missing in the new outputs")
            continue
        w = new[k]
        if isinstance(v, str):
            if v != w:
                bad.append(f"{k}: differs")
            continue
        if v.shape != w.shape:
            bad.append(f"{k}: shape {v.shape} vs {w.shape}")
            continue
        nan_v, nan_w = np.isnan(v), np.isnan(w)
        if (nan_v != nan_w).any():
            bad.append(f"{k}: {int((nan_v != nan_w).sum())} values NaN in one only")
        d = np.abs(np.where(nan_v | nan_w, 0.0, v - w))
        lim = tol * np.maximum(1.0, np.abs(np.where(nan_v, 0.0, v)))
        if (d > lim).any():
            bad.append(f"{k}: {int((d > lim).sum())} values differ by more than {tol:g} (max {d.max():.3g})")
    return bad


def max_diff(ref: dict, new: dict) -> float:
    m = 0.0
    for k, v in ref.items():
        if isinstance(v, np.ndarray) and k in new and new[k].shape == v.shape and v.size:
            d = np.abs(v - new[k])
            d = d[~np.isnan(d)]
            if d.size:
                m = max(m, float(d.max()))
    return m


def load_ref(path: Path) -> dict:
    z = np.load(path, allow_pickle=False)
    return {k: (str(z[k]) if z[k].dtype.kind == "U" else z[k]) for k in z.files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("save", "check"))
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--model2", type=Path, default=None)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--ref", type=Path, default=None)
    ap.add_argument("--tol", type=float, default=1e-10)
    a = ap.parse_args(argv)
    from predict import Scorer

    sc = Scorer.load(a.model)
    df = patients(sc, a.n)
    t0 = time.perf_counter()
    got = outputs(sc, df)
    print(f"{a.model}: model {sc.model_id}, {len(df)} patients, {int(df[sc.schema.names].isna().any(axis=1).sum())} "
          f"with missing values, comparators {sc.comparators}; scored in {time.perf_counter() - t0:.1f} s")
    if a.mode == "save":
        np.savez_compressed(a.out, **{k: (np.asarray(v) if isinstance(v, str) else v) for k, v in got.items()})
        print(f"saved {len(got)} outputs to {a.out}")
        return 0
    ref = load_ref(a.ref)
    status = 0
    for label, new in ((str(a.model), got),) + (((str(a.model2), outputs(Scorer.load(a.model2), df)),) if a.model2 else ()):
        bad = compare(ref, new, a.tol)
        n_floats = sum(v.size for v in ref.values() if isinstance(v, np.ndarray))
        print(f"{label}: {n_floats} numbers compared, largest absolute difference {max_diff(ref, new):.3g}; "
              + ("SAME (within %g)" % a.tol if not bad else "DIFFERENT:\n  " + "\n  ".join(bad)))
        status |= bool(bad)
    return status


if __name__ == "__main__":
    sys.exit(main())
