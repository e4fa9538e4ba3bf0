"""The small example dataset shipped with the package (synthetic; for demos and tests)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_data_dir() -> Path:
    """Folder of the shipped example dataset: 4 synthetic trials in the IPD data format."""
    return Path(str(resources.files("training.example_data")))
