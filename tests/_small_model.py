"""A small trained run and its artifact, built once per test session (shared by pytest-xdist
workers through a lock file) for the export, scorer, score-CLI and serving end-to-end tests.

Small on purpose (about 10-20 s on 2 cores): 600 simulated participants (hayden2020, seed 1),
three tasks (pain at short term with IECV; global recovery and function at moderate term without),
learners constant, effect_model and t_learner. The pain model is then set to the T-learner so that
the artifact always holds LightGBM boosters (whatever the stacking chose).
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

N_PARTICIPANTS = 600
SEED = 1
TASKS = (("pain", "short"), ("global_recovery", "moderate"), ("function", "moderate"))
LEARNERS = ("constant", "effect_model", "t_learner")
FORCED_TASK = "pain__short"


@dataclass
class SmallModel:
    root: Path
    data: Path  # the simulated dataset folder (data format)
    run: Path
    artifact: Path


def simulate(folder: Path, seed: int = SEED, n: int = N_PARTICIPANTS) -> Path:
    from training.simulate import simulate_dataset

    simulate_dataset("hayden2020", seed=seed, n_participants=n).write(folder)
    return folder


def harmonised(data: Path):
    from training.dataset import load_dataset
    from training.harmonise import harmonise

    h = harmonise(load_dataset(data, None))
    a = h.analysis
    keep = False
    for o, w in TASKS:
        keep = keep | ((a["outcome"] == o) & (a["follow_up"] == w))
    h.analysis = a[keep].reset_index(drop=True)
    return h


def train_and_export(data: Path, run: Path, artifact: Path, created: str | None = None) -> Path:
    from training.export_model import export_artifact
    from training.train import TrainSettings, run_training

    h = harmonised(data)
    settings = TrainSettings(seed=SEED, learners=LEARNERS, iecv_follow_ups=["short"], n_boot_linear=8,
                             n_boot_trees=2, iecv_metrics_boot=3, workers=2, subgroup_boot=3,
                             fit_unselectable=True)  # FORCED_TASK (no IECV) needs its t_learner export
    run_training(h.analysis, h.config, run, settings, synthetic=True)
    sel = run / "models" / FORCED_TASK / "selected.json"
    exp = json.loads((run / "models" / FORCED_TASK / "t_learner.json").read_text("utf-8"))
    exp["meta"]["selection"] = {"model": "t_learner", "rule": "set by the test fixture (boosters in the artifact)"}
    sel.write_text(json.dumps(exp), "utf-8")
    return export_artifact(run, artifact, h, created=created)


def _root() -> Path:
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    return Path(tempfile.gettempdir()) / f"lbp-test-small-model-{uid}"


_CACHE: dict = {}


def small_model() -> SmallModel:
    """Train (once per test session) and return the small model's folders."""
    if "m" in _CACHE:
        return _CACHE["m"]
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    m = SmallModel(root, root / "data", root / "run", root / "artifact")
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / "DONE").is_file():
                m.data.mkdir(exist_ok=True)
                simulate(m.data)
                train_and_export(m.data, m.run, m.artifact)
                (root / "DONE").write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _CACHE["m"] = m
    return m


def assert_nested_close(a, b, tol: float = 1e-12) -> None:
    """Two JSON-like results equal: same keys and lengths, floats within ``tol`` (rel and abs)."""
    import pytest

    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_nested_close(a[k], b[k], tol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_nested_close(x, y, tol)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=tol, abs=tol)
    else:
        assert a == b
