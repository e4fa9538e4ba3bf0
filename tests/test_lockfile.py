"""requirements.lock (what make setup installs) pins every dependency of pyproject.toml (runtime,
test and spark extras) to one exact version that satisfies pyproject's range, with hashes: a
dependency added to pyproject.toml without `make lock` fails here."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    pins = {}
    for block in re.split(r"\n(?=\S)", text):
        m = re.match(r"([A-Za-z0-9._-]+)==([^\s\\;]+)", block)
        if m:
            assert "--hash=sha256:" in block, f"{m.group(1)} has no hash"
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_every_dependency_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("test", "spark"):
        wanted += project["optional-dependencies"][extra]
    pins = _pins()
    problems = []
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name}: not in requirements.lock (run make lock)")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: locked {pins[name]} outside {req.specifier} (run make lock)")
    assert problems == []


def test_the_lock_pins_exact_versions_only():
    text = (ROOT / "requirements.lock").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert lines and all(re.match(r"[A-Za-z0-9._-]+==\S+ \\$", line) for line in lines), lines[:5]


def test_training_runs_on_the_pinned_blas_kernels():
    """The test process (tests/conftest.py) and the command line (lbp_benefit/__init__.py) ask
    OpenBLAS for one kernel family before numpy loads; on another CPU the model ids would differ."""
    import sys

    import numpy  # noqa: F401 - loads OpenBLAS

    import os

    from lbp_benefit.blas import ENV, cpu_has_avx2
    from training.determinism import training_environment

    env = training_environment()
    if cpu_has_avx2() and sys.platform == "linux":
        # Haswell unless the machine set its own core type before the tests started
        asked = os.environ[ENV]
        assert env["blas_kernels_pinned"], env["blas"]
        assert {b["architecture"].lower() for b in env["blas"] if b["internal_api"] == "openblas"} == {asked.lower()}


def test_blas_record_does_not_depend_on_what_was_imported_before():
    """The training environment in the card is the same whatever the process loaded first (the card
    of one run differed by test order when scipy's OpenBLAS was or was not loaded yet)."""
    import subprocess
    import sys

    code = "{}import json; from training.determinism import blas_record; print(json.dumps(blas_record()))"
    out = [subprocess.run([sys.executable, "-c", code.format(pre)], capture_output=True, text=True, check=True).stdout
           for pre in ("", "import scipy.linalg, sklearn.linear_model, numpy; ")]
    assert out[0] == out[1] and out[0].strip() != "[]"
