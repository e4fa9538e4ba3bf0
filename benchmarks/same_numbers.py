"""Same numbers: a model's scores before and after a change to the runtime, to 1e-10.

    # 1. on the old code: score 10,000 simulated patients (with missing values) and save everything
    PYTHONPATH=<old checkout> python benchmarks/same_numbers.py save --model ART --out REF.npz
    # 2. on the new code: score the same patients with the same artifact and compare
    PYTHONPATH=$PWD python benchmarks/same_numbers.py check --model ART --ref REF.npz [--ref REF2.npz] [--model2 NEW_ART]
    # or both steps in one: each side's code in its own process (PYTHONPATH=<tree>)
    python benchmarks/same_numbers.py compare --model ART --before <old checkout> [--after .] [--out DIR]

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


def outputs(scorer, df, comparators=None) -> dict[str, np.ndarray | str]:
    """Every number the scorer gives for these patients, by name (and each request's results as
    JSON, so that results whose structure changed can still be compared key by key)."""
    out: dict = {}
    recs = [{k: v for k, v in r.items() if v is not None and v == v} for r in df.to_dict("records")]
    for comp in comparators or scorer.comparators:
        t = scorer.score_table(df, comp, explain=True, details=True, threads=1)
        num = [c for c in t.columns if t[c].dtype.kind == "f"]
        out[f"table/{comp}/floats"] = t[num].to_numpy(float)
        out[f"table/{comp}/fcolumns"] = json.dumps(num)
        out[f"table/{comp}/columns"] = json.dumps(list(t.columns))
        out[f"table/{comp}/text"] = hashlib.sha256(
            json.dumps(t[[c for c in t.columns if c not in num]].astype(str).to_numpy().tolist()).encode()).hexdigest()
        res = []
        for s in range(0, len(recs), 100):
            res += scorer.score(recs[s:s + 100], comp)
        out[f"dicts100/{comp}/floats"], out[f"dicts100/{comp}/shape"] = flatten(res)
        out[f"dicts100/{comp}/json"] = json.dumps(res)
        one = [scorer.score([r], comp)[0] for r in recs[:200]]
        out[f"dicts1/{comp}/floats"], out[f"dicts1/{comp}/shape"] = flatten(one)
    return out


def _float_columns(d: dict, k: str) -> list[str] | None:
    """The float columns of a saved table (older saves list only every column: the text columns
    are factor<k>_name, missing and warnings)."""
    if k.replace("/floats", "/fcolumns") in d:
        return json.loads(d[k.replace("/floats", "/fcolumns")])
    cols = d.get(k.replace("/floats", "/columns"))
    if cols is None:
        return None
    return [c for c in json.loads(cols) if not (c.endswith("_name") or c in ("missing", "warnings"))]


def compare(ref: dict, new: dict, tol: float, notes: list[str] | None = None) -> list[str]:
    """Differences beyond ``tol`` (empty: the same numbers). A table whose float columns changed
    is compared on the columns both have (``notes`` says which were added or dropped); results
    whose structure changed (keys added by other changes) cannot be aligned: noted, not compared."""
    bad = []
    notes = [] if notes is None else notes
    for k, v in ref.items():
        if k not in new:
            bad.append(f"{k}: missing in the new outputs")
            continue
        w = new[k]
        if isinstance(v, str) and k.endswith("/json"):
            continue  # compared through the floats, or key by key below when the structure changed
        if isinstance(v, str):
            if v != w:
                (notes if k.endswith(("/shape", "/text", "/columns")) else bad).append(f"{k}: differs")
            continue
        if v.shape != w.shape and k.startswith("table/") and k.endswith("/floats"):
            cr, cn = _float_columns(ref, k), _float_columns(new, k)
            if cr is None or cn is None or len(cr) != v.shape[1] or len(cn) != w.shape[1]:
                bad.append(f"{k}: shape {v.shape} vs {w.shape}")
                continue
            common = [c for c in cr if c in cn]
            notes.append(f"{k}: compared on {len(common)} common columns (added {sorted(set(cn) - set(cr))}, "
                         f"dropped {sorted(set(cr) - set(cn))})")
            v = v[:, [cr.index(c) for c in common]]
            w = w[:, [cn.index(c) for c in common]]
        elif v.shape != w.shape:
            jk = k.replace("/floats", "/json")
            if k.startswith("dicts") and jk in ref and jk in new:
                added, removed, changed, d_max, n_cmp = _compare_json(json.loads(ref[jk]), json.loads(new[jk]), tol,
                                                                      bad, k)
                notes.append(f"{k}: structure differs; {n_cmp} numbers at the keys both have compared (largest "
                             f"difference {d_max:.3g}); keys added: {sorted(added) or 'none'}; removed: "
                             f"{sorted(removed) or 'none'}; text or flags changed at: {sorted(changed) or 'none'}")
            elif k.startswith("dicts"):
                notes.append(f"{k}: not compared (the result's structure differs: {v.shape} vs {w.shape})")
            else:
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


def _compare_json(a, b, tol: float, bad: list, label: str, path: str = ""):
    """Walk two JSON results in parallel over the keys both have: (paths added, paths removed,
    paths whose text or flag changed, largest float difference, floats compared); float differences
    beyond ``tol`` go to ``bad``."""
    added, removed, changed, worst, count = set(), set(), set(), 0.0, 0
    stack = [(a, b, path)]
    while stack:
        x, y, pth = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            for key in x.keys() - y.keys():
                removed.add(f"{pth}.{key}")
            for key in y.keys() - x.keys():
                added.add(f"{pth}.{key}")
            for key in x.keys() & y.keys():
                stack.append((x[key], y[key], f"{pth}.{key}" if not pth.startswith("[") else f"{pth}.{key}"))
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                bad.append(f"{label}: {pth}: length {len(x)} vs {len(y)}")
                continue
            for i, (u, v) in enumerate(zip(x, y)):
                stack.append((u, v, pth if isinstance(u, dict) else f"{pth}[]"))
        elif isinstance(x, float) and isinstance(y, (float, int)) and not isinstance(y, bool):
            count += 1
            d = abs(x - y) if x == x and y == y else (0.0 if x != x and y != y else float("inf"))
            worst = max(worst, d)
            if d > tol * max(1.0, abs(x)):
                bad.append(f"{label}: {pth}: {x!r} vs {y!r}")
        elif x != y:
            changed.add(pth)
    return added, removed, changed, worst, count


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


def _compare_trees(a) -> int:
    """``save`` with the code of ``--before``, then ``check`` with the code of ``--after``, each in its
    own process with ``PYTHONPATH`` set to its tree (this script is run from ``--after``)."""
    import os
    import subprocess

    if a.before is None:
        raise SystemExit("compare needs --before <source tree of the previous version>")
    out = a.out or Path(tempfile.mkdtemp(prefix="same-numbers-"))
    out.mkdir(parents=True, exist_ok=True)
    ref = out / "before.npz"
    common = ["--model", str(a.model.resolve()), "--n", str(a.n)] + (["--comparators", *a.comparators]
                                                                     if a.comparators else [])
    for side, tree, args in (("before", a.before, ["save", "--out", str(ref)]),
                             ("after", a.after, ["check", "--ref", str(ref), "--tol", str(a.tol)]
                              + (["--model2", str(a.model2.resolve())] if a.model2 else []))):
        tree = tree.resolve()
        rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip() or "?"
        print(f"[{side}] {tree} (commit {rev})", flush=True)
        r = subprocess.run([sys.executable, str(Path(__file__).resolve())] + args + common, cwd=str(tree),
                           env={**os.environ, "PYTHONPATH": str(tree)})
        if r.returncode:
            return r.returncode
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("save", "check", "compare"))
    ap.add_argument("--before", type=Path, default=None, help="compare: the source tree of the previous version")
    ap.add_argument("--after", type=Path, default=ROOT, help="compare: the source tree of the new version")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--model2", type=Path, default=None)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--ref", type=Path, action="append", default=None, help="saved outputs (repeat to compare with several)")
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--comparators", nargs="*", default=None, help="only these comparators (default all)")
    a = ap.parse_args(argv)
    if a.mode == "compare":
        return _compare_trees(a)
    from predict import Scorer

    sc = Scorer.load(a.model)
    df = patients(sc, a.n)
    t0 = time.perf_counter()
    got = outputs(sc, df, a.comparators)
    print(f"{a.model}: model {sc.model_id}, {len(df)} patients, {int(df[sc.schema.names].isna().any(axis=1).sum())} "
          f"with missing values, comparators {sc.comparators}; scored in {time.perf_counter() - t0:.1f} s")
    if a.mode == "save":
        np.savez_compressed(a.out, **{k: (np.asarray(v) if isinstance(v, str) else v) for k, v in got.items()})
        print(f"saved {len(got)} outputs to {a.out}")
        return 0
    status = 0
    news = [(str(a.model), got)]
    if a.model2:
        news.append((str(a.model2), outputs(Scorer.load(a.model2), df, a.comparators)))
    for ref_path in a.ref:
        ref = load_ref(ref_path)
        for label, new in news:
            notes: list[str] = []
            bad = compare(ref, new, a.tol, notes)
            n_floats = sum(v.size for v in ref.values() if isinstance(v, np.ndarray))
            print(f"{label} vs {ref_path.name}: {n_floats} reference numbers, largest absolute difference where "
                  f"aligned {max_diff(ref, new):.3g}; "
                  + ("SAME (within %g)" % a.tol if not bad else "DIFFERENT:\n  " + "\n  ".join(bad)))
            for n in notes:
                print("  note:", n)
            status |= bool(bad)
    return status


if __name__ == "__main__":
    sys.exit(main())
