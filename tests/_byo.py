"""Shared steps of the bring-your-own-IPD end-to-end tests (tests/test_byo_*.py): the CLI in a
subprocess, an example's converter, the leave-one-centre-out split of a dataset folder, every command
a new user runs, and replicate's overall effect."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``lbp-benefit ARGS`` from this checkout; with ``ok`` it must exit 0 (its output in the message)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "lbp_benefit", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=900)
    if ok:
        assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def convert(trial: str, out: Path, *extra: str) -> Path:
    """Run ``examples/<trial>/make_data.py`` (the data from its PyPI package) into ``out``."""
    p = subprocess.run([sys.executable, str(EX / trial / "make_data.py"), str(out), *extra], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return out


def user_commands(trial: str, out: Path, held: str | None, comparator: str, train_args: list[str]) -> dict:
    """What a new user runs on example ``trial``: convert, check, replicate, train on all centres but
    ``held`` (``train_args``: speed options), validate on ``held``, score every row against ``comparator``.
    Returns the paths and each command's completed process."""
    data = convert(trial, out / "data")
    cfg = str(EX / trial / "study.yaml")
    res = {"trial": trial, "out": out, "data": data, "cfg": cfg}
    res["check"] = cli("check", "--data", str(data), "--config", cfg, "--out", str(out / "check"))
    res["replicate"] = cli("replicate", "--data", str(data), "--config", cfg, "--out", str(out / "replicate"),
                           "--no-forest", "--workers", "1")
    train_dir, val_dir = split_by_centre(data, held, out / "split")
    res["train"] = cli("train", *train_args, "--data", str(train_dir), "--config", cfg, "--out", str(out / "train"),
                       "--workers", "1")
    res["validate"] = cli("validate", "--model", str(out / "train" / "artifact"), "--data", str(val_dir), "--config",
                          cfg, "--out", str(out / "validate"), "--n-boot", "20")
    res["score"] = cli("score", "--model", str(out / "train" / "artifact"), "--data", str(data), "--config", cfg,
                       "--comparator", comparator, "--output", str(out / "scores.csv"))
    return res


def split_by_centre(src: Path, held: str | None, out: Path) -> tuple[Path, Path]:
    """Training folder (all centres but ``held``) and validation folder (that centre) of dataset
    ``src``; without ``held`` (a single trial) both are ``src`` (in-sample, which validate must say)."""
    if held is None:
        return src, src
    parts, outs = pd.read_csv(src / "participants.csv", dtype=str), pd.read_csv(src / "outcomes.csv", dtype=str)
    folders = []
    for name, keep in (("train", parts["trial"] != held), ("validate", parts["trial"] == held)):
        d = out / name
        d.mkdir(parents=True)
        parts[keep].to_csv(d / "participants.csv", index=False)
        outs[outs["trial"].isin(set(parts.loc[keep, "trial"]))].to_csv(d / "outcomes.csv", index=False)
        folders.append(d)
    return folders[0], folders[1]


def overall(out: Path, outcome: str, follow_up: str, comparison: str | None = None) -> pd.Series:
    """The one unadjusted overall-effect row of ``replicate``'s overall.csv under ``out``."""
    ov = pd.read_csv(out / "replicate" / "overall.csv")
    r = ov[(ov.outcome == outcome) & (ov.follow_up == follow_up) & (ov.model == "unadjusted")]
    if comparison is not None:
        r = r[r.comparison == comparison]
    assert len(r) == 1, ov[["outcome", "follow_up", "comparison", "model"]]
    return r.iloc[0]
