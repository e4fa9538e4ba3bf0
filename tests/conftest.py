# Before anything loads numpy: the pinned OpenBLAS kernels (training/determinism.py), so the models the
# tests train, and the model ids the docs quote, are the same on every x86_64 machine.
from lbp_benefit.blas import pin_blas_kernels

pin_blas_kernels()

import shutil
from pathlib import Path

import pandas as pd
import pytest

from training.example_data import example_data_dir


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped example dataset."""
    dst = tmp_path / "data"
    shutil.copytree(example_data_dir(), dst, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return dst


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)


def write(folder: Path, name: str, df: pd.DataFrame) -> None:
    df.to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture(scope="session", autouse=True)
def _scoring_kernel_compiled(tmp_path_factory):
    """Compile the fused scoring kernel once, before any test (numba caches it on disk): one
    pytest-xdist worker compiles while the other waits on a lock and then loads the cache, so no
    test (e.g. a server's start-up timeout) pays the first compilation."""
    import fcntl

    from predict.program import warm_up

    lock = tmp_path_factory.getbasetemp().parent / "lbp-kernel-compile.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            warm_up()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _isolated_lbp_home(tmp_path_factory, monkeypatch):
    """Tests never read or fill the user's default-model cache."""
    monkeypatch.setenv("LBP_HOME", str(tmp_path_factory.getbasetemp() / "lbp_home"))


@pytest.fixture(scope="module")
def sm():
    """The small trained model of ``tests._small_model`` (built once per session, cached)."""
    from tests._small_model import small_model

    return small_model()


@pytest.fixture(scope="module")
def scorer(sm):
    """A scorer on the small model (modules that need another model define their own)."""
    from predict import Scorer

    return Scorer.load(sm.artifact)
