"""The network stage of a training run in a spawned process (training.train_network): the same files
and status as in-process, its errors re-raised in the training process, its process stopped when the
run fails elsewhere."""
from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from tests._small_model import harmonised, simulate
    from training.learners.base import feature_spec_from_config, outcome_type_of, task_frame

    h = harmonised(simulate(tmp_path_factory.mktemp("net") / "data"))
    tasks = []
    for o, w in (("pain", "short"), ("global_recovery", "moderate")):  # a network, and a task skipped
        tasks.append((o, w, outcome_type_of(o, h.config), task_frame(h.analysis, o, w)))
    return h.analysis, tasks, feature_spec_from_config(h.config)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "network").iterdir())}


def test_spawned_stage_writes_what_the_in_process_stage_writes(small, tmp_path):
    from training.train_network import NetworkStage

    analysis, tasks, feats = small
    here = NetworkStage(False, tmp_path / "a", analysis, tasks, feats, "ipd", None, 1)
    assert not here.concurrent
    st_a, lines_a, _ = here.result()
    with NetworkStage(True, tmp_path / "b", analysis, tasks, feats, "ipd", None, 1) as there:
        assert there.concurrent
        st_b, lines_b, secs = there.result()
        assert there.concurrent  # still says where it ran once collected
    assert st_a == st_b and lines_a == lines_b and secs > 0
    assert st_a["pain__short"]["status"] == "fitted" and st_a["global_recovery__moderate"]["status"] == "skipped"
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert "pain__short.json" in fa and fa == fb


def test_spawned_stage_error_is_raised_here(small, tmp_path):
    from training.train_network import NetworkStage

    analysis, tasks, feats = small
    stage = NetworkStage(True, tmp_path / "c", analysis, tasks, feats, "ml-nmr", str(tmp_path / "no_such.csv"), 1)
    with pytest.raises(FileNotFoundError, match="no_such.csv"):
        stage.result()
    assert stage._proc is None  # collected and closed


def test_closing_stops_a_running_stage(small, tmp_path):
    from training.train_network import NetworkStage

    analysis, tasks, feats = small
    stage = NetworkStage(True, tmp_path / "d", analysis, tasks, feats, "ml-nmr", "default", 1)  # ~1 min if left
    proc = stage._proc
    time.sleep(0.5)
    t = time.time()
    stage.close()
    assert not proc.is_alive() and proc.exitcode != 0 and time.time() - t < 10
    stage.close()  # idempotent
