import shutil
from pathlib import Path

import pandas as pd
import pytest

from training.example import example_data_dir


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
